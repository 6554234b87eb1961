"""optimizer.grid-search with parallel trials (processes) and a held-out test split:
the same trials, losses and choice as sequential trials; the choice is made on
validation and reported on test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from llmos import hookimpl


class WithTest:
    """The conftest's blocks plus a held-out ``test`` split (what data.corpus gives with test_fraction)."""

    def __init__(self, base: Any, test: Any) -> None:
        self.base, self.test = base, test
        self.vocab_size, self.block_size = base.vocab_size, base.block_size
        self.corpus_sha256, self.stats = base.corpus_sha256, {}
        self.splits = ["test", "train", "validation"]

    def split(self, name: str) -> Any:
        return self.test if name == "test" else self.base.split(name)


class _Plugin:
    def __init__(self, dataset: Any, model_factory: Any) -> None:
        self.dataset, self.model_factory = dataset, model_factory

    @hookimpl
    def llmos_register_data_steps(self, register):
        register("blocks", lambda cfg: (lambda ctx: ctx.artifacts.__setitem__("dataset", self.dataset)))

    @hookimpl
    def llmos_register_model_steps(self, register):
        register("tiny", lambda cfg: (lambda ctx: ctx.artifacts.__setitem__("model", self.model_factory(0))))


@pytest.fixture
def manager(plugin_manager, dataset, model_factory):
    import llmos_train.plugin

    plugin_manager.register(llmos_train.plugin, name="llmos-train")
    test = dataset.split("train")[-16:]  # blocks the validation split does not hold
    plugin_manager.register(_Plugin(WithTest(dataset, test), model_factory), name="test-steps")
    return plugin_manager


def _run(tmp_path: Path, name: str, parallel: int):
    from llmos.pipeline import load_pipeline, run_pipeline
    from llmos.registry import open_registry

    path = tmp_path / f"{name}.toml"
    path.write_text(f'[pipeline]\nname = "{name}"\nseed = 3\n[[stages]]\nuse = "data.blocks"\n'
                    '[[stages]]\nuse = "model.tiny"\n[[stages]]\nid = "search"\nuse = "optimizer.grid-search"\n'
                    f'[stages.config]\nparallel = {parallel}\ngrid = {{ lr = [1e-4, 1e-2] }}\n'
                    'train = { max_steps = 6, batch_size = 4, log_every = 2, threads = 1 }\n')
    reg = open_registry()
    result = run_pipeline(load_pipeline(path), registry=reg)
    assert result.status == "completed", result.error
    kids = {reg.get_run(k.id).config["trial"]: reg.get_run(k.id)
            for k in reg.list_runs() if k.parent_run_id == result.run_id}
    return result, kids, reg


def test_two_parallel_trials_equal_sequential_ones_and_report_on_test(manager, tmp_path) -> None:
    seq, seq_kids, reg = _run(tmp_path, "seq", 1)
    par, par_kids, _ = _run(tmp_path, "par", 2)
    assert sorted(par_kids) == ["trial-1", "trial-2"] and all(k.status == "completed" for k in par_kids.values())
    for name in ("trial-1", "trial-2"):  # same seed, same settings: the same losses in another process
        assert par_kids[name].summary["metrics"]["val_loss"] == seq_kids[name].summary["metrics"]["val_loss"]
        assert [p["step"] for p in reg.run_metrics(par_kids[name].id, "loss")] == [2, 4, 6]
    out_seq, out_par = seq.stages[-1].result, par.stages[-1].result
    assert out_par["best_trial"] == out_seq["best_trial"]
    losses = {n: k.summary["metrics"]["val_loss"] for n, k in par_kids.items()}
    assert out_par["best_trial"] == min(losses, key=losses.get)  # chosen on validation
    assert out_par["test_loss"] == out_seq["test_loss"] and out_par["test_loss"] != out_par["val_loss"]
    assert out_par["test_ppl"] > 1


def test_parallel_is_capped_at_the_cores(monkeypatch) -> None:
    from llmos_train import parallel_trials

    monkeypatch.setattr(parallel_trials.os, "cpu_count", lambda: 2)
    assert parallel_trials.workers(8) == 2 and parallel_trials.workers(1) == 1
    from llmos_train.config import GridSearchConfig

    with pytest.raises(Exception, match="greater than or equal to 1"):
        GridSearchConfig(grid={"lr": [1e-3]}, parallel=0)
