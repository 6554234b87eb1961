"""Serving metrics persisted as a `serve` run; the Prometheus exporter."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest


def _serve_requests(manager: Any, n: int) -> list[dict[str, float]]:
    sent = []
    for i in range(n):
        metrics = {"prompt_tokens": float(3 + i), "completion_tokens": float(10 + i), "latency_s": 0.01 * (i + 1),
                   "time_to_first_token_s": 0.001 * (i + 1)}
        manager.notify("llmos_after_request",
                       request={"model": "tiny", "version": "tiny:1", "endpoint": "/v1/completions",
                                "status": 200, "stream": False},
                       metrics=metrics)
        sent.append(metrics)
    return sent


def test_served_requests_become_a_serve_run(monitor_manager: Any, monkeypatch: pytest.MonkeyPatch, h: Any) -> None:
    from llmos.registry import open_registry
    from llmos_monitor import runtime

    monkeypatch.setenv("LLMOS_MONITOR_INTERVAL", "0.05")
    sent = _serve_requests(monitor_manager, 25)
    monitor_manager.notify("llmos_after_metrics", source="serve", step=1,
                           metrics={"requests_running": 2.0, "generation_tokens_per_s": 55.5})
    run_id = runtime.stop_serve_monitor()
    assert run_id is not None and runtime.stop_serve_monitor() is None

    reg = open_registry()
    run = reg.get_run(run_id)
    assert (run.pipeline, run.status, run.summary["requests"]) == ("serve", "completed", 25)
    assert run.config["model"] == "tiny"
    # aggregated per interval and (version, endpoint), not one row per request (issue 12.14)
    points = reg.run_metrics(run_id, kind="request")
    got = {p["name"]: p["value"] for p in points}
    label = "[tiny:1 /v1/completions]"
    lat = sorted(m["latency_s"] for m in sent)
    ttft = sorted(m["time_to_first_token_s"] for m in sent)
    assert got == {
        f"requests{label}": 25.0, f"errors{label}": 0.0,
        f"latency_s.sum{label}": sum(m["latency_s"] for m in sent),
        f"prompt_tokens.sum{label}": sum(m["prompt_tokens"] for m in sent),
        f"completion_tokens.sum{label}": sum(m["completion_tokens"] for m in sent),
        f"latency_s.p50{label}": lat[12], f"latency_s.p95{label}": lat[23], f"latency_s.max{label}": lat[-1],
        f"time_to_first_token_s.p50{label}": ttft[12], f"time_to_first_token_s.p95{label}": ttft[23],
    }
    assert {p["step"] for p in points} == {0}  # one 10 s bucket
    serve = {p["name"]: p["value"] for p in reg.run_metrics(run_id, kind="serve")}
    assert serve == {"requests_running": 2.0, "generation_tokens_per_s": 55.5}
    assert reg.run_metrics(run_id, name="proc_rss_bytes", kind="system")  # sampled while serving

    # and the CLI shows it like any run
    shown = h.cli_json("monitor", "show", run_id, "--kind", "request")
    count = next(m for m in shown["metrics"] if m["name"] == f"requests{label}")
    assert (count["count"], count["last"]) == (1, 25.0)


def test_prometheus_exporter_shows_what_the_hooks_saw(monitor_manager: Any) -> None:
    from llmos.context import RunContext
    from llmos.errors import ConflictError
    from llmos_monitor import runtime
    from llmos_monitor.prometheus import start_exporter

    exporter = start_exporter(0)
    try:
        ctx = RunContext(run_id="r1", spec=None, workdir=None, manager=monitor_manager)  # type: ignore[arg-type]
        monitor_manager.notify("llmos_after_train_step", ctx=ctx, step=7, metrics={"loss": 2.5, "lr": 0.001})
        monitor_manager.notify("llmos_after_evaluate", ctx=ctx, step=7, metrics={"val_ppl": 12.25})
        _serve_requests(monitor_manager, 3)
        body = urllib.request.urlopen(exporter.url, timeout=10).read().decode()
        assert 'llmos_train_metric{name="loss",run="r1"} 2.5' in body
        assert 'llmos_train_step{run="r1"} 7.0' in body
        assert 'llmos_eval_metric{name="val_ppl",run="r1"} 12.25' in body
        assert 'llmos_requests_served_total{endpoint="/v1/completions",model="tiny",status="200"} 3.0' in body
        assert 'llmos_request_latency_seconds_count{model="tiny"} 3.0' in body
        with pytest.raises(ConflictError, match="pick another port"):
            start_exporter(exporter.port)
    finally:
        exporter.stop()
        runtime.stop_serve_monitor()
    with pytest.raises(OSError):
        urllib.request.urlopen(exporter.url, timeout=2)


def test_prometheus_step_in_a_pipeline_exports_the_run(run_pipeline: Any, h: Any) -> None:
    from llmos_monitor import prometheus

    extra = '''
[[stages]]
id = "after"
use = "optimizer.fake-train"
config = { steps = 2 }
'''
    try:
        # the exporter stage first, then training: the hooks feed it while the run goes on
        result = run_pipeline(steps=12, extra=extra, first='''
[[stages]]
id = "prometheus"
use = "monitoring.prometheus"
config = { port = 0 }
''')
        port = int(result.stages[0].result["prometheus_port"])
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        run = result.run_id
        assert f'llmos_train_metric{{name="loss",run="{run}"}} {h.train_loss(2)!r}' in body  # the last step logged
        assert f'llmos_eval_metric{{name="val_ppl",run="{run}"}} {2.0 ** (2.0 / 12)!r}' in body
        assert f'llmos_stage_duration_seconds{{run="{run}",stage="train"}}' in body
    finally:
        prometheus.stop_all()


def test_serving_rows_are_bounded_by_time_not_by_requests(monitor_manager: Any, monkeypatch: pytest.MonkeyPatch,
                                                          h: Any, llmos_home: Any) -> None:
    """Issue 12.14: 5 rows per request, never deleted. Now: a fixed number of rows per
    interval and (version, endpoint), and rows past the retention window are deleted."""
    import time

    from llmos.registry import open_registry
    from llmos_monitor import runtime

    monkeypatch.setenv("LLMOS_MONITOR_SYSTEM", "0")
    reg = open_registry()
    # a server that ran a month ago, with its rows
    old = reg.create_run("serve", {"argv": ["llmos", "serve"]})
    month_ago = time.time() - 30 * 86400
    reg.log_run_metrics(old, [("request", i, "requests[tiny:1 /v1/completions]", 1.0, month_ago + i)
                              for i in range(100)])
    reg.log_run_metrics(old, [("request", 0, "requests[tiny:1 /v1/completions]", 1.0, time.time() - 86400)])
    reg.finish_run(old)

    _serve_requests(monitor_manager, 2000)  # the first request starts the monitor, which prunes
    run_id = runtime.stop_serve_monitor()
    assert run_id is not None
    rows = reg.run_metrics(run_id)
    assert len(rows) == 10, len(rows)  # 10 statistics of one 10 s bucket; was 5 x 2000 = 10,000
    assert {p["name"]: p["value"] for p in rows}["requests[tiny:1 /v1/completions]"] == 2000
    assert len(reg.run_metrics(old)) == 1  # older than 14 days: gone; yesterday's kept
    assert reg.events(kind="run.metrics_pruned")[0]["data"]["rows"] == 100

    out = h.cli("monitor", "prune", "--older-than-days", "0.5", "--json", home=llmos_home).stdout
    assert json.loads(out) == {"deleted_rows": 1, "older_than_days": 0.5}
    assert reg.run_metrics(old) == [] and len(reg.run_metrics(run_id)) == len(rows)
    bad = h.cli("monitor", "prune", home=llmos_home, check=False, env={"LLMOS_MONITOR_RETENTION_DAYS": "soon"})
    assert bad.returncode != 0 and "LLMOS_MONITOR_RETENTION_DAYS must be a number" in bad.stderr
