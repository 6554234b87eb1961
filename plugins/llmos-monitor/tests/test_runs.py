"""A real pipeline run with the monitor: exact metric round trips, system samples."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from fastapi.testclient import TestClient


def _triples(points: list[dict[str, Any]]) -> list[tuple[str, int, str, float]]:
    return sorted((p["kind"], p["step"], p["name"], p["value"]) for p in points if p["kind"] in ("train", "eval"))


def test_metrics_round_trip_exactly_through_cli_and_ui(run_pipeline: Any, llmos_home: Any, h: Any) -> None:
    result = run_pipeline(steps=12)
    expected = sorted(h.expected_points(12))

    # the installed command in a fresh process, as a user runs it
    shown = json.loads(h.cli("monitor", "show", result.run_id, "--points", "--json", home=llmos_home).stdout)
    assert shown["id"] == result.run_id and shown["status"] == "completed"
    assert _triples(shown["points"]) == expected  # bit-exact floats, every step

    summary = {(m["kind"], m["name"]): m for m in shown["metrics"]}
    loss = summary[("train", "loss")]
    assert (loss["count"], loss["first"], loss["last"]) == (12, h.train_loss(1), h.train_loss(12))
    assert loss["min"] == h.train_loss(12) and loss["max"] == h.train_loss(1)
    assert (loss["first_step"], loss["last_step"]) == (1, 12)

    from llmos_monitor.ui.app import create_app

    api = TestClient(create_app(), base_url="http://localhost").get(f"/api/runs/{result.run_id}")
    assert api.status_code == 200
    assert _triples(api.json()["points"]) == expected
    series = TestClient(create_app(), base_url="http://localhost").get(f"/api/runs/{result.run_id}/series").json()["series"]
    loss_series = next(s for s in series if (s["kind"], s["name"]) == ("train", "loss"))
    assert loss_series["steps"] == list(range(1, 13))
    assert loss_series["values"] == [h.train_loss(s) for s in range(1, 13)]


def test_system_sampler_runs_during_the_run_and_stops_after(run_pipeline: Any, llmos_home: Any) -> None:
    from llmos.registry import open_registry

    result = run_pipeline(steps=10, sleep_s=0.5)
    points = open_registry().run_metrics(result.run_id, kind="system")
    by_name: dict[str, list[dict[str, Any]]] = {}
    for p in points:
        by_name.setdefault(p["name"], []).append(p)
    for name in ("cpu_percent", "mem_percent", "proc_cpu_percent", "proc_rss_bytes", "proc_threads"):
        assert name in by_name, f"no {name} samples: {sorted(by_name)}"
    rss = by_name["proc_rss_bytes"]
    assert len(rss) >= 4  # 0.5 s at 0.05 s intervals, on a busy machine
    assert all(p["value"] > 10e6 for p in rss)  # a Python process with torch-free imports still has >10 MB
    assert sorted(p["step"] for p in rss) == list(range(len(rss)))  # sample sequence numbers
    assert not [t for t in threading.enumerate() if t.name == "llmos-system-sampler"]


def test_show_text_has_summary_and_sparkline(run_pipeline: Any, llmos_home: Any, h: Any) -> None:
    result = run_pipeline(steps=12)
    out = h.invoke("monitor", "show", result.run_id[:12]).output
    assert result.run_id in out
    line = next(ln for ln in out.splitlines() if ln.split()[:2] == ["train", "loss"])
    spark = line.split()[-1]
    assert len(spark) == 12 and set(spark) <= set("▁▂▃▄▅▆▇█")
    assert spark[0] == "█" and spark[-1] == "▁"  # loss goes down


def test_runs_and_compare(run_pipeline: Any, llmos_home: Any, h: Any) -> None:
    a = run_pipeline(steps=4)
    b = run_pipeline(steps=8)
    runs = h.cli_json("monitor", "runs")
    assert [r["id"] for r in runs] == [b.run_id, a.run_id]  # newest first
    assert {r["pipeline"] for r in runs} == {"monitored"}
    cmp = h.cli_json("monitor", "compare", a.run_id, b.run_id)
    loss = next(m for m in cmp["metrics"] if (m["kind"], m["name"]) == ("train", "loss"))
    assert loss["runs"][a.run_id]["last"] == h.train_loss(4)
    assert loss["runs"][b.run_id]["last"] == h.train_loss(8)
    assert not [m for m in cmp["metrics"] if m["kind"] == "system"]
    stage = next(m for m in cmp["metrics"] if (m["kind"], m["name"]) == ("stage", "train.duration_s"))
    recorded = {r.run_id: r for r in (a, b)}
    for rid, vals in stage["runs"].items():
        assert vals["last"] == pytest.approx(recorded[rid].stages[0].duration_s, abs=1e-3)
    text = h.invoke("monitor", "compare", a.run_id, b.run_id).output
    assert "loss" in text and a.run_id[:12] in text


def test_errors_are_one_line(llmos_home: Any, h: Any) -> None:
    cp = h.cli("monitor", "show", "no-such-run", home=llmos_home, check=False)
    assert cp.returncode != 0
    assert cp.stderr.strip().splitlines()[-1].startswith("Error: run 'no-such-run' does not exist")
    r = h.invoke("monitor", "compare", "only-one", ok=False)
    assert r.exit_code == 2 and r.output.strip() == (
        "Error: compare needs at least two runs: llmos monitor compare RUN RUN..."
    )
    assert "No runs yet" in h.invoke("monitor", "runs").output
    import socket

    with socket.create_server(("127.0.0.1", 0)) as busy:
        r = h.invoke("ui", "--port", str(busy.getsockname()[1]), ok=False)
    assert r.exit_code == 3 and r.output.startswith("Error: cannot serve on 127.0.0.1:")
    assert "pick another --port" in r.output


class _RecordingSink:
    """Any plugin implementing llmos_after_metrics sees the monitor's system samples."""

    LLMOS_API = 2

    def __init__(self) -> None:
        self.seen: list[tuple[str, int | None, dict[str, float]]] = []

    from llmos import hookimpl

    @hookimpl
    def llmos_after_metrics(self, source: str, step: int | None, metrics: dict[str, float]) -> None:
        self.seen.append((source, step, dict(metrics)))


def test_sinks_receive_exactly_the_persisted_system_samples(run_pipeline: Any, monitor_manager: Any) -> None:
    from llmos.registry import open_registry

    sink = _RecordingSink()
    monitor_manager.register(sink, name="zz-sink")
    result = run_pipeline(steps=4, sleep_s=0.3)
    seen = {(step, name): value for source, step, m in sink.seen if source == f"system:{result.run_id}"
            for name, value in m.items()}
    stored = {(p["step"], p["name"]): p["value"] for p in open_registry().run_metrics(result.run_id, kind="system")}
    assert seen and seen == stored
