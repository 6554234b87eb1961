"""OpenAI fidelity through the official client: logit_bias, logprobs on both
endpoints, best_of, response_format text, 400s (never 422) and OpenAI's sampling
defaults (constrained JSON and streamed logprobs: test_constrained.py)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest


def _client(srv: Any) -> Any:
    import openai

    return openai.OpenAI(base_url=srv.url + "/v1", api_key="unused", max_retries=0, timeout=60)


def test_logit_bias_and_logprobs(start_server, tiny_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_dir)
    srv = start_server(model=str(tiny_dir))
    c = _client(srv)
    greedy = c.completions.create(model="tiny", prompt="once upon", max_tokens=8, temperature=0, logprobs=3)
    lp = greedy.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == greedy.usage.completion_tokens
    assert "".join(lp.tokens) == greedy.choices[0].text
    assert lp.text_offset[0] == 0 and lp.text_offset[1] == len(lp.tokens[0])
    for chosen, top in zip(lp.token_logprobs, lp.top_logprobs, strict=True):
        assert 1 <= len(top) <= 3 and chosen <= 0  # alternatives decoding to the same text share a key
        assert chosen == pytest.approx(max(top.values()))  # greedy picks the most likely token

    # a +100 bias makes one token win every step; -100 removes greedy's first choice
    word = tok.encode(" fox")[0]
    forced = c.completions.create(model="tiny", prompt="once upon", max_tokens=4, temperature=0,
                                  logit_bias={str(word): 100})
    assert forced.choices[0].text == tok.decode([word]) * 4
    first = tok.encode(lp.tokens[0])[0]
    banned = c.completions.create(model="tiny", prompt="once upon", max_tokens=8, temperature=0,
                                  logit_bias={str(first): -100})
    assert not banned.choices[0].text.startswith(lp.tokens[0])

    chat = c.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hello"}], max_tokens=5,
                                     temperature=0, logprobs=True, top_logprobs=2)
    content = chat.choices[0].logprobs.content
    assert "".join(t.token for t in content) == chat.choices[0].message.content
    assert all(len(t.top_logprobs) == 2 and t.logprob <= 0 and bytes(t.bytes).decode() == t.token for t in content)
    plain = c.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hello"}], max_tokens=5,
                                      temperature=0)
    assert plain.choices[0].logprobs is None


def test_best_of_returns_the_most_likely_sample(start_server, tiny_dir):
    srv = start_server(model=str(tiny_dir))
    c = _client(srv)
    args = {"model": "tiny", "prompt": "the quick", "max_tokens": 6, "temperature": 1.0, "seed": 11,
            "stop": ["never-produced-stop-string"]}
    # best_of=4 draws the same 4 samples as n=4 with this seed (seed + j each)
    all4 = c.completions.create(**args, n=4, logprobs=0)
    scores = [sum(ch.logprobs.token_logprobs) for ch in all4.choices]
    best = c.completions.create(**args, n=1, best_of=4)
    assert len(best.choices) == 1
    assert best.choices[0].text == all4.choices[scores.index(max(scores))].text
    assert best.usage.completion_tokens == 4 * 6  # OpenAI counts every sample generated
    assert best.choices[0].logprobs is None  # only when asked


def test_unsupported_and_invalid_parameters_are_400(start_server, tiny_dir, _is_openai_error):
    import openai

    srv = start_server(model=str(tiny_dir))
    c = _client(srv)
    msgs = [{"role": "user", "content": "hi"}]
    # (response_format json_object / json_schema are served: see test_constrained.py)
    ok = c.chat.completions.create(model="tiny", messages=msgs, max_tokens=2, response_format={"type": "text"})
    assert ok.choices[0].finish_reason in ("length", "stop")
    cases = [
        ("/v1/completions", {"prompt": "hi", "temperature": 9}, "temperature"),
        ("/v1/completions", {"prompt": "hi", "logit_bias": {"abc": 1}}, "logit_bias"),
        ("/v1/completions", {"prompt": "hi", "logit_bias": {"999999": 1}}, "logit_bias"),
        ("/v1/completions", {"prompt": "hi", "logit_bias": {"5": 101}}, "logit_bias"),
        ("/v1/completions", {"prompt": "hi", "best_of": 1, "n": 2}, "best_of"),
        ("/v1/completions", {"prompt": "hi", "best_of": 3, "stream": True}, "best_of"),
        ("/v1/completions", {"prompt": "hi", "logprobs": 21}, "logprobs"),
        ("/v1/chat/completions", {"messages": msgs, "top_logprobs": 2}, "top_logprobs"),
        ("/v1/chat/completions", {"messages": msgs, "logprobs": 1}, "logprobs"),
        ("/v1/chat/completions", {"messages": msgs, "response_format": {"type": "xml"}}, "response_format"),
    ]
    with httpx.Client(timeout=30) as h:
        for path, body, param in cases:
            err = _is_openai_error(h.post(srv.url + path, json={"model": "tiny", **body}), 400)
            assert (err["param"] or "").split(".")[0] == param, (body, err)
        # routes this server does not have answer in OpenAI's shape too
        err = _is_openai_error(h.post(srv.url + "/v1/embeddings", json={"model": "tiny", "input": "x"}), 404)
        assert err["code"] == "unknown_url"
    with pytest.raises(openai.NotFoundError):
        c.embeddings.create(model="tiny", input="hello")


def test_default_temperature_is_openais(start_server, tiny_models, tmp_path):
    """A version saved without generation settings samples at temperature 1 (OpenAI's
    default): n choices differ. Today save_model records greedy defaults, so they were equal."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llmos_models.io import save_model

    model = AutoModelForCausalLM.from_pretrained(tiny_models[0])
    path = save_model(model, AutoTokenizer.from_pretrained(tiny_models[0]), tmp_path / "tiny")
    srv = start_server(model=str(path))
    out = _client(srv).completions.create(model="tiny", prompt="once upon", max_tokens=12, n=4, seed=5)
    assert len({ch.text for ch in out.choices}) > 1, [ch.text for ch in out.choices]
    declared = tmp_path / "greedy"
    save_model(model, AutoTokenizer.from_pretrained(tiny_models[0]), declared, generation={"temperature": 0.0})
    srv2 = start_server(model=str(declared))
    same = _client(srv2).completions.create(model="greedy", prompt="once upon", max_tokens=12, n=3)
    assert len({ch.text for ch in same.choices}) == 1  # the version's own declared default wins
