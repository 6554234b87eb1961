"""Constrained decoding and streamed logprobs through the official client and a real server:
``response_format`` json_object and json_schema (sampled at temperature 1, streamed and
not, both engines), unsupported schemas as 400s, logprobs with ``stream: true`` equal to
the non-streamed ones, and ``echo`` with ``logprobs`` (the prompt's log-probabilities)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

PROMPTS = ["a record:", "hello", "the quick brown fox"]
SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "description": "annotations are allowed"},
        "age": {"type": "integer"},
        "ok": {"type": "boolean"},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
        "kind": {"enum": ["fox", "dog", 7]},
        "where": {"type": "object", "properties": {"x": {"type": "number"}, "y": {"type": ["string", "null"]}},
                  "required": ["x", "y"], "additionalProperties": False},
    },
    "required": ["name", "age", "ok", "kind", "where"],
    "additionalProperties": False,
}


def _client(srv: Any) -> Any:
    import openai

    return openai.OpenAI(base_url=srv.url + "/v1", api_key="unused", max_retries=0, timeout=120)


def _check_schema(doc: Any) -> None:
    """``doc`` is what SCHEMA describes (every keyword it uses, checked by hand)."""
    assert isinstance(doc, dict) and set(SCHEMA["required"]) <= set(doc) <= set(SCHEMA["properties"]), doc
    assert isinstance(doc["name"], str)
    assert isinstance(doc["age"], int) and not isinstance(doc["age"], bool)
    assert isinstance(doc["ok"], bool)
    assert doc["kind"] in ("fox", "dog", 7)
    assert isinstance(doc.get("tags", []), list) and len(doc.get("tags", [])) <= 3
    assert all(isinstance(t, str) for t in doc.get("tags", []))
    where = doc["where"]
    assert set(where) == {"x", "y"} and isinstance(where["x"], (int, float)) and not isinstance(where["x"], bool)
    assert where["y"] is None or isinstance(where["y"], str)


def _chat(c: Any, prompt: str, **kw: Any) -> Any:
    return c.chat.completions.create(model="tiny", messages=[{"role": "user", "content": prompt}], **kw)


def _streamed_text(c: Any, prompt: str, **kw: Any) -> tuple[str, str | None]:
    text, finish = "", None
    for chunk in _chat(c, prompt, stream=True, **kw):
        for ch in chunk.choices:
            text += ch.delta.content or ""
            finish = ch.finish_reason or finish
    return text, finish


def test_json_object_is_json_at_temperature_1(start_server, json_tiny):
    srv = start_server(model=str(json_tiny))
    c = _client(srv)
    fmt = {"type": "json_object"}
    loose = []
    for prompt in PROMPTS:
        for seed in (1, 2, 3):
            kw = {"temperature": 1.0, "seed": seed, "max_tokens": 300}
            out = _chat(c, prompt, response_format=fmt, **kw)
            text = out.choices[0].message.content
            assert out.choices[0].finish_reason == "stop", text
            assert isinstance(json.loads(text), dict), text
            # streamed: the same document, chunk by chunk
            assert _streamed_text(c, prompt, response_format=fmt, **kw) == (text, "stop")
            loose.append(_chat(c, prompt, **kw).choices[0].message.content)
    # the same requests without response_format: the model writes JSON-like lines, not JSON
    def parses(t: str) -> bool:
        try:
            json.loads(t)
            return True
        except ValueError:
            return False

    assert not all(parses(t) for t in loose), loose

    # max_tokens runs out before the object closes: "length", a prefix of a document
    short = _chat(c, PROMPTS[0], response_format=fmt, temperature=1.0, seed=1, max_tokens=3)
    assert short.choices[0].finish_reason == "length" and short.usage.completion_tokens == 3
    assert short.choices[0].message.content.lstrip().startswith("{")

    # legacy completions take response_format too (as vLLM does), and n > 1 in one batch
    legacy = c.completions.create(model="tiny", prompt="{", max_tokens=300, n=3, seed=4, temperature=1.0,
                                  extra_body={"response_format": fmt})
    assert all(isinstance(json.loads(ch.text), dict) and ch.finish_reason == "stop" for ch in legacy.choices)


def test_json_schema_output_validates(start_server, json_tiny):
    srv = start_server(model=str(json_tiny))
    c = _client(srv)
    fmt = {"type": "json_schema", "json_schema": {"name": "record", "schema": SCHEMA, "strict": True}}
    for prompt in PROMPTS:
        for seed in (1, 2):
            kw = {"temperature": 1.0, "seed": seed, "max_tokens": 400, "response_format": fmt}
            out = _chat(c, prompt, **kw)
            text = out.choices[0].message.content
            assert out.choices[0].finish_reason == "stop", text
            _check_schema(json.loads(text))
            assert _streamed_text(c, prompt, **kw) == (text, "stop")
    # greedy, with logprobs: the reported tokens are the document's
    out = _chat(c, "hello", temperature=0, max_tokens=400, response_format=fmt, logprobs=True, top_logprobs=3)
    _check_schema(json.loads(out.choices[0].message.content))
    content = out.choices[0].logprobs.content
    assert "".join(t.token for t in content) == out.choices[0].message.content
    assert all(t.logprob <= 0 and t.top_logprobs and t.top_logprobs[0].logprob == pytest.approx(t.logprob)
               for t in content)


def test_unsupported_schemas_are_400_naming_the_keyword(start_server, tiny_dir, _is_openai_error):
    import openai

    srv = start_server(model=str(tiny_dir))
    c = _client(srv)
    cases = [
        ({"type": "object", "properties": {"a": {"type": "string", "pattern": "^x+$"}}}, "pattern"),
        ({"type": "object", "properties": {"a": {"anyOf": [{"type": "string"}, {"type": "integer"}]}}}, "anyOf"),
        ({"type": "object", "properties": {"a": {"$ref": "#/$defs/b"}}, "$defs": {"b": {"type": "string"}}},
         "$defs"),
        ({"type": "object", "additionalProperties": {"type": "string"}}, "additionalProperties"),
        ({"type": "object", "properties": {"n": {"type": "integer", "minimum": 3}}}, "minimum"),
        ({"type": "array", "items": {"type": "string"}}, "type"),  # the root must be an object
        ({"type": "object", "properties": {"a": {"type": "date"}}}, "type"),
        ({"type": "object", "properties": {}, "required": ["a"]}, "required"),
    ]
    for schema, keyword in cases:
        fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
        with pytest.raises(openai.BadRequestError) as err:
            _chat(c, "hi", response_format=fmt, max_tokens=2)
        body = err.value.body
        assert err.value.status_code == 400 and body["param"] == "response_format", body
        assert f"'{keyword}'" in body["message"] or f"{keyword} " in body["message"], (keyword, body)
    with httpx.Client(timeout=30) as h:
        for fmt, param in (({"type": "json_schema"}, "response_format.json_schema"),
                           ({"type": "json_schema", "json_schema": {"schema": {"type": "object"}}},
                            "response_format.json_schema.name"),
                           ({"type": "json_schema", "json_schema": {"name": "a b"}}, "response_format.json_schema.name")):
            r = h.post(srv.url + "/v1/chat/completions",
                       json={"model": "tiny", "messages": [{"role": "user", "content": "x"}], "response_format": fmt})
            assert _is_openai_error(r, 400)["param"] == param, r.text


def _stream_chat_logprobs(c: Any, **kw: Any) -> tuple[str, list[Any]]:
    text, content, chunks = "", [], 0
    for chunk in c.chat.completions.create(stream=True, **kw):
        for ch in chunk.choices:
            text += ch.delta.content or ""
            if ch.logprobs is not None:
                content += ch.logprobs.content or []
                chunks += 1
            # the tokens sent so far cover the text sent so far (text may lag: a held-back stop-string prefix)
            assert "".join(t.token for t in content).startswith(text), (text, content)
    assert chunks > 1  # streamed token by token, not all at the end
    return text, content


def test_streamed_logprobs_equal_non_streamed(start_server, trained_tiny):
    srv = start_server(model=str(trained_tiny))
    c = _client(srv)
    kw = {"model": "tiny", "messages": [{"role": "user", "content": "once upon a time"}], "max_tokens": 24,
          "temperature": 0, "logprobs": True, "top_logprobs": 3, "stop": ["ten"]}
    plain = c.chat.completions.create(**kw)
    text, content = _stream_chat_logprobs(c, **kw)
    want = plain.choices[0].logprobs.content
    assert text == plain.choices[0].message.content and len(content) == len(want) > 0
    for got, exp in zip(content, want, strict=True):
        assert (got.token, got.bytes) == (exp.token, exp.bytes)
        assert got.logprob == pytest.approx(exp.logprob, abs=1e-5)
        assert [t.token for t in got.top_logprobs] == [t.token for t in exp.top_logprobs]

    # legacy completions: per-chunk logprobs, offsets continuing across chunks
    args = {"model": "tiny", "prompt": "the quick brown", "max_tokens": 20, "temperature": 0, "logprobs": 2}
    full = c.completions.create(**args).choices[0]
    tokens, lps, offsets, text = [], [], [], ""
    for chunk in c.completions.create(stream=True, **args):
        ch = chunk.choices[0]
        text += ch.text
        if ch.logprobs is not None:
            tokens += ch.logprobs.tokens
            lps += ch.logprobs.token_logprobs
            offsets += ch.logprobs.text_offset
    assert text == full.text and tokens == full.logprobs.tokens and offsets == full.logprobs.text_offset
    assert lps == pytest.approx(full.logprobs.token_logprobs, abs=1e-5)


def test_echo_with_logprobs_scores_the_prompt(start_server, trained_tiny):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(trained_tiny)
    model = AutoModelForCausalLM.from_pretrained(trained_tiny).eval()
    prompt = "the quick brown fox jumps"
    ids = tok(prompt).input_ids
    with torch.no_grad():
        expected = torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), -1)
    srv = start_server(model=str(trained_tiny))
    c = _client(srv)
    out = c.completions.create(model="tiny", prompt=prompt, max_tokens=4, temperature=0, logprobs=2, echo=True)
    ch = out.choices[0]
    lp = ch.logprobs
    n = len(ids)
    assert ch.text.startswith(prompt) and "".join(lp.tokens) == ch.text
    assert len(lp.tokens) == n + out.usage.completion_tokens
    assert lp.token_logprobs[0] is None and lp.top_logprobs[0] is None  # nothing predicts the first token
    for j in range(1, n):
        assert lp.token_logprobs[j] == pytest.approx(float(expected[j - 1, ids[j]]), abs=1e-4)
        assert len(lp.top_logprobs[j]) >= 1
    assert lp.text_offset == [sum(len(t) for t in lp.tokens[:k]) for k in range(len(lp.tokens))]
    # the completion's part is what the request without echo reports
    alone = c.completions.create(model="tiny", prompt=prompt, max_tokens=4, temperature=0, logprobs=2)
    assert lp.tokens[n:] == alone.choices[0].logprobs.tokens
    assert lp.token_logprobs[n:] == pytest.approx(alone.choices[0].logprobs.token_logprobs, abs=1e-5)

    # streamed: the echo chunk carries the prompt's logprobs, then the tokens follow
    tokens, lps, text = [], [], ""
    for chunk in c.completions.create(model="tiny", prompt=prompt, max_tokens=4, temperature=0, logprobs=2,
                                      echo=True, stream=True):
        text += chunk.choices[0].text
        if chunk.choices[0].logprobs is not None:
            tokens += chunk.choices[0].logprobs.tokens
            lps += chunk.choices[0].logprobs.token_logprobs
    assert text == ch.text and tokens == lp.tokens
    assert lps[0] is None and lps[1:] == pytest.approx(lp.token_logprobs[1:], abs=1e-5)


def test_ort_engine_honours_constraints(start_server, trained_tiny, engine_cache, monkeypatch):
    """The ort engine samples through the same per-row processor: greedy constrained output
    is the eager engine's, and schema output validates (a bounded schema: it always closes);
    its prompt logprobs (echo) are the eager engine's too."""
    monkeypatch.setenv("LLMOS_ENGINE_CACHE", str(engine_cache[0]))
    ort = start_server(model=str(trained_tiny), engine="ort")
    eager = start_server(model=str(trained_tiny), engine="eager")
    assert httpx.get(ort.url + "/stats", timeout=10).json()["engines"][0]["engine"] == "ort"
    schema = {"type": "object", "properties": {"kind": {"enum": ["fox", "dog"]}, "n": {"type": "integer"},
                                               "ok": {"type": "boolean"}, "v": {"type": "null"}},
              "required": ["kind", "n", "ok", "v"]}
    fmt = {"type": "json_schema", "json_schema": {"name": "s", "schema": schema}}
    texts = {}
    for name, srv in (("ort", ort), ("eager", eager)):
        c = _client(srv)
        outs = [_chat(c, p, response_format=fmt, temperature=0, max_tokens=120).choices[0] for p in PROMPTS]
        for o in outs:
            doc = json.loads(o.message.content)
            assert set(doc) == {"kind", "n", "ok", "v"} and doc["kind"] in ("fox", "dog"), doc
        texts[name] = [o.message.content for o in outs]
        echo = c.completions.create(model="tiny", prompt=PROMPTS[2], max_tokens=3, temperature=0, logprobs=1,
                                    echo=True).choices[0].logprobs
        texts[name + " echo"] = echo.tokens
        texts[name + " echo logprobs"] = echo.token_logprobs
    assert texts["ort"] == texts["eager"] and texts["ort echo"] == texts["eager echo"]
    assert texts["ort echo logprobs"][0] is None and len(texts["ort echo"]) > 4
    assert texts["ort echo logprobs"][1:] == pytest.approx(texts["eager echo logprobs"][1:], abs=1e-4)


def test_constrained_and_free_rows_share_a_batch(start_server, json_tiny):
    """Per-row constraint: JSON and free requests decoded together give what each gives alone."""
    from concurrent.futures import ThreadPoolExecutor

    srv = start_server(model=str(json_tiny))
    c = _client(srv)
    reqs = [(p, fmt) for p in PROMPTS[:2] for fmt in ({"type": "json_object"}, None)]

    def one(req: tuple[str, Any]) -> str:
        kw = {"response_format": req[1]} if req[1] else {}
        return _chat(c, req[0], temperature=0, max_tokens=60, **kw).choices[0].message.content

    alone = [one(r) for r in reqs]
    with ThreadPoolExecutor(len(reqs)) as ex:
        together = list(ex.map(one, reqs))
    assert together == alone
    assert json.loads(alone[0]) is not None and json.loads(alone[2]) is not None
    stats = httpx.get(srv.url + "/stats", timeout=10).json()["engines"][0]
    assert stats["max_batch_size_seen"] >= 2, stats
