"""Error shapes and codes, limits (queue, body, timeout), disconnects, admin auth,
health/readiness/metrics, canary routing, monitoring hooks."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import httpx
import pytest


def test_error_shapes_and_codes(start_server, tiny_dir, _is_openai_error):
    srv = start_server(model=str(tiny_dir), max_tokens_limit=64, max_body_bytes=4096)
    u = srv.url
    ok = {"model": "tiny", "prompt": "hello", "max_tokens": 2}

    err = _is_openai_error(httpx.post(u + "/v1/completions", json={**ok, "model": "other"}), 404)
    assert err["code"] == "model_not_found" and err["param"] == "model"
    # invalid fields and invalid JSON -> 400 (as OpenAI answers; never FastAPI's 422)
    err = _is_openai_error(httpx.post(u + "/v1/completions", json={**ok, "temperature": 9}), 400)
    assert err["param"] == "temperature" and err["code"] == "invalid_value"
    err = _is_openai_error(httpx.post(u + "/v1/completions", json={"prompt": "x"}), 400)  # no model
    assert err["param"] == "model" and err["code"] == "missing_required_parameter"
    _is_openai_error(httpx.post(u + "/v1/chat/completions", json={"model": "tiny", "messages": []}), 400)
    err = _is_openai_error(
        httpx.post(u + "/v1/completions", content=b"{not json", headers={"content-type": "application/json"}), 400
    )
    assert err["code"] == "invalid_json"
    # over the limits -> 400
    err = _is_openai_error(httpx.post(u + "/v1/completions", json={**ok, "max_tokens": 65}), 400)
    assert err["param"] == "max_tokens"
    err = _is_openai_error(httpx.post(u + "/v1/completions", json={**ok, "prompt": "hello " * 600}), 400)
    assert err["code"] == "context_length_exceeded" and "512" in err["message"]
    err = _is_openai_error(
        httpx.post(u + "/v1/chat/completions",
                   json={"model": "tiny", "messages": [{"role": "user", "content": "hi " * 500}], "max_tokens": 60}),
        400,
    )
    assert err["code"] == "context_length_exceeded"
    _is_openai_error(httpx.post(u + "/v1/completions", json={**ok, "prompt": [10**6]}), 400)
    _is_openai_error(httpx.post(u + "/v1/completions", json={**ok, "suffix": "tail"}), 400)  # unsupported
    err = _is_openai_error(httpx.post(u + "/v1/completions", json={**ok, "prompt": ["a"] * 16, "n": 16}), 400)
    assert err["param"] == "n"  # more sequences than the server can ever hold: not a 429
    # body size limit -> 413, announced or streamed (chunked, no content-length)
    big = {**ok, "prompt": "x" * 5000}
    _is_openai_error(httpx.post(u + "/v1/completions", json=big), 413)

    def chunks() -> Any:
        yield b'{"model": "tiny", "prompt": "'
        for _ in range(10):
            yield b"y" * 1000
        yield b'"}'

    _is_openai_error(httpx.post(u + "/v1/completions", content=chunks(), headers={"content-type": "application/json"}),
                     413)
    # unknown route and wrong method keep the shape; every response names the version
    r = httpx.get(u + "/v2/nothing")
    _is_openai_error(r, 404)
    assert r.headers["x-llmos-model-version"] == "tiny:local"
    _is_openai_error(httpx.get(u + "/v1/completions"), 405)


def test_request_timeout_is_504(start_server, tiny_dir, _is_openai_error):
    srv = start_server(model=str(tiny_dir), timeout=0.05, max_batch_size=1)
    body = {"model": "tiny", "prompt": "hello", "max_tokens": 500, "temperature": 0,
            "stop": ["never-produced-stop-string"]}
    err = _is_openai_error(httpx.post(srv.url + "/v1/completions", json=body, timeout=30), 504)
    assert err["type"] == "timeout_error"
    # the timed-out sequence was cancelled: the single slot is free again
    deadline = time.monotonic() + 5
    while httpx.get(srv.url + "/stats").json()["engines"][0]["running"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert httpx.get(srv.url + "/stats").json()["engines"][0]["running"] == 0


def test_full_queue_is_429_with_retry_after(start_server, tiny_dir):
    srv = start_server(model=str(tiny_dir), max_batch_size=1, max_queue=1)
    body = {"model": "tiny", "prompt": "hello", "max_tokens": 500, "temperature": 0,
            "stop": ["never-produced-stop-string"]}
    codes: list[int] = []
    retry: list[str | None] = []

    def run() -> None:
        r = httpx.post(srv.url + "/v1/completions", json=body, timeout=60)
        codes.append(r.status_code)
        retry.append(r.headers.get("retry-after"))
        if r.status_code == 429:
            assert r.json()["error"]["type"] == "rate_limit_error"

    threads = [threading.Thread(target=run) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert 429 in codes and 200 in codes, codes
    assert all(rt and int(rt) >= 1 for c, rt in zip(codes, retry, strict=True) if c == 429)
    assert set(codes) <= {200, 429}


def test_client_disconnect_mid_stream_frees_slot(start_server, tiny_dir):
    srv = start_server(model=str(tiny_dir), max_batch_size=1, max_queue=0)
    body = {"model": "tiny", "prompt": "hello", "max_tokens": 500, "temperature": 0, "stream": True,
            "stop": ["never-produced-stop-string"]}
    host, port = srv.host, srv.port
    import json as _json

    payload = _json.dumps(body).encode()
    sock = socket.create_connection((host, port))
    sock.sendall(
        b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(payload)}\r\n\r\n".encode() + payload
    )
    got = b""
    while got.count(b"data: ") < 3:
        got += sock.recv(4096)
    stats = httpx.get(srv.url + "/stats").json()["engines"][0]
    assert stats["running"] == 1
    sock.close()  # the client goes away mid-stream
    t0 = time.monotonic()
    while httpx.get(srv.url + "/stats").json()["engines"][0]["running"] and time.monotonic() - t0 < 5:
        time.sleep(0.01)
    freed_after = time.monotonic() - t0
    assert httpx.get(srv.url + "/stats").json()["engines"][0]["running"] == 0
    assert freed_after < 2.0
    # the only slot serves the next request
    r = httpx.post(srv.url + "/v1/completions", json={**body, "stream": False, "max_tokens": 3}, timeout=30)
    assert r.status_code == 200


def test_admin_endpoints_need_the_token(start_server, tiny_dir, _is_openai_error):
    off = start_server(model=str(tiny_dir))
    err = _is_openai_error(httpx.post(off.url + "/admin/reload", headers={"Authorization": "Bearer x"}), 403)
    assert "--admin-token" in err["message"]

    srv = start_server(model=str(tiny_dir), admin_token="s3cret")
    _is_openai_error(httpx.post(srv.url + "/admin/reload"), 401)
    r = httpx.post(srv.url + "/admin/reload", headers={"Authorization": "Bearer wrong"})
    _is_openai_error(r, 401)
    assert r.headers["www-authenticate"] == "Bearer"
    _is_openai_error(httpx.post(srv.url + "/admin/alias", json={"alias": "production", "version": 1}), 401)
    _is_openai_error(httpx.post(srv.url + "/admin/alias", json={"bad": "body"}), 401)  # auth before validation
    r = httpx.post(srv.url + "/admin/reload", headers={"Authorization": "Bearer s3cret"}, timeout=60)
    assert r.status_code == 200, r.text
    assert r.json()["reloaded"][0]["new"] == "tiny:local"
    # still serving after the reload
    ok = httpx.post(srv.url + "/v1/completions", json={"model": "tiny", "prompt": "hi", "max_tokens": 2})
    assert ok.status_code == 200


def test_health_ready_metrics_and_access_log(start_server, tiny_dir, caplog):
    srv = start_server(model=str(tiny_dir), access_log=True)
    assert httpx.get(srv.url + "/health").json() == {"status": "ok"}
    ready = httpx.get(srv.url + "/ready").json()
    assert ready["status"] == "ready" and ready["primary"]["version"] == "tiny:local"
    with caplog.at_level("INFO", logger="llmos.serve.access"):
        for stream in (False, True):
            httpx.post(srv.url + "/v1/completions",
                       json={"model": "tiny", "prompt": "hi", "max_tokens": 4, "stream": stream, "temperature": 0}).read()
        httpx.post(srv.url + "/v1/completions", json={"model": "zzz", "prompt": "hi"})
        # the access line is written after the response is sent: wait for it (bounded)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            lines = [r.getMessage() for r in caplog.records if r.name == "llmos.serve.access"]
            if len(lines) >= 3:
                break
            time.sleep(0.05)
    assert any('"POST /v1/completions" 200' in line and "version=tiny:local" in line for line in lines), lines
    assert any('"POST /v1/completions" 404' in line for line in lines), lines
    text = httpx.get(srv.url + "/metrics").text
    for name in (
        "llmos_num_requests_running", "llmos_num_requests_waiting", "llmos_time_to_first_token_seconds_bucket",
        "llmos_inter_token_latency_seconds_bucket", "llmos_e2e_request_latency_seconds_count",
        "llmos_batch_size_bucket", "llmos_generation_tokens_per_second",
    ):
        assert name in text, name
    assert 'llmos_request_success_total{finished_reason="length",model_name="tiny",version="tiny:local"} 2.0' in text
    assert 'llmos_generation_tokens_total{model_name="tiny",version="tiny:local"} 8.0' in text
    assert 'llmos_request_errors_total{status="404"} 1.0' in text
    assert "llmos:" not in text  # Prometheus naming: colons are for recording rules


def test_hook_after_request_reaches_plugins(start_server, tiny_dir, plugin_manager):
    from llmos import hookimpl

    seen: list[tuple[dict, dict]] = []

    class Recorder:
        LLMOS_API = 2

        @hookimpl
        def llmos_after_request(self, request, metrics):
            seen.append((request, metrics))

    plugin_manager.register(Recorder(), name="recorder")
    srv = start_server(model=str(tiny_dir))
    r = httpx.post(srv.url + "/v1/chat/completions",
                   json={"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3})
    assert r.status_code == 200, r.text
    usage = r.json()["usage"]
    deadline = time.monotonic() + 5
    while not seen and time.monotonic() < deadline:
        time.sleep(0.02)
    request, metrics = seen[0]
    assert request == {"model": "tiny", "version": "tiny:local", "endpoint": "/v1/chat/completions",
                       "status": 200, "stream": False}
    # what the client was told (sampled at temperature 1: the untrained model may end before 3 tokens)
    assert (metrics["completion_tokens"], metrics["prompt_tokens"]) == (usage["completion_tokens"], usage["prompt_tokens"])
    assert 1 <= metrics["completion_tokens"] <= 3 and metrics["prompt_tokens"] > 0 and metrics["latency_s"] > 0
    assert "time_to_first_token_s" in metrics


def test_canary_split_within_tolerance(start_server, tiny_models, tmp_path):
    import shutil

    a, b = tmp_path / "tiny", tmp_path / "tiny-canary"
    shutil.copytree(tiny_models[0], a)
    shutil.copytree(tiny_models[1], b)
    srv = start_server(model=str(a), canary=str(b), canary_percent=25, routing_seed=1)
    n = 400
    versions = []
    with httpx.Client(timeout=30) as c:
        for _ in range(n):
            r = c.post(srv.url + "/v1/completions", json={"model": "tiny", "prompt": "hi", "max_tokens": 1})
            assert r.status_code == 200
            versions.append(r.headers["x-llmos-model-version"])
        # naming the canary explicitly always reaches it
        for name in ("tiny-canary", str(b)):
            r = c.post(srv.url + "/v1/completions", json={"model": name, "prompt": "hi", "max_tokens": 1})
            assert r.headers["x-llmos-model-version"] == "tiny-canary:local"
    assert set(versions) == {"tiny:local", "tiny-canary:local"}
    cards = {m["id"]: m["version"] for m in httpx.get(srv.url + "/v1/models").json()["data"]}
    assert cards["tiny"] == "tiny:local" and cards["tiny-canary"] == "tiny-canary:local"
    share = versions.count("tiny-canary:local") / n
    assert abs(share - 0.25) < 0.06, share
    engines = {e["label"]: e["sequences_finished"] for e in httpx.get(srv.url + "/stats").json()["engines"]}
    assert engines == {"tiny:local": versions.count("tiny:local"), "tiny-canary:local": n + 2 - versions.count("tiny:local")}


@pytest.mark.parametrize("path", ["/v1/completions", "/v1/chat/completions"])
def test_not_ready_while_loading_is_503(plugin_manager, tiny_dir, path, _is_openai_error):
    from fastapi.testclient import TestClient

    from llmos_serve.app import create_app
    from llmos_serve.config import ServeConfig

    app = create_app(ServeConfig(model=str(tiny_dir), access_log=False))
    pool = app.state.llmos.pool
    pool.ready.set()  # pretend started, but nothing loaded: requests must wait politely, not crash
    with TestClient(app) as client:
        r = client.get("/ready")
        assert r.status_code == 200
        body = {"model": "tiny", "prompt": "x", "messages": [{"role": "user", "content": "x"}], "max_tokens": 1}
        r = client.post(path, json=body)
        _is_openai_error(r, 503)
        assert r.headers["retry-after"]
