"""The JSONL sink writes exactly what the hooks received."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from llmos import hookimpl


class StepConfig(BaseModel):
    steps: int = 5


class LoggingStep:
    def __init__(self, config: StepConfig) -> None:
        self.config = config

    def run(self, ctx: Any) -> None:
        for s in range(1, self.config.steps + 1):
            ctx.log_metrics(s, {"loss": 1.0 / s + 0.1, "lr": 1e-3 * s})
        ctx.log_metrics(self.config.steps, {"val_ppl": 12.5}, kind="eval")
        ctx.log_metrics(None, {"bleu": 0.25}, kind="custom")
        ctx.manager.notify("llmos_after_metrics", source=f"system:{ctx.run_id}", step=0, metrics={"cpu_percent": 7.5})


class StepPlugin:
    LLMOS_API = 2

    @hookimpl
    def llmos_register_optimizer_steps(self, register: Any) -> None:
        register("logging", LoggingStep, config=StepConfig, description="logs metrics")


def _read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def manager(plugin_manager: Any) -> Any:
    import llmos_jsonl_sink.plugin

    plugin_manager.register(llmos_jsonl_sink.plugin, name="llmos-jsonl-sink")
    plugin_manager.register(StepPlugin(), name="logging-step")
    return plugin_manager


def _run(manager: Any, tmp_path: Path, extra: str = "") -> Any:
    from llmos.pipeline import load_pipeline
    from llmos.pipeline.runner import run_pipeline

    path = tmp_path / "p.toml"
    path.write_text(f'[pipeline]\nname = "sinked"\n{extra}\n[[stages]]\nid = "train"\nuse = "optimizer.logging"\n')
    result = run_pipeline(load_pipeline(path, manager=manager), manager=manager, handle_sigint=False)
    assert result.status == "completed", result.error
    return result


def test_a_run_is_written_to_its_workdir(manager: Any, tmp_path: Path) -> None:
    result = _run(manager, tmp_path)
    # a sample that arrives after the run ended still lands in the run's file
    manager.notify("llmos_after_metrics", source=f"system:{result.run_id}", step=1, metrics={"cpu_percent": 8.5})
    records = _read(Path(result.workdir) / "metrics.jsonl")
    assert records.pop()["metrics"] == {"cpu_percent": 8.5}
    events = [r["event"] for r in records]
    assert events[0] == "run_start" and events[-1] == "run_end"
    assert records[-1]["status"] == "completed"
    assert all(r["run_id"] == result.run_id for r in records)
    train = [(r["step"], r["metrics"]) for r in records if r["event"] == "train_step"]
    assert train == [(s, {"loss": 1.0 / s + 0.1, "lr": 1e-3 * s}) for s in range(1, 6)]
    evals = [(r["step"], r["metrics"]) for r in records if r["event"] == "evaluate"]
    assert evals == [(5, {"val_ppl": 12.5})]
    other = [r for r in records if r["event"] == "metrics"]
    assert [(o["source"], o["step"], o["metrics"]) for o in other] == [
        (f"run:{result.run_id}:custom", None, {"bleu": 0.25}),
        (f"system:{result.run_id}", 0, {"cpu_percent": 7.5}),
    ]
    assert all(isinstance(r["ts"], float) and abs(r["ts"] - time.time()) < 600 for r in records)


def test_monitoring_jsonl_step_chooses_the_file(manager: Any, tmp_path: Path) -> None:
    from llmos.pipeline import load_pipeline
    from llmos.pipeline.runner import run_pipeline

    path = tmp_path / "p.toml"
    path.write_text(
        '[pipeline]\nname = "sinked"\n'
        '[[stages]]\nid = "sink"\nuse = "monitoring.jsonl"\nconfig = { path = "logs/m.jsonl" }\n'
        '[[stages]]\nid = "train"\nuse = "optimizer.logging"\nconfig = { steps = 3 }\n'
    )
    result = run_pipeline(load_pipeline(path, manager=manager), manager=manager, handle_sigint=False)
    records = _read(Path(result.workdir) / "logs" / "m.jsonl")
    assert [r["step"] for r in records if r["event"] == "train_step"] == [1, 2, 3]
    assert records[-1]["event"] == "run_end"


def test_served_requests_and_other_sources(manager: Any, llmos_home: Path) -> None:
    import os

    from llmos_jsonl_sink import sink

    manager.notify("llmos_after_request",
                   request={"model": "tiny", "version": "tiny:2", "endpoint": "/v1/chat/completions",
                            "status": 200, "stream": True},
                   metrics={"latency_s": 0.125, "completion_tokens": 7.0})
    manager.notify("llmos_after_metrics", source="serve", step=3, metrics={"requests_waiting": 1.0, "bad": math.nan})
    sink.SINK.close()
    served = _read(llmos_home / "jsonl" / f"serve-{os.getpid()}.jsonl")
    assert served[0]["event"] == "request"
    assert served[0]["request"] == {"model": "tiny", "version": "tiny:2", "endpoint": "/v1/chat/completions",
                                    "status": 200, "stream": True}
    assert served[0]["metrics"] == {"latency_s": 0.125, "completion_tokens": 7.0}
    assert (served[1]["source"], served[1]["step"], served[1]["metrics"]) == (
        "serve", 3, {"requests_waiting": 1.0, "bad": None}  # JSON has no NaN
    )


def test_one_configured_file_for_everything(manager: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from llmos_jsonl_sink import sink

    target = tmp_path / "all.jsonl"
    monkeypatch.setenv("LLMOS_JSONL_PATH", str(target))
    result = _run(manager, tmp_path)
    manager.notify("llmos_after_request", request={"model": "m", "status": 200}, metrics={"latency_s": 1.5})
    sink.SINK.close()
    events = [r["event"] for r in _read(target)]
    assert events.count("train_step") == 5 and events.count("request") == 1
    assert not (Path(result.workdir) / "metrics.jsonl").exists()


def test_plugin_contract() -> None:
    import llmos_jsonl_sink.plugin
    from llmos.testing import check_plugin_contract

    check_plugin_contract(llmos_jsonl_sink.plugin, "llmos-jsonl-sink")
