"""optimizer.train and optimizer.grid-search inside real pipeline runs (registry, child runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from llmos import hookimpl


class _Plugin:
    """Data and model steps for the tests: real memory-mapped blocks, a real tiny Llama."""

    def __init__(self, dataset: Any, model_factory: Any) -> None:
        self.dataset, self.model_factory = dataset, model_factory

    @hookimpl
    def llmos_register_data_steps(self, register):
        def blocks(cfg):
            def run(ctx):
                ctx.artifacts["dataset"] = self.dataset
            return run

        register("blocks", blocks)

    @hookimpl
    def llmos_register_model_steps(self, register):
        def tiny(cfg):
            def run(ctx):
                ctx.artifacts["model"] = self.model_factory(0)
            return run

        register("tiny", tiny)


@pytest.fixture
def manager(plugin_manager, dataset, model_factory):
    import llmos_train.plugin

    plugin_manager.register(llmos_train.plugin, name="llmos-train")
    plugin_manager.register(_Plugin(dataset, model_factory), name="test-steps")
    return plugin_manager


def pipeline(tmp_path: Path, body: str):
    from llmos.pipeline import load_pipeline

    path = tmp_path / "p.toml"
    path.write_text('[pipeline]\nname = "gs"\nseed = 3\n[[stages]]\nuse = "data.blocks"\n'
                    '[[stages]]\nuse = "model.tiny"\n' + body)
    return load_pipeline(path)


def test_grid_search_records_each_trial_as_a_child_run(manager, tmp_path) -> None:
    from llmos.pipeline import run_pipeline
    from llmos.registry import open_registry

    reg = open_registry()
    pipe = pipeline(tmp_path, """
[[stages]]
id = "search"
use = "optimizer.grid-search"
[stages.config]
grid = { lr = [1e-4, 1e-2], optimizer = ["adamw", "lamb"] }
train = { max_steps = 6, batch_size = 4, log_every = 2 }
""")
    result = run_pipeline(pipe, registry=reg)
    assert result.status == "completed", result.error
    out = result.stages[-1].result
    assert out["trials"] == 4
    kids = [r for r in reg.list_runs() if r.parent_run_id == result.run_id]
    assert len(kids) == 4 and all(k.status == "completed" for k in kids)
    by_name = {reg.get_run(k.id).config["trial"]: reg.get_run(k.id) for k in kids}
    assert sorted(by_name) == ["trial-1", "trial-2", "trial-3", "trial-4"]
    losses = {n: r.summary["metrics"]["val_loss"] for n, r in by_name.items()}
    assert out["best_trial"] == min(losses, key=losses.get)
    assert out["val_loss"] == min(losses.values())
    for k in kids:  # each trial's own training metrics are in its child run
        assert [p["step"] for p in reg.run_metrics(k.id, "loss")] == [2, 4, 6]
    # the parent records one point per trial, and the best model continues down the pipeline
    assert len(reg.run_metrics(result.run_id, "val_loss", kind="trial")) == 4
    assert reg.get_run(result.run_id).summary["metrics"]["val_loss"] == out["val_loss"]


def test_grid_config_errors_are_located(manager, tmp_path) -> None:
    from llmos.pipeline import PipelineError

    with pytest.raises(PipelineError) as e:
        pipeline(tmp_path, """
[[stages]]
use = "optimizer.grid-search"
[stages.config]
grid = { learning_rate = [1e-3] }
""")
    assert e.value.errors == ["stages[2].config: unknown training setting(s) in grid: learning_rate"]
    with pytest.raises(PipelineError, match=r"stages\[2\]\.config: trial .*lr: Input should be greater than 0"):
        pipeline(tmp_path, '[[stages]]\nuse = "optimizer.grid-search"\n[stages.config]\ngrid = { lr = [0.0] }\n')


def test_train_stage_in_a_run_is_recorded(manager, tmp_path) -> None:
    from llmos.pipeline import run_pipeline
    from llmos.registry import open_registry

    reg = open_registry()
    pipe = pipeline(tmp_path, '[[stages]]\nid = "train"\nuse = "optimizer.train"\n[stages.config]\n'
                    'max_steps = 8\nbatch_size = 4\nlog_every = 2\neval_every = 4\n')
    result = run_pipeline(pipe, registry=reg)
    assert result.status == "completed"
    assert [p["step"] for p in reg.run_metrics(result.run_id, "loss")] == [2, 4, 6, 8]
    assert [p["step"] for p in reg.run_metrics(result.run_id, "val_ppl", kind="eval")] == [4, 8]
    assert (result.workdir / "checkpoints" / "train" / "step-0000008" / "model.safetensors").exists()


def test_plugin_contract() -> None:
    import llmos_train.plugin
    from llmos.testing import check_plugin_contract

    check_plugin_contract(llmos_train.plugin, "llmos-train")


def test_interrupted_grid_search_resumes_its_unfinished_trial(manager, tmp_path) -> None:
    from llmos.pipeline import run_pipeline
    from llmos.registry import open_registry

    reg = open_registry()
    body = """
[[stages]]
id = "search"
use = "optimizer.grid-search"
[stages.config]
grid = { lr = [1e-3, 1e-2] }
train = { max_steps = 8, batch_size = 4, log_every = 1, checkpoint_every = 2 }
"""
    clean = run_pipeline(pipeline(tmp_path, body), registry=reg)

    class StopInSecondTrial:  # Ctrl-C while the second trial is at step 5
        def __init__(self) -> None:
            self.children: list[str] = []

        @hookimpl
        def llmos_after_train_step(self, ctx, step):
            if ctx.run_id not in self.children:
                self.children.append(ctx.run_id)
            if len(self.children) == 2 and step == 5:
                ctx.stop_event.set()

    manager.register(StopInSecondTrial(), name="stopper")
    first = run_pipeline(pipeline(tmp_path, body), registry=reg)
    manager.unregister("stopper")
    assert first.status == "interrupted"
    kids = {reg.get_run(k.id).config["trial"]: k for k in reg.list_runs() if k.parent_run_id == first.run_id}
    assert {n: k.status for n, k in kids.items()} == {"trial-1": "completed", "trial-2": "interrupted"}

    second = run_pipeline(pipeline(tmp_path, body), resume=first.run_id, registry=reg)
    assert second.status == "completed", second.error
    kids = [k for k in reg.list_runs() if k.parent_run_id == first.run_id]
    assert len(kids) == 2 and all(k.status == "completed" for k in kids)  # trial-2 continued, not restarted
    trial2 = next(k for k in kids if reg.get_run(k.id).config["trial"] == "trial-2")
    assert [p["step"] for p in reg.run_metrics(trial2.id, "loss")] == list(range(1, 9))
    clean_kids = {reg.get_run(k.id).config["trial"]: k.id for k in reg.list_runs() if k.parent_run_id == clean.run_id}
    assert [p["value"] for p in reg.run_metrics(trial2.id, "loss")] == [
        p["value"] for p in reg.run_metrics(clean_kids["trial-2"], "loss")]
    assert second.stages[-1].result["val_loss"] == clean.stages[-1].result["val_loss"]
