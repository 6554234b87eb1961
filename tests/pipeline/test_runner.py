"""The runner with small real steps: recording, hooks, failure, Ctrl-C and resume."""

from __future__ import annotations

from typing import Any

import pytest

from llmos import hookimpl
from llmos.errors import ConflictError, NotFoundError, ValidationError
from llmos.pipeline import load_pipeline, run_pipeline


def series(reg: Any, run_id: str, name: str) -> list[tuple[int, float]]:
    return [(p["step"], p["value"]) for p in reg.run_metrics(run_id, name)]


def test_completed_run_is_recorded(toy_file, steps, registry) -> None:
    result = run_pipeline(load_pipeline(toy_file), registry=registry)
    assert result.status == "completed", result.error
    info = registry.get_run(result.run_id)
    assert info.status == "completed" and info.pipeline == "toy"
    assert info.config["stages"][1]["config"] == {"steps": 30}
    assert info.plugins["toy"] == "code" and "llmos" in info.plugins
    assert [(s["stage_id"], s["component"], s["status"]) for s in info.stages] == [
        ("numbers", "data.numbers", "completed"), ("train", "optimizer.count", "completed"),
        ("save", "model.save", "completed")]
    assert info.stages[1]["result"]["result"]["steps"] == 30
    assert [s for s, _ in series(registry, result.run_id, "loss")] == list(range(1, 31))
    assert len(series(registry, result.run_id, "val_loss")) == 1
    assert info.summary["versions"] == ["toy:1"] == result.versions == info.versions
    v = registry.resolve("toy:1")
    assert v.lineage["run_id"] == result.run_id and v.lineage["method"] == "count" and v.lineage["stage"] == "save"
    assert result.workdir.is_dir() and (result.workdir / "checkpoints" / "train" / "state.json").exists()
    calls = steps.recorder.calls
    assert calls[0] == ("run_start", result.run_id) and calls[-1] == ("run_end", "completed")
    lifecycle = [c for c in calls if c[0] in ("before", "after")]
    assert lifecycle == [("before", "numbers"), ("after", "numbers"), ("before", "train"), ("after", "train"),
                         ("before", "save"), ("after", "save")]
    assert [c[1] for c in calls if c[0] == "train_step"] == list(range(1, 31))
    assert ("registered", "toy:1") in calls


def test_metrics_are_written_in_batches(toy_file, steps, registry) -> None:
    writes: list[int] = []

    class Counting:
        def __getattr__(self, name: str) -> Any:
            return getattr(registry, name)

        def log_run_metrics(self, run_id: str, rows: Any) -> int:
            rows = list(rows)
            writes.append(len(rows))
            return registry.log_run_metrics(run_id, rows)

    result = run_pipeline(load_pipeline(toy_file, ["stages.train.config.steps=200"]), registry=Counting())
    assert result.status == "completed"
    assert sum(writes) == 401  # 200 × (loss, x) + val_loss
    assert len(writes) <= 2  # buffered: not one write per step


def test_failed_stage_is_recorded_and_resumes(toy_file, steps, registry) -> None:
    pipe = load_pipeline(toy_file, ["stages.train.config.fail_at=9"])
    first = run_pipeline(pipe, registry=registry)
    assert first.status == "failed"
    assert isinstance(first.error, RuntimeError) and "boom at step 9" in str(first.error)
    info = registry.get_run(first.run_id)
    assert info.status == "failed" and "boom at step 9" in info.summary["error"]
    assert [(s["stage_id"], s["status"]) for s in info.stages] == [("numbers", "completed"), ("train", "failed")]
    assert ("error", "train", "RuntimeError") in steps.recorder.calls
    assert info.versions == []

    second = run_pipeline(pipe, resume=first.run_id, registry=registry)
    assert second.status == "completed" and second.run_id == first.run_id
    clean = run_pipeline(load_pipeline(toy_file), registry=registry)
    assert series(registry, first.run_id, "loss") == series(registry, clean.run_id, "loss")
    assert registry.get_run(first.run_id).summary["attempts"] == 2


def test_stop_request_interrupts_and_resume_equals_uninterrupted(toy_file, steps, registry) -> None:
    pipe = load_pipeline(toy_file, ["stages.train.config.stop_at=12"])
    first = run_pipeline(pipe, registry=registry)
    assert first.status == "interrupted"
    info = registry.get_run(first.run_id)
    assert info.status == "interrupted"
    assert [(s["stage_id"], s["status"]) for s in info.stages] == [("numbers", "completed"), ("train", "interrupted")]
    assert [s for s, _ in series(registry, first.run_id, "loss")] == list(range(1, 13))
    assert ("run_end", "interrupted") in steps.recorder.calls

    resumed = run_pipeline(pipe, resume=first.run_id[:12], registry=registry)  # a unique prefix is enough
    assert resumed.status == "completed"
    clean = run_pipeline(load_pipeline(toy_file), registry=registry)
    assert series(registry, first.run_id, "loss") == series(registry, clean.run_id, "loss")
    assert registry.get_run(first.run_id).versions == ["toy:1"] and clean.versions == ["toy:2"]


def test_registration_is_idempotent_across_resume(tmp_path, steps, registry) -> None:
    path = tmp_path / "p.toml"
    path.write_text(steps.PIPELINE + """
[[stages]]
id = "finetune"
use = "optimizer.count"
[stages.config]
steps = 4
fail_at = 2

[[stages]]
id = "save2"
use = "model.save"
""")
    pipe = load_pipeline(path)
    first = run_pipeline(pipe, registry=registry)
    assert first.status == "failed" and first.versions == ["toy:1"]
    second = run_pipeline(pipe, resume=first.run_id, registry=registry)
    assert second.status == "completed"
    assert second.versions == ["toy:1", "toy:2"]  # the first save got its version back, not a new one
    assert [v.number for v in registry.list_versions("toy")] == [1, 2]
    assert registry.resolve("toy:2").parents == ["toy:1"]  # lineage follows ctx.artifacts["model_version"]


def test_resume_errors(toy_file, steps, registry, tmp_path) -> None:
    pipe = load_pipeline(toy_file)
    with pytest.raises(NotFoundError):
        run_pipeline(pipe, resume="nope", registry=registry)
    done = run_pipeline(pipe, registry=registry)
    with pytest.raises(ConflictError, match="already completed"):
        run_pipeline(pipe, resume=done.run_id, registry=registry)
    other = tmp_path / "other.toml"
    other.write_text(steps.PIPELINE.replace('name = "toy"', 'name = "other"').replace("steps = 30", "fail_at = 2"))
    failed = run_pipeline(load_pipeline(other), registry=registry)
    with pytest.raises(ValidationError, match="belongs to pipeline 'other'"):
        run_pipeline(pipe, resume=failed.run_id, registry=registry)


def test_a_broken_monitoring_plugin_does_not_stop_the_run(toy_file, steps, registry) -> None:
    class Broken:
        @hookimpl
        def llmos_before_stage(self, stage):
            raise ValueError("monitoring bug")

    steps.manager.register(Broken(), name="broken-monitor")
    result = run_pipeline(load_pipeline(toy_file), registry=registry)
    assert result.status == "completed"
    assert steps.manager.plugins["broken-monitor"].status == "broken"


def test_stage_seeds_are_stable(toy_file, steps, registry) -> None:
    from llmos.pipeline.runner import stage_seed

    assert stage_seed(1, "a") == stage_seed(1, "a") != stage_seed(1, "b") != stage_seed(2, "a")
    a = run_pipeline(load_pipeline(toy_file), registry=registry)
    b = run_pipeline(load_pipeline(toy_file), registry=registry)
    assert a.stages[0].result == b.stages[0].result  # data drawn from the seeded `random`
