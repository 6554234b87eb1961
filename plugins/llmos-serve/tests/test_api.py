"""The OpenAI-compatible API through the real ``openai`` client and raw HTTP."""

from __future__ import annotations

import json
import threading
from typing import Any

import httpx
import pytest


def _client(srv: Any) -> Any:
    import openai

    return openai.OpenAI(base_url=srv.url + "/v1", api_key="unused", max_retries=0, timeout=30)


def test_openai_client_completions_and_chat(start_server, tiny_dir):
    srv = start_server(model=str(tiny_dir))
    client = _client(srv)

    models = client.models.list()
    assert [m.id for m in models.data][0] == "tiny"

    raw = client.completions.with_raw_response.create(model="tiny", prompt="the quick", max_tokens=5, temperature=0)
    assert raw.headers["x-llmos-model-version"] == "tiny:local"
    done = raw.parse()
    assert done.object == "text_completion"
    assert done.choices[0].finish_reason in ("length", "stop")
    assert done.usage.completion_tokens == 5 or done.choices[0].finish_reason == "stop"
    assert done.usage.total_tokens == done.usage.prompt_tokens + done.usage.completion_tokens

    stream = client.completions.create(model="tiny", prompt="the quick", max_tokens=5, temperature=0, stream=True)
    pieces = list(stream)
    assert "".join(p.choices[0].text for p in pieces) == done.choices[0].text
    assert pieces[-1].choices[0].finish_reason == done.choices[0].finish_reason

    chat = client.chat.completions.create(
        model="tiny", messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}],
        max_tokens=6, temperature=0,
    )
    assert chat.object == "chat.completion"
    assert chat.choices[0].message.role == "assistant"
    assert chat.usage.completion_tokens <= 6

    chunks = list(
        client.chat.completions.create(
            model="tiny", messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}],
            max_tokens=6, temperature=0, stream=True, stream_options={"include_usage": True},
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == chat.choices[0].message.content
    assert chunks[-1].usage.completion_tokens == chat.usage.completion_tokens


def test_stream_ends_with_done_and_sse_shape(start_server, tiny_dir):
    srv = start_server(model=str(tiny_dir))
    body = {"model": "tiny", "prompt": "hello", "max_tokens": 4, "stream": True}
    with httpx.stream("POST", srv.url + "/v1/completions", json=body, timeout=30) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["x-llmos-model-version"] == "tiny:local"
        lines = [line for line in r.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    for line in lines[:-1]:
        chunk = json.loads(line.removeprefix("data: "))
        assert chunk["object"] == "text_completion" and chunk["id"].startswith("cmpl-")


def test_sampling_parameters(start_server, tiny_dir):
    srv = start_server(model=str(tiny_dir))
    client = _client(srv)
    greedy = client.completions.create(model="tiny", prompt="once upon", max_tokens=12, temperature=0)
    text = greedy.choices[0].text
    assert greedy.usage.completion_tokens == 12

    # seed: same seed, same sample; n: several choices with their own seeds
    a = client.completions.create(model="tiny", prompt="once upon", max_tokens=10, temperature=1.0, seed=7, n=3)
    b = client.completions.create(model="tiny", prompt="once upon", max_tokens=10, temperature=1.0, seed=7, n=3)
    assert [c.text for c in a.choices] == [c.text for c in b.choices]
    assert [c.index for c in a.choices] == [0, 1, 2]
    assert len({c.text for c in a.choices}) > 1, "n choices should differ"
    assert 3 <= a.usage.completion_tokens <= 30
    assert a.usage.prompt_tokens == b.usage.prompt_tokens == greedy.usage.prompt_tokens  # counted once, not per n

    # top_k=1 is greedy whatever the temperature; a tiny top_p too
    k1 = client.completions.create(model="tiny", prompt="once upon", max_tokens=12, temperature=1.5,
                                   extra_body={"top_k": 1}, seed=3)
    assert k1.choices[0].text == text
    p = client.completions.create(model="tiny", prompt="once upon", max_tokens=12, temperature=1.5, top_p=1e-6)
    assert p.choices[0].text == text

    # stop: generation ends before the stop string, finish_reason "stop"
    stop = text[3:6]
    cut = client.completions.create(model="tiny", prompt="once upon", max_tokens=12, temperature=0, stop=[stop])
    assert cut.choices[0].finish_reason == "stop"
    assert cut.choices[0].text == text[: text.find(stop)]
    streamed = "".join(
        c.choices[0].text
        for c in client.completions.create(model="tiny", prompt="once upon", max_tokens=12, temperature=0,
                                           stop=stop, stream=True)
    )
    assert streamed == cut.choices[0].text

    # penalties change what greedy decoding picks once tokens repeat
    long = client.completions.create(model="tiny", prompt="once upon", max_tokens=80, temperature=0)
    pen = client.completions.create(model="tiny", prompt="once upon", max_tokens=80, temperature=0,
                                    frequency_penalty=2.0, presence_penalty=2.0)
    assert pen.choices[0].text != long.choices[0].text

    # a list of prompts and token-id prompts
    multi = client.completions.create(model="tiny", prompt=["once upon", "the quick"], max_tokens=3, temperature=0)
    assert len(multi.choices) == 2 and multi.choices[0].text == text[: len(multi.choices[0].text)]
    ids = client.completions.create(model="tiny", prompt=[5, 6, 7], max_tokens=3, temperature=0)
    assert ids.usage.prompt_tokens == 3


def test_concurrent_requests_are_batched_and_match_sequential(start_server, tiny_dir):
    srv = start_server(model=str(tiny_dir), max_batch_size=8)
    prompts = ["the quick brown", "hello", "numbers one two three four", "a little server", "once", "fox jumps"]
    body = {"model": "tiny", "max_tokens": 24, "temperature": 0}
    with httpx.Client(timeout=60) as c:
        sequential = [c.post(srv.url + "/v1/completions", json={**body, "prompt": p}).json() for p in prompts]
    results: dict[int, Any] = {}

    def run(i: int) -> None:
        with httpx.Client(timeout=60) as c:
            results[i] = c.post(srv.url + "/v1/completions", json={**body, "prompt": prompts[i]}).json()

    for _ in range(2):
        threads = [threading.Thread(target=run, args=(i,)) for i in range(len(prompts))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # batching (left padding, merged KV caches) must not change what greedy decoding produces
        assert [r["choices"][0]["text"] for r in results.values()] != []
        for i in range(len(prompts)):
            assert results[i]["choices"][0]["text"] == sequential[i]["choices"][0]["text"], prompts[i]
    stats = httpx.get(srv.url + "/stats").json()["engines"][0]
    assert stats["max_batch_size_seen"] > 1, stats


@pytest.mark.parametrize("stream", [False, True])
def test_unknown_model_is_404(start_server, tiny_dir, stream):
    import openai

    srv = start_server(model=str(tiny_dir))
    with pytest.raises(openai.NotFoundError) as err:
        _client(srv).completions.create(model="gpt-nope", prompt="x", max_tokens=2, stream=stream)
    assert err.value.body["code"] == "model_not_found"
