"""The shipped pipelines with the standard plugins (installed, loaded through entry points)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from llmos.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_quickstart_file_is_valid(standard_plugins) -> None:
    from llmos.pipeline import load_pipeline

    standard_plugins("llmos-data", "llmos-models", "llmos-train", "llmos-compress", "llmos-export", "llmos-monitor",
                     "llmos-serve")
    pipe = load_pipeline(ROOT / "pipelines" / "quickstart.toml")
    uses = [s.use for s in pipe.stages]
    assert uses[:5] == ["data.corpus", "model.llama", "optimizer.train", "model.evaluate", "model.register"]
    assert "compression.int8" in uses and "deployment.onnx" in uses and "monitoring.plot" in uses
    # production moves only to a version that beats it (issue 16.2)
    assert pipe.stage("register").config.alias == "candidate"
    assert uses[5] == "deployment.promote" and pipe.stage("promote").config.to == "production"
    assert pipe.stage("promote").config.require == "val_ppl <= current.val_ppl"


@pytest.mark.slow
def test_tiny_pipeline_end_to_end(standard_plugins, llmos_home) -> None:
    from llmos.registry import open_registry

    standard_plugins("llmos-data", "llmos-models", "llmos-train")
    r = CliRunner().invoke(main, ["run", str(ROOT / "pipelines" / "tiny.toml"), "--json",
                                  "--set", "stages.train.config.max_steps=12"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)  # only the JSON document: what stages print went to stderr
    assert out["status"] == "completed"
    assert [s["id"] for s in out["stages"]] == ["data", "model", "train", "evaluate", "register"]
    assert out["versions"] == ["tiny:1"]
    reg = open_registry()
    v = reg.resolve("tiny@candidate")
    assert v.number == 1 and v.lineage["run_id"] == out["run_id"] and v.lineage["method"] == "train"
    assert v.lineage["data"]["vocab_size"] == 512
    assert v.metrics["val_ppl"] > 1
    assert [p["step"] for p in reg.run_metrics(out["run_id"], "loss")] == [5, 10, 12]
    info = reg.get_run(out["run_id"])
    assert set(info.plugins) >= {"llmos-data", "llmos-models", "llmos-train", "llmos"}
    shown = CliRunner().invoke(main, ["runs", "show", out["run_id"]])
    assert shown.exit_code == 0 and "tiny:1" in shown.output


@pytest.mark.slow
def test_tiny_pipeline_resumed_after_ctrl_c_equals_uninterrupted(standard_plugins, llmos_home) -> None:
    from llmos import hookimpl
    from llmos.pipeline import load_pipeline, run_pipeline
    from llmos.registry import open_registry

    manager = standard_plugins("llmos-data", "llmos-models", "llmos-train")
    reg = open_registry()
    sets = ["stages.train.config.max_steps=16", "stages.train.config.log_every=1",
            "stages.train.config.checkpoint_every=5", "stages.train.config.eval_every=8"]
    pipe = load_pipeline(ROOT / "pipelines" / "tiny.toml", sets)

    class ArtifactChecker:  # what `llmos plugin test --run` does: the standard outputs obey llmos.artifacts
        problems: list[str] = []

        @hookimpl
        def llmos_after_stage(self, ctx, stage):
            from llmos.artifacts import check_artifacts

            self.problems += [f"{stage.id}: {p}" for p in check_artifacts(ctx.artifacts, allow_undeclared=False)]

    checker = ArtifactChecker()
    manager.register(checker, name="artifact-checker")
    clean = run_pipeline(pipe, registry=reg)
    manager.unregister("artifact-checker")
    assert clean.status == "completed", clean.error
    assert checker.problems == []

    class CtrlCAtStep7:
        @hookimpl
        def llmos_after_train_step(self, ctx, step):
            if step == 7:
                ctx.stop_event.set()  # what the runner's SIGINT handler does

    manager.register(CtrlCAtStep7(), name="ctrl-c")
    first = run_pipeline(pipe, registry=reg)
    manager.unregister("ctrl-c")
    assert first.status == "interrupted" and first.versions == []
    resumed = run_pipeline(pipe, resume=first.run_id, registry=reg)
    assert resumed.status == "completed"

    def losses(run_id):
        return [(p["step"], p["value"]) for p in reg.run_metrics(run_id, "loss")]

    assert [s for s, _ in losses(first.run_id)] == list(range(1, 17))
    assert losses(first.run_id) == losses(clean.run_id)  # the same losses, step for step
    assert resumed.metrics["val_loss"] == clean.metrics["val_loss"]
    assert reg.resolve(resumed.versions[0]).metrics["val_ppl"] == reg.resolve(clean.versions[0]).metrics["val_ppl"]
