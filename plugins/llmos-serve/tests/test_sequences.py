"""llmos_serve.sequences: a request body → engine sequences, without HTTP or an event
loop (the module is pure: a tokenizer, a request model and settings in, sequences out)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def model(tiny_models: list[Path]):
    from transformers import AutoTokenizer

    from llmos_serve.loader import LoadedModel

    tok = AutoTokenizer.from_pretrained(tiny_models[0])
    return LoadedModel(name="tiny", version="local", path=tiny_models[0], model=None, tokenizer=tok,
                       context_length=512)


def _build(model, chat: bool = False, config=None, **body):
    from llmos_serve.config import ServeConfig
    from llmos_serve.protocol import ChatCompletionRequest, CompletionRequest
    from llmos_serve.sequences import build_sequences

    cls = ChatCompletionRequest if chat else CompletionRequest
    req = cls.model_validate({"model": "tiny", **body})
    return build_sequences(model, req, chat=chat, config=config or ServeConfig(model="tiny"))


def test_prompts_n_and_sampling_settings(model):
    p = _build(model, prompt=["the quick", "hello"], n=2, max_tokens=5, temperature=0.5, seed=3, stop="x",
               logit_bias={"7": -100})
    assert len(p.seqs) == 4 and p.per_prompt == p.n == 2
    assert p.seqs[0].prompt_ids == p.seqs[1].prompt_ids == model.tokenizer("the quick").input_ids
    assert p.prompt_tokens == len(p.seqs[0].prompt_ids) + len(p.seqs[2].prompt_ids)
    params = p.seqs[1].params
    assert (params.max_tokens, params.temperature, params.seed, params.stop) == (5, 0.5, 4, ["x"])
    assert params.logit_bias == {7: -100.0} and params.logprobs is None


def test_openai_defaults_unless_the_version_declares(model):
    p = _build(model, prompt="hi")
    assert (p.seqs[0].params.temperature, p.seqs[0].params.top_p, p.seqs[0].params.max_tokens) == (1.0, 1.0, 16)
    model.generation = {"temperature": 0.0, "max_new_tokens": 3}
    try:
        p = _build(model, prompt="hi")
        assert (p.seqs[0].params.temperature, p.seqs[0].params.max_tokens) == (0.0, 3)
    finally:
        model.generation = {}


def test_chat_and_best_of(model):
    from llmos_models.chat import DEFAULT_CHAT_TEMPLATE, encode_prompt

    msgs = [{"role": "user", "content": "hello"}]
    p = _build(model, chat=True, messages=msgs, logprobs=True, top_logprobs=3)
    assert p.seqs[0].prompt_ids == encode_prompt(model.tokenizer, msgs, DEFAULT_CHAT_TEMPLATE)
    assert p.seqs[0].params.logprobs == 3
    assert p.seqs[0].params.max_tokens == 512 - len(p.seqs[0].prompt_ids)  # chat: the rest of the context
    b = _build(model, prompt="hi", n=2, best_of=3)
    assert len(b.seqs) == 3 and b.per_prompt == 3 and b.seqs[0].params.logprobs == 0
    for s, total in zip(b.seqs, (-3.0, -1.0, -2.0), strict=True):
        s.token_logprobs = [total]
    assert [s.token_logprobs[0] for s in b.best()] == [-1.0, -2.0]


@pytest.mark.parametrize(
    "body,chat,param,code",
    [
        ({"prompt": "hello " * 600}, False, "prompt", "context_length_exceeded"),
        ({"prompt": "hi " * 20_000}, False, "prompt", "context_length_exceeded"),  # by bytes, not tokenized
        ({"prompt": "hi", "max_tokens": 600}, False, "max_tokens", "invalid_value"),
        ({"prompt": [300, 5]}, False, "prompt", None),
        ({"prompt": ["a"] * 17}, False, "prompt", None),
        ({"prompt": "hi", "logit_bias": {"x1": 1}}, False, "logit_bias", "invalid_value"),
        ({"prompt": "hi", "best_of": 1, "n": 2}, False, "best_of", None),
        ({"prompt": "hi", "suffix": "x"}, False, "suffix", None),
        ({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_schema", "json_schema": {
            "name": "x", "schema": {"type": "object", "properties": {"a": {"type": "string", "pattern": "b+"}}}}}},
         True, "response_format", "invalid_json_schema"),
        ({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_schema"}}, True,
         "response_format.json_schema", "missing_required_parameter"),
        ({"messages": [{"role": "user", "content": "x"}], "top_logprobs": 1}, True, "top_logprobs", None),
    ],
)
def test_bad_requests_are_api_errors(model, body, chat, param, code):
    from llmos_serve.errors import ApiError

    with pytest.raises(ApiError) as err:
        _build(model, chat=chat, **body)
    assert err.value.status == 400 and err.value.param == param and err.value.code == code, err.value.message


def test_byte_bound_never_refuses_what_fits(model):
    from llmos_serve.sequences import check_sizes, max_bytes_per_token
    from llmos_serve.protocol import CompletionRequest

    bound = max_bytes_per_token(model.tokenizer)
    longest = max(len(model.tokenizer.decode([i]).encode()) for i in range(len(model.tokenizer)))
    assert bound >= longest
    fits = model.tokenizer.decode(list(range(5, 5 + 500)))  # 500 tokens: fits a 512 context
    check_sizes(model, CompletionRequest(model="tiny", prompt=fits), chat=False)
