"""The dashboard over real HTTP (`llmos ui` in its own process): what it refuses.

- DNS rebinding (issue 12.3): a page on evil.example whose name now resolves to
  127.0.0.1 sends ``Host: evil.example``; the dashboard answers only its own names.
- Bad query parameters (issue 12.13): a 4xx with a one-line JSON error, never a 500.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from llmos_registry.models import Run


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory, h: Any) -> Iterator[Any]:
    home = tmp_path_factory.mktemp("ui-http")
    from llmos.registry import open_registry

    reg = open_registry(url=f"sqlite:///{home / 'llmos.db'}", home=home)
    run = reg.create_run("monitored", {"steps": 1}, {})
    reg.finish_run(run)
    # a run whose process was killed (its pid is gone from this host): shown as dead
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    dead = reg.create_run("monitored", {"steps": 2}, {})
    with reg.session(write=True) as s:
        s.execute(update(Run).where(Run.id == dead).values(pid=gone.pid))
    with h.UI(Path(home), "--allowed-host", "dash.lan") as server:
        server.run_id, server.dead = run, dead
        yield server


def test_a_run_whose_process_died_shows_as_dead(ui: Any) -> None:
    status, body = ui.get("/api/runs")
    assert {r["id"]: r["status"] for r in json.loads(body)}[ui.dead] == "dead"
    status, body = ui.get(f"/runs/{ui.dead}")
    assert status == 200 and 'id="run-status" class="status-dead">dead<' in body


def test_foreign_host_header_is_refused(ui: Any) -> None:
    for host in ("evil.example", f"evil.example:{ui.port}", "127.0.0.1.evil.example", "localhost.evil.example"):
        for path in ("/", "/api/runs", f"/api/runs/{ui.run_id}", "/static/style.css"):
            status, body = ui.get(path, {"Host": host})
            assert status == 400, (host, path, status)
            assert ui.run_id not in body and "not allowed" in body and "--allowed-host" in body
    for host in (f"127.0.0.1:{ui.port}", f"localhost:{ui.port}", "LOCALHOST", f"[::1]:{ui.port}", "dash.lan",
                 f"dash.lan:{ui.port}"):
        status, body = ui.get("/api/runs", {"Host": host})
        assert status == 200 and ui.run_id in body, host


def test_bad_query_parameters_are_4xx_with_one_line_errors(ui: Any) -> None:
    status, body = ui.get("/api/openapi.json")
    assert status == 200 and "/api/runs" in json.loads(body)["paths"]
    for path, words in (("/api/runs?limit=99999999999999999999", "limit"), ("/api/runs?limit=0", "limit"),
                        ("/api/runs?limit=abc", "limit"), (f"/api/runs/{ui.run_id}?name={'x' * 500}", "name")):
        status, body = ui.get(path)
        assert status == 400, (path, status, body)
        error = json.loads(body)["error"]
        assert words in error and "\n" not in error, error
    status, body = ui.get("/api/runs?limit=10000")
    assert status == 200 and ui.run_id in body
    status, body = ui.get("/models/x/versions/abc")
    assert status == 400 and "number" in body
