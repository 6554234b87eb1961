"""DDP with 2 real processes (torchrun, gloo on CPU) against one process, same global batch."""

from __future__ import annotations

import pytest
import torch

from llmos_train.config import TrainConfig
from llmos_train.step import TrainStep


@pytest.mark.slow
def test_two_process_ddp_matches_single_process(make_ctx, model_factory, dataset, tmp_path) -> None:
    cfg = dict(max_steps=8, batch_size=8, lr=5e-3, warmup_steps=2, log_every=2, eval_every=4, checkpoint_every=4,
               threads=1)
    single = make_ctx(model_factory(0), dataset, workdir=tmp_path / "one")
    TrainStep(TrainConfig(**cfg)).run(single)

    ddp = make_ctx(model_factory(0), dataset, workdir=tmp_path / "two")
    ddp.nproc = 2  # what `llmos run --nproc 2` sets
    out = TrainStep(TrainConfig(**cfg)).run(ddp)

    def series(ctx, kind, name):
        return [(s, m[name]) for k, s, m in ctx.logged if k == kind]

    one_loss, two_loss = series(single, "train", "loss"), series(ddp, "train", "loss")
    assert [s for s, _ in two_loss] == [2, 4, 6, 8]  # rank 0 alone reported, once per logging step
    assert [v for _, v in two_loss] == pytest.approx([v for _, v in one_loss], rel=1e-4)
    assert [v for _, v in series(ddp, "eval", "val_loss")] == pytest.approx(
        [v for _, v in series(single, "eval", "val_loss")], rel=1e-4)
    assert out["val_loss"] == pytest.approx(single.artifacts["metrics"]["val_loss"], rel=1e-4)
    # the trained weights came back into the pipeline's model
    a, b = single.artifacts["model"].state_dict(), ddp.artifacts["model"].state_dict()
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-3, atol=1e-5)
    # rank 0 wrote the checkpoints where a resumed run looks for them
    assert sorted(p.name for p in ddp.checkpoint_dir().iterdir()) == ["step-0000004", "step-0000008"]


def test_workers_find_memory_mapped_data_without_copies(tmp_path) -> None:
    import numpy as np

    from llmos_train.ddp import _data_ref, _load_data

    path = tmp_path / "blocks.u16"
    np.arange(40, dtype=np.uint16).reshape(10, 4).tofile(path)
    whole = np.memmap(path, dtype=np.uint16, mode="r", shape=(10, 4))
    for arr in (whole, whole[3:7], whole[9:]):
        ref = _data_ref(arr, tmp_path / "copy.npy")
        assert "path" in ref  # the file itself, not a copy
        np.testing.assert_array_equal(_load_data(ref), arr)
    for plain in (np.ones((3, 4), dtype=np.uint16), whole[0:0]):  # not mappable: written once for the workers
        ref = _data_ref(plain, tmp_path / "copy.npy")
        assert "npy" in ref
        np.testing.assert_array_equal(_load_data(ref), plain)


@pytest.mark.slow
def test_ddp_stops_on_request_and_resumes_exactly(make_ctx, model_factory, dataset, tmp_path) -> None:
    cfg = TrainConfig(max_steps=60, batch_size=8, lr=5e-3, warmup_steps=2, log_every=2, checkpoint_every=0,
                      threads=1, nproc=2)
    single = make_ctx(model_factory(0), dataset, workdir=tmp_path / "one")
    TrainStep(cfg.model_copy(update={"nproc": 1})).run(single)

    ddp = make_ctx(model_factory(0), dataset, workdir=tmp_path / "two")
    write = ddp._metric_writer

    def stop_after_first_metrics(kind, step, metrics):  # Ctrl-C as soon as training is under way
        write(kind, step, metrics)
        ddp.stop_event.set()

    ddp._metric_writer = stop_after_first_metrics
    out = TrainStep(cfg).run(ddp)
    stopped_at = out["interrupted_at_step"]
    assert 2 <= stopped_at < 60 and stopped_at % 2 == 0  # the workers agreed at a logging step

    resumed = make_ctx(model_factory(5), dataset, workdir=tmp_path / "two", resume=True)
    resumed.logged = list(ddp.logged)
    TrainStep(cfg).run(resumed)
    got = [(s, m["loss"]) for k, s, m in resumed.logged if k == "train"]
    want = [(s, m["loss"]) for k, s, m in single.logged if k == "train"]
    assert [s for s, _ in got] == [s for s, _ in want] == list(range(2, 61, 2))
    assert [v for _, v in got] == pytest.approx([v for _, v in want], rel=1e-4)


@pytest.mark.slow
def test_fsdp_two_processes_match_one_and_resume_from_their_checkpoint(make_ctx, model_factory, dataset,
                                                                       tmp_path) -> None:
    common = dict(batch_size=8, lr=5e-3, schedule="constant", log_every=2, threads=1)
    single = make_ctx(model_factory(0), dataset, workdir=tmp_path / "one")
    TrainStep(TrainConfig(max_steps=12, **common)).run(single)

    sharded = make_ctx(model_factory(0), dataset, workdir=tmp_path / "two")
    TrainStep(TrainConfig(max_steps=8, checkpoint_every=4, nproc=2, parallel="fsdp", **common)).run(sharded)
    # the checkpoint holds the full (gathered) model, loadable without FSDP
    assert sorted(p.name for p in sharded.checkpoint_dir().iterdir()) == ["step-0000004", "step-0000008"]
    resumed = make_ctx(model_factory(3), dataset, workdir=tmp_path / "two", resume=True)
    resumed.logged = list(sharded.logged)
    TrainStep(TrainConfig(max_steps=12, nproc=2, parallel="fsdp", **common)).run(resumed)

    def series(ctx):
        return [(s, m["loss"]) for k, s, m in ctx.logged if k == "train"]

    got, want = series(resumed), series(single)
    assert [s for s, _ in got] == [s for s, _ in want] == [2, 4, 6, 8, 10, 12]
    assert [v for _, v in got] == pytest.approx([v for _, v in want], rel=1e-4)
    a, b = single.artifacts["model"].state_dict(), resumed.artifacts["model"].state_dict()
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-3, atol=1e-5)
