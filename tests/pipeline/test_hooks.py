"""One test per lifecycle and stage-step hook, named for it (datasette's rule, checked by
tests/core/test_hookspecs.py::test_every_hook_has_a_test_named_for_it). Each runs the
toy pipeline (tests/pipeline/steps_plugin.py) for real and looks at what a plugin saw."""

from __future__ import annotations

from typing import Any

from llmos import hookimpl
from llmos.pipeline import load_pipeline, run_pipeline


class Seen:
    """A plugin recording the hooks the tests below look at."""

    LLMOS_API = 2

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    @hookimpl
    def llmos_after_evaluate(self, ctx, step, metrics):
        self.calls.append(("after_evaluate", (ctx.run_id, step, sorted(metrics))))

    @hookimpl
    def llmos_after_metrics(self, source, step, metrics):
        self.calls.append(("after_metrics", (source, step, dict(metrics))))

    @hookimpl
    def llmos_after_alias_moved(self, model, alias, old_version, new_version):
        self.calls.append(("after_alias_moved", (model, alias, old_version, new_version)))


def _run(toy_file, registry, overrides=()):
    result = run_pipeline(load_pipeline(toy_file, list(overrides)), registry=registry)
    return result


def test_hook_register_data_steps(steps, plugin_manager):
    comp = plugin_manager.get_component("data.numbers")
    assert comp.plugin == "toy" and "llmos_register_data_steps" in plugin_manager.info("toy").hooks
    assert len(comp.create({"n": 3}).config.__dict__) == 1


def test_hook_register_model_steps(steps, plugin_manager):
    assert plugin_manager.get_component("model.save").plugin == "toy"
    assert "llmos_register_model_steps" in plugin_manager.info("toy").hooks


def test_hook_register_optimizer_steps(steps, plugin_manager):
    assert plugin_manager.get_component("optimizer.count").plugin == "toy"
    assert "llmos_register_optimizer_steps" in plugin_manager.info("toy").hooks
    assert plugin_manager.extensions("optimizers") == []  # steps are not optimizers


def test_hook_before_run(toy_file, steps, registry):
    result = _run(toy_file, registry)
    # llmos_before_run
    assert steps.recorder.calls[0] == ("run_start", result.run_id)


def test_hook_after_run(toy_file, steps, registry):
    result = _run(toy_file, registry, ["stages.train.config.fail_at=3"])
    assert result.status == "failed"
    # llmos_after_run
    assert steps.recorder.calls[-1] == ("run_end", "failed")


def test_hook_before_stage(toy_file, steps, registry):
    # llmos_before_stage
    _run(toy_file, registry)
    assert [c[1] for c in steps.recorder.calls if c[0] == "before"] == ["numbers", "train", "save"]


def test_hook_after_stage(toy_file, steps, registry):
    # llmos_after_stage
    _run(toy_file, registry)
    assert [c[1] for c in steps.recorder.calls if c[0] == "after"] == ["numbers", "train", "save"]


def test_hook_on_stage_error(toy_file, steps, registry):
    _run(toy_file, registry, ["stages.train.config.fail_at=2"])
    # llmos_on_stage_error
    assert ("error", "train", "RuntimeError") in steps.recorder.calls
    assert ("after", "train") not in steps.recorder.calls


def test_hook_after_train_step(toy_file, steps, registry):
    # llmos_after_train_step
    _run(toy_file, registry, ["stages.train.config.steps=5"])
    assert [c[1] for c in steps.recorder.calls if c[0] == "train_step"] == [1, 2, 3, 4, 5]


def test_hook_after_evaluate(toy_file, steps, registry, plugin_manager):
    # Seen.llmos_after_evaluate gets the eval metrics a step logs with kind="eval"
    seen = Seen()
    plugin_manager.register(seen, name="seen")
    result = _run(toy_file, registry, ["stages.train.config.steps=4"])
    assert [c for c in seen.calls if c[0] == "after_evaluate"] == [("after_evaluate", (result.run_id, 4, ["val_loss"]))]


def test_hook_after_metrics_source_of_a_run(llmos_home, plugin_manager):
    """``ctx.log_metrics(..., kind=K)`` reaches llmos_after_metrics as source "run:<run_id>:<K>"."""
    from llmos.context import RunContext

    seen = Seen()
    plugin_manager.register(seen, name="seen")
    ctx = RunContext(run_id="r1", spec=None, workdir=llmos_home, manager=plugin_manager)
    ctx.log_metrics(3, {"ratio": 0.5}, kind="compression")
    assert seen.calls == [("after_metrics", ("run:r1:compression", 3, {"ratio": 0.5}))]


def test_hook_after_version_registered(toy_file, steps, registry):
    # llmos_after_version_registered
    result = _run(toy_file, registry)
    assert ("registered", "toy:1") in steps.recorder.calls and result.versions == ["toy:1"]


def test_hook_after_alias_moved(toy_file, steps, registry, plugin_manager):
    # Seen.llmos_after_alias_moved: set, moved, removed
    seen = Seen()
    plugin_manager.register(seen, name="seen")
    _run(toy_file, registry)
    _run(toy_file, registry)
    registry.set_alias("toy", "production", 1)
    registry.set_alias("toy", "production", 2)
    registry.remove_alias("toy", "production")
    assert [c[1] for c in seen.calls if c[0] == "after_alias_moved"] == [
        ("toy", "production", None, 1), ("toy", "production", 1, 2), ("toy", "production", 2, None)]


class Tag:
    """A real step: records which stage ran it in the artifacts."""

    def __init__(self, config: Any) -> None:
        self.config = config

    def run(self, ctx: Any) -> dict[str, Any]:
        ctx.artifacts.setdefault("tags", []).append(ctx.stage.use)
        return {"n": len(ctx.artifacts["tags"])}


class LaterStages:
    LLMOS_API = 2

    @hookimpl
    def llmos_register_compression_steps(self, register):
        register("tag", Tag, description="tags the run (compression)")

    @hookimpl
    def llmos_register_deployment_steps(self, register):
        register("tag", Tag, description="tags the run (deployment)")

    @hookimpl
    def llmos_register_monitoring_steps(self, register):
        register("tag", Tag, description="tags the run (monitoring)")


def _later(tmp_path, registry, plugin_manager, stage):
    plugin_manager.register(LaterStages(), name="later")
    f = tmp_path / "p.toml"
    f.write_text(f'[pipeline]\nname = "later"\n\n[[stages]]\nuse = "{stage}.tag"\n')
    result = run_pipeline(load_pipeline(f), registry=registry)
    assert result.status == "completed", result.error
    info = registry.get_run(result.run_id)
    assert [(s["component"], s["status"]) for s in info.stages] == [(f"{stage}.tag", "completed")]
    assert plugin_manager.get_component(f"{stage}.tag").plugin == "later"


def test_hook_register_compression_steps(tmp_path, registry, plugin_manager):
    # llmos_register_compression_steps
    _later(tmp_path, registry, plugin_manager, "compression")


def test_hook_register_deployment_steps(tmp_path, registry, plugin_manager):
    # llmos_register_deployment_steps
    _later(tmp_path, registry, plugin_manager, "deployment")


def test_hook_register_monitoring_steps(tmp_path, registry, plugin_manager):
    # llmos_register_monitoring_steps
    _later(tmp_path, registry, plugin_manager, "monitoring")
