"""Versions by alias through the real registry: hot switch under traffic, admin
alias endpoint, promote/rollback, and the CLI in real processes (--workers 2)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest


@pytest.fixture
def registry(llmos_home: Path, tiny_models: list[Path]) -> Any:
    """A registry in a fresh home with tiny:1 and tiny:2, production -> 1."""
    from llmos.registry import open_registry

    reg = open_registry()
    for path in tiny_models:
        reg.register_version("tiny", path)
    reg.set_alias("tiny", "production", 1)
    return reg


def _complete(url: str, **kw: Any) -> httpx.Response:
    body = {"model": "tiny", "prompt": "hello", "max_tokens": 4, **kw}
    return httpx.post(url + "/v1/completions", json=body, timeout=60)


def test_follows_alias_without_failing_in_flight_requests(start_server, registry):
    srv = start_server(model="tiny@production", poll_interval=0.1)
    assert _complete(srv.url).headers["x-llmos-model-version"] == "tiny:1"

    # a long stream started on version 1 ...
    long_body = {"model": "tiny", "prompt": "once", "max_tokens": 100, "temperature": 0, "stream": True,
                 "stop": ["never-produced-stop-string"]}
    long_result: dict[str, Any] = {}
    started = threading.Event()

    def long_stream() -> None:
        with httpx.stream("POST", srv.url + "/v1/completions", json=long_body, timeout=60) as r:
            long_result["version"] = r.headers["x-llmos-model-version"]
            lines = []
            for line in r.iter_lines():
                if line:
                    lines.append(line)
                    started.set()
                    time.sleep(0.005)  # a slow reader: still streaming while the alias moves
            long_result["lines"] = lines

    # ... while other clients keep sending requests
    results: list[tuple[float, float, int, str]] = []
    stop = threading.Event()

    def traffic() -> None:
        with httpx.Client(timeout=60) as c:
            while not stop.is_set():
                t0 = time.monotonic()
                r = c.post(srv.url + "/v1/completions", json={"model": "tiny", "prompt": "hi", "max_tokens": 3})
                results.append((t0, time.monotonic(), r.status_code, r.headers.get("x-llmos-model-version", "")))

    threads = [threading.Thread(target=long_stream)] + [threading.Thread(target=traffic) for _ in range(3)]
    for t in threads:
        t.start()
    assert started.wait(30)
    registry.set_alias("tiny", "production", 2)  # what `llmos model alias set` / `deploy promote` do
    moved_at = time.monotonic()
    deadline = moved_at + 20
    while not any(v == "tiny:2" for *_, v in results) and time.monotonic() < deadline:
        time.sleep(0.01)
    switched_at = min(t0 for t0, _, _, v in results if v == "tiny:2")
    time.sleep(0.3)
    stop.set()
    for t in threads:
        t.join(60)

    assert all(code == 200 for _, _, code, _ in results), [r for r in results if r[2] != 200]
    assert {v for *_, v in results} == {"tiny:1", "tiny:2"}
    # every request that started after the first one served by 2 (plus the watcher's poll) got 2
    late = [v for t0, _, _, v in results if t0 > switched_at + 0.05]
    assert late and set(late) == {"tiny:2"}
    # the in-flight stream finished on the version it started on
    assert long_result["version"] == "tiny:1"
    assert long_result["lines"][-1] == "data: [DONE]"
    chunks = [json.loads(x.removeprefix("data: ")) for x in long_result["lines"][:-1]]
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert all(c["system_fingerprint"] == "tiny:1" for c in chunks)
    # version 1 is unloaded once drained
    deadline = time.monotonic() + 10
    while httpx.get(srv.url + "/ready").json()["loaded"] != ["tiny:2"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert httpx.get(srv.url + "/ready").json()["loaded"] == ["tiny:2"]


def test_admin_alias_switches_at_once(start_server, registry):
    srv = start_server(model="tiny@production", admin_token="tok", poll_interval=0)
    auth = {"Authorization": "Bearer tok"}
    r = httpx.post(srv.url + "/admin/alias", json={"alias": "production", "version": 2}, headers=auth, timeout=60)
    assert r.status_code == 200, r.text
    assert r.json()["previous"] == 1 and r.json()["serving"]["primary"]["version"] == "tiny:2"
    assert _complete(srv.url).headers["x-llmos-model-version"] == "tiny:2"  # no poll needed
    assert registry.resolve("tiny@production").number == 2
    r = httpx.post(srv.url + "/admin/alias", json={"alias": "production", "version": 9}, headers=auth)
    assert r.status_code == 404 and "9" in r.json()["error"]["message"]
    assert registry.resolve("tiny@production").number == 2  # nothing changed
    r = httpx.post(srv.url + "/admin/alias", json={"alias": "latest", "version": 1}, headers=auth)
    assert r.status_code == 400  # reserved alias name, refused by the registry


def test_a_version_that_does_not_load_is_never_served(start_server, registry, tiny_models, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_models[0], broken)
    cfg = json.loads((broken / "config.json").read_text())
    cfg["hidden_size"] = 64  # weights no longer fit the architecture
    (broken / "config.json").write_text(json.dumps(cfg))
    assert registry.register_version("tiny", broken).number == 3
    srv = start_server(model="tiny@production", admin_token="tok", poll_interval=0.1)
    # through the admin endpoint: refused, the alias stays where it was
    r = httpx.post(srv.url + "/admin/alias", json={"alias": "production", "version": 3},
                   headers={"Authorization": "Bearer tok"}, timeout=60)
    assert r.status_code == 409 and "was not moved" in r.json()["error"]["message"]
    assert registry.resolve("tiny@production").number == 1
    # moved in the registry: the watcher tries once, keeps serving version 1, says why
    registry.set_alias("tiny", "production", 3)
    deadline = time.monotonic() + 20
    while "failed" not in httpx.get(srv.url + "/ready").json() and time.monotonic() < deadline:
        time.sleep(0.05)
    ready = httpx.get(srv.url + "/ready").json()
    assert "tiny:3" in ready["failed"] and ready["primary"]["version"] == "tiny:1"
    assert _complete(srv.url).headers["x-llmos-model-version"] == "tiny:1"
    # a good version is picked up again
    registry.set_alias("tiny", "production", 2)
    deadline = time.monotonic() + 20
    while httpx.get(srv.url + "/ready").json()["primary"]["version"] != "tiny:2" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _complete(srv.url).headers["x-llmos-model-version"] == "tiny:2"


def test_canary_alias_and_fixed_version(start_server, registry):
    registry.set_alias("tiny", "canary", 2)
    srv = start_server(model="tiny@production", canary="tiny@canary", canary_percent=50, routing_seed=3,
                       poll_interval=0)
    seen = [_complete(srv.url, max_tokens=1).headers["x-llmos-model-version"] for _ in range(60)]
    assert 15 <= seen.count("tiny:2") <= 45, seen.count("tiny:2")
    fixed = start_server(model="tiny:2")
    assert _complete(fixed.url).headers["x-llmos-model-version"] == "tiny:2"


def _cli(*args: str) -> Any:
    from click.testing import CliRunner

    from llmos.cli import main

    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_deploy_promote_and_rollback(standard_plugins, registry):
    standard_plugins("llmos-serve")
    r = _cli("deploy", "promote", "tiny:2", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output) == {"model": "tiny", "alias": "production", "version": 2, "previous": 1,
                                    "promoted": True, "checks": []}  # no --require: nothing to check
    assert registry.resolve("tiny@production").number == 2
    r = _cli("deploy", "status", "tiny", "--json")
    assert json.loads(r.output) == {"model": "tiny", "alias": "production", "version": 2, "previous": 1}
    r = _cli("deploy", "rollback", "tiny")
    assert r.exit_code == 0 and "version 1" in r.output
    assert registry.resolve("tiny@production").number == 1
    r = _cli("deploy", "rollback", "tiny", "--json")  # twice: back where we were
    assert json.loads(r.output)["version"] == 2
    # promote an alias's target to another alias
    registry.set_alias("tiny", "canary", 1)
    r = _cli("deploy", "promote", "tiny@canary", "--to", "production", "--json")
    assert json.loads(r.output)["version"] == 1
    # errors: one line, non-zero exit, nothing changed
    r = _cli("deploy", "rollback", "tiny", "--alias", "staging")
    assert r.exit_code != 0 and r.output.startswith("Error: nothing to roll back to")
    r = _cli("deploy", "promote", "tiny:9")
    assert r.exit_code != 0 and r.output.startswith("Error:") and len(r.output.strip().splitlines()) == 1
    assert registry.resolve("tiny@production").number == 1


def test_cli_serve_with_two_workers_follows_promote(registry, llmos_home, free_port):
    env = {**os.environ, "LLMOS_HOME": str(llmos_home), "LLMOS_PLUGINS": "llmos-serve,llmos-registry"}
    llmos = str(Path(sys.executable).with_name("llmos"))
    bad = subprocess.run([llmos, "serve", "nosuch@production"], env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and bad.stderr.strip().startswith("Error:"), bad.stderr

    port = free_port
    proc = subprocess.Popen(
        [llmos, "serve", "tiny@production", "--port", str(port), "--workers", "2", "--poll-interval", "0.2"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 150  # two processes import torch and load: slow on a busy machine
        ready = 0
        while ready < 6 and time.monotonic() < deadline:  # both workers must have loaded
            try:
                ready = ready + 1 if httpx.get(url + "/ready", timeout=2).status_code == 200 else 0
            except httpx.HTTPError:
                ready = 0
            time.sleep(0.1)
        assert ready >= 6, "server did not become ready"
        assert _complete(url).headers["x-llmos-model-version"] == "tiny:1"
        r = subprocess.run([llmos, "deploy", "promote", "tiny:2", "--json"], env=env, capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        time.sleep(1.5)  # the watchers of both workers poll every 0.2 s
        versions = {_complete(url, max_tokens=1).headers["x-llmos-model-version"] for _ in range(30)}
        assert versions == {"tiny:2"}
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "POST /v1/completions" in out  # the access log
