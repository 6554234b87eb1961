"""Trust boundaries of the server: the API key, liveness under big prompts, and
4xx (never 5xx) for malformed input. Real servers on loopback ports."""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

import httpx
import pytest


def _client(srv: Any, key: str) -> Any:
    import openai

    return openai.OpenAI(base_url=srv.url + "/v1", api_key=key, max_retries=0, timeout=30)


def test_api_key_protects_v1_and_not_health(start_server, tiny_dir, caplog, _is_openai_error):
    import openai

    key = "sk-test-6f1d2c"
    with caplog.at_level(logging.INFO, logger="llmos.serve"):
        srv = start_server(model=str(tiny_dir), api_key=key, access_log=True)
        good = _client(srv, key)
        assert [m.id for m in good.models.list().data][0] == "tiny"
        done = good.completions.create(model="tiny", prompt="hello", max_tokens=3, temperature=0)
        assert done.usage.completion_tokens == 3
        chunks = list(good.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hi"}],
                                                   max_tokens=3, stream=True))
        assert chunks[-1].choices[0].finish_reason in ("length", "stop")

        with pytest.raises(openai.AuthenticationError) as err:
            _client(srv, "sk-wrong").completions.create(model="tiny", prompt="hello", max_tokens=3)
        assert err.value.body["code"] == "invalid_api_key"
        with pytest.raises(openai.AuthenticationError):
            _client(srv, "sk-wrong").models.list()
    # without a key: 401 in OpenAI's shape on every /v1 route (known or not), before the body is read
    for method, path in (("GET", "/v1/models"), ("POST", "/v1/completions"), ("POST", "/v1/chat/completions"),
                         ("GET", "/v1/nothing-here"), ("POST", "/v1/embeddings")):
        r = httpx.request(method, srv.url + path, json={"model": "tiny", "prompt": "x"})
        err = _is_openai_error(r, 401)
        assert err["code"] == "invalid_api_key" and r.headers["www-authenticate"] == "Bearer"
        assert key not in r.text
    r = httpx.post(srv.url + "/v1/completions", json={"model": "tiny", "prompt": "x"},
                   headers={"Authorization": "Basic " + key})
    _is_openai_error(r, 401)
    # liveness and readiness stay open (load balancers, Kubernetes probes)
    assert httpx.get(srv.url + "/health").status_code == 200
    assert httpx.get(srv.url + "/ready").status_code == 200
    # the key is never logged, nor in the settings' repr
    assert not [r for r in caplog.records if key in r.getMessage()]
    assert key not in repr(srv.config)


def test_warns_when_listening_beyond_loopback_without_key(tiny_dir, plugin_manager, caplog):
    from llmos_serve.config import ServeConfig
    from llmos_serve.server import BackgroundServer, exposure_warning

    with caplog.at_level(logging.WARNING, logger="llmos.serve"):
        srv = BackgroundServer(ServeConfig(model=str(tiny_dir), host="0.0.0.0", port=0, access_log=False))
        srv._sock.close()
    warned = [r.getMessage() for r in caplog.records if "without an API key" in r.getMessage()]
    assert warned and "--api-key" in warned[0] and "LLMOS_API_KEY" in warned[0]
    assert exposure_warning(ServeConfig(model="x", host="0.0.0.0", api_key="k")) is None
    assert exposure_warning(ServeConfig(model="x", host="127.0.0.1")) is None
    assert exposure_warning(ServeConfig(model="x", host="::1")) is None
    assert exposure_warning(ServeConfig(model="x", host="192.168.1.7")) is not None


def test_health_answers_while_big_prompts_are_processed(start_server, tiny_dir):
    """Tokenizing runs off the event loop, and prompts too big for the context are
    refused by their byte length before any tokenizing."""
    srv = start_server(model=str(tiny_dir), timeout=60)
    huge = "hello world the quick brown fox " * 28_000  # ~0.9 MB: under the body limit, far past the context
    near = ("hello world the quick brown fox " * 2000)[:20_000]  # under the byte bound (26 kB here): tokenized
    results: list[tuple[int, dict]] = []

    def post(body: bytes) -> None:
        with httpx.Client(timeout=120) as c:
            r = c.post(srv.url + "/v1/completions", content=body, headers={"content-type": "application/json"})
            results.append((r.status_code, r.json()))

    bodies = [json.dumps({"model": "tiny", "prompt": p, "max_tokens": 4}).encode() for p in [huge] * 4 + [near] * 4]
    threads = [threading.Thread(target=post, args=(b,)) for b in bodies]
    probes: list[float] = []
    with httpx.Client(timeout=30) as probe:
        probe.get(srv.url + "/health")  # connection open before the load starts
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads) or len(probes) < 5:
            t0 = time.perf_counter()
            assert probe.get(srv.url + "/health").status_code == 200
            probes.append(time.perf_counter() - t0)
            time.sleep(0.01)
    for t in threads:
        t.join()
    # today's main: each ~1 MB prompt is tokenized on the event loop, /health waits seconds.
    # The median is held to 100 ms; the worst probe only to 1 s, because this test machine
    # is shared (load ~10 on 2 cores) and a thread can wait that long for a core.
    probes.sort()
    assert probes[len(probes) // 2] < 0.1 and probes[-1] < 1.0, probes
    assert [code for code, _ in results] == [400] * 8, results
    assert {body["error"]["code"] for _, body in results} == {"context_length_exceeded"}
    refused = [body["error"]["message"] for _, body in results if "bytes" in body["error"]["message"]]
    assert len(refused) == 4, results  # the ~1 MB ones, by byte length, before tokenizing


_MALFORMED = [
        ("/v1/completions", {"prompt": "\ud800"}, "prompt"),
        ("/v1/completions", {"prompt": ["ok", "bad \udfff"]}, "prompt"),
        ("/v1/completions", {"prompt": "hi", "stop": ["\ud800"]}, "stop"),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "\ud83d"}]}, "messages"),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": [{"type": "text", "text": "\ud800"}]}]},
         "messages"),
        ("/v1/completions", {"prompt": "hi", "max_tokens": True}, "max_tokens"),
        ("/v1/completions", {"prompt": "hi", "n": True}, "n"),
        ("/v1/completions", {"prompt": "hi", "max_tokens": 2.0}, "max_tokens"),
        ("/v1/completions", {"prompt": "hi", "temperature": True}, "temperature"),
        ("/v1/completions", {"prompt": "hi", "stream": "yes"}, "stream"),
        ("/v1/completions", {"prompt": [True, 3]}, "prompt"),
        ("/v1/completions", {"prompt": "hi", "seed": False}, "seed"),
        ("/v1/completions", {"prompt": "hi", "max_tokens": "5"}, "max_tokens"),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "max_completion_tokens": True},
         "max_completion_tokens"),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": 5}]}, "messages"),
]


def test_malformed_values_are_400_not_500(start_server, tiny_dir, _is_openai_error):
    srv = start_server(model=str(tiny_dir))
    with httpx.Client(timeout=30) as c:
        for path, body, param in _MALFORMED:
            raw = json.dumps({"model": "tiny", **body})  # lone surrogates go out as \\ud800 escapes
            r = c.post(srv.url + path, content=raw, headers={"content-type": "application/json"})
            err = _is_openai_error(r, 400)
            assert (err["param"] or "").split(".")[0] == param, (body, err)
        assert c.post(srv.url + "/v1/completions", json={"model": "tiny", "prompt": "hi", "max_tokens": 2}).status_code == 200
