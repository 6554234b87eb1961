"""The training loop on a real tiny Llama: learning, resume, accumulation, early stopping."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from llmos.errors import ValidationError
from llmos_train.checkpoint import latest_checkpoint, list_checkpoints
from llmos_train.config import TrainConfig
from llmos_train.loop import evaluate, lm_loss
from llmos_train.step import TrainStep


def losses(ctx) -> list[float]:
    return [m["loss"] for kind, _, m in ctx.logged if kind == "train"]


def params(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_training_learns_and_reports(make_ctx, model_factory, dataset) -> None:
    ctx = make_ctx(model_factory(), dataset)
    before = evaluate(ctx.artifacts["model"], dataset.split("validation"), 8)["val_loss"]
    out = TrainStep(TrainConfig(max_steps=40, batch_size=8, lr=1e-2, warmup_steps=4, log_every=5,
                                eval_every=20)).run(ctx)
    assert out["val_loss"] < before - 1.0  # it learns the progressions
    assert out["val_ppl"] == pytest.approx(math.exp(out["val_loss"]))
    assert ctx.artifacts["metrics"]["val_loss"] == out["val_loss"]
    assert ctx.artifacts["lineage"]["method"] == "train"
    train = [(s, m) for kind, s, m in ctx.logged if kind == "train"]
    assert [s for s, _ in train] == [5, 10, 15, 20, 25, 30, 35, 40]
    assert set(train[0][1]) == {"loss", "lr", "grad_norm", "tokens_per_s", "epoch"}
    assert all(m["tokens_per_s"] > 0 and m["grad_norm"] > 0 for _, m in train)
    evals = [(s, m) for kind, s, m in ctx.logged if kind == "eval"]
    assert [s for s, _ in evals] == [20, 40]  # the last eval is not repeated at the end
    assert evals[-1][1]["val_loss"] == out["val_loss"]


def test_eval_is_mean_token_nll(model_factory, dataset) -> None:
    model = model_factory()
    val = dataset.split("validation")
    got = evaluate(model, val, batch_size=3)
    x = torch.from_numpy(np.asarray(val, dtype=np.int64))
    with torch.no_grad():
        logits = model(input_ids=x).logits
        want = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)), x[:, 1:].reshape(-1))
    assert got["val_loss"] == pytest.approx(float(want), rel=1e-5)
    with torch.no_grad():
        assert float(lm_loss(model, x)) == pytest.approx(float(want), rel=1e-5)


@pytest.mark.parametrize("optimizer,schedule", [("adamw", "cosine"), ("lamb", "noam"), ("sgd", "linear-warmup")])
def test_resume_equals_uninterrupted(make_ctx, model_factory, dataset, tmp_path, optimizer, schedule) -> None:
    cfg = TrainConfig(optimizer=optimizer, schedule=schedule, max_steps=24, batch_size=4, lr=5e-3,
                      warmup_steps=3, log_every=1, eval_every=8, checkpoint_every=5)
    full = make_ctx(model_factory(0), dataset, workdir=tmp_path / "full")
    TrainStep(cfg).run(full)

    # interrupted at step 13 (a Ctrl-C: the loop saves a checkpoint there and returns)
    part = make_ctx(model_factory(0), dataset, workdir=tmp_path / "part")
    orig = part.checkpoint_dir

    class StopAt13:
        def is_set(self) -> bool:
            return len(losses(part)) >= 13

        def set(self) -> None:
            pass

    part.stop_event = StopAt13()
    out = TrainStep(cfg).run(part)
    assert out["interrupted_at_step"] == 13
    assert "metrics" not in part.artifacts
    assert latest_checkpoint(orig()).name == "step-0000013"
    # resumed in a fresh process-like state: another model init, other RNG states
    torch.manual_seed(999)
    np.random.seed(5)
    resumed = make_ctx(model_factory(1), dataset, workdir=tmp_path / "part", resume=True)
    resumed.logged = list(part.logged)
    TrainStep(cfg).run(resumed)
    assert losses(resumed) == losses(full)  # bit-for-bit the same losses
    a, b = params(full.artifacts["model"]), params(resumed.artifacts["model"])
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.artifacts["metrics"]["val_loss"] == full.artifacts["metrics"]["val_loss"]


def test_checkpoints_are_safetensors_and_json_only(make_ctx, model_factory, dataset) -> None:
    ctx = make_ctx(model_factory(), dataset)
    TrainStep(TrainConfig(max_steps=9, batch_size=4, checkpoint_every=3, keep_checkpoints=2)).run(ctx)
    ckpts = list_checkpoints(ctx.checkpoint_dir())
    assert [c.name for c in ckpts] == ["step-0000006", "step-0000009"]  # only the newest 2 kept
    files = sorted(p.name for p in ckpts[-1].iterdir())
    assert files == ["model.safetensors", "optimizer.safetensors", "rng.safetensors", "state.json"]
    state = json.loads((ckpts[-1] / "state.json").read_text())
    assert state["step"] == 9 and state["loop"]["cursor"] % 4 == 0
    assert not list(ctx.workdir.rglob("*.tmp"))


def test_resume_of_finished_training_restores_final_weights(make_ctx, model_factory, dataset, tmp_path) -> None:
    cfg = TrainConfig(max_steps=6, batch_size=4, log_every=1)
    first = make_ctx(model_factory(0), dataset, workdir=tmp_path / "w")
    TrainStep(cfg).run(first)
    again = make_ctx(model_factory(3), dataset, workdir=tmp_path / "w", resume=True)
    TrainStep(cfg).run(again)
    assert losses(again) == []  # nothing re-trained
    a, b = params(first.artifacts["model"]), params(again.artifacts["model"])
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_grad_accumulation_matches_large_batch(make_ctx, model_factory, dataset, tmp_path) -> None:
    big = make_ctx(model_factory(0), dataset, workdir=tmp_path / "a")
    TrainStep(TrainConfig(max_steps=6, batch_size=8, log_every=1, clip_grad_norm=None)).run(big)
    # two micro-batches of 4 are the same 8 blocks as one batch of 8
    small = make_ctx(model_factory(0), dataset, workdir=tmp_path / "b")
    TrainStep(TrainConfig(max_steps=3, batch_size=4, grad_accum=2, log_every=1, clip_grad_norm=None)).run(small)
    big2 = make_ctx(model_factory(0), dataset, workdir=tmp_path / "c")
    TrainStep(TrainConfig(max_steps=3, batch_size=8, log_every=1, clip_grad_norm=None)).run(big2)
    assert losses(small) == pytest.approx(losses(big2), rel=1e-5)
    a, b = params(small.artifacts["model"]), params(big2.artifacts["model"])
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-6)


def test_early_stopping(make_ctx, model_factory, dataset) -> None:
    ctx = make_ctx(model_factory(), dataset)
    # a learning rate so small that val loss cannot improve by min_delta
    out = TrainStep(TrainConfig(max_steps=100, batch_size=4, lr=1e-9, schedule="constant", eval_every=2,
                                early_stopping_patience=2, early_stopping_min_delta=0.5)).run(ctx)
    assert out["stopped"] == "early_stopping"
    assert out["steps"] == 6  # evals at 2 (best), 4 and 6 (no improvement twice)


def test_early_stopping_restores_the_best_weights(make_ctx, model_factory, dataset, tmp_path) -> None:
    # a learning rate that diverges after the first evaluations
    cfg = TrainConfig(max_steps=60, batch_size=4, lr=0.3, schedule="constant", eval_every=2, log_every=2,
                      early_stopping_patience=2, clip_grad_norm=None, optimizer="sgd", optimizer_config={"momentum": 0.0})
    ctx = make_ctx(model_factory(), dataset)
    out = TrainStep(cfg).run(ctx)
    evals = [m["val_loss"] for kind, _, m in ctx.logged if kind == "eval"]
    assert out["stopped"] == "early_stopping" and out["steps"] < 60
    assert out["val_loss"] == min(evals) < evals[-1]
    assert out["best_step"] == 2 * (evals.index(min(evals)) + 1)
    got = evaluate(ctx.artifacts["model"], dataset.split("validation"), 4)["val_loss"]
    assert got == pytest.approx(out["val_loss"], rel=1e-5)  # the model now holds the best weights
    assert (ctx.checkpoint_dir() / "best.safetensors").exists()
    kept = TrainStep(cfg.model_copy(update={"restore_best": False})).run(make_ctx(model_factory(), dataset,
                                                                                 workdir=tmp_path / "k"))
    assert kept["val_loss"] == evals[-1]


def test_clipping_bounds_the_update(make_ctx, model_factory, dataset, tmp_path) -> None:
    ctx = make_ctx(model_factory(), dataset)
    TrainStep(TrainConfig(max_steps=3, batch_size=4, log_every=1, clip_grad_norm=1e-3, optimizer="sgd",
                          optimizer_config={"momentum": 0.0}, weight_decay=0.0, schedule="constant", lr=1.0)).run(ctx)
    m0, m1 = params(model_factory()), params(ctx.artifacts["model"])
    moved = torch.sqrt(sum(((m1[k] - m0[k]) ** 2).sum() for k in m0 if k != "lm_head.weight"))
    assert float(moved) <= 3 * 1e-3 * 1.0001  # 3 SGD steps of norm ≤ lr·clip


def test_clear_errors_for_missing_inputs(make_ctx, model_factory, dataset) -> None:
    ctx = make_ctx(model_factory(), dataset)
    del ctx.artifacts["dataset"]
    with pytest.raises(ValidationError, match="needs a dataset"):
        TrainStep(TrainConfig()).run(ctx)
    ctx = make_ctx(model_factory(), dataset)
    with pytest.raises(ValidationError, match="fewer than batch_size"):
        TrainStep(TrainConfig(batch_size=1000)).run(ctx)
    with pytest.raises(ValidationError, match="divisible"):
        TrainStep(TrainConfig(batch_size=5, nproc=2)).run(ctx)


def test_config_validation() -> None:
    import pydantic

    with pytest.raises(pydantic.ValidationError, match="noam"):
        TrainConfig(schedule="noam", warmup_steps=0)
    with pytest.raises(pydantic.ValidationError, match="warmup_steps"):
        TrainConfig(max_steps=5, warmup_steps=10)
    with pytest.raises(pydantic.ValidationError, match="betas"):
        TrainConfig(optimizer_config={"betas": (0.9, 1.5)})
    with pytest.raises(pydantic.ValidationError, match="momentum"):
        TrainConfig(optimizer="adamw", optimizer_config={"momentum": 0.9})  # an SGD setting
    with pytest.raises(pydantic.ValidationError, match="optimizer_config = { betas"):
        TrainConfig(betas=(0.9, 0.99))  # moved: the message says where
    with pytest.raises(pydantic.ValidationError, match=r"no optimizer named 'lion' \(available optimizers: adam, adamw"):
        TrainConfig(optimizer="lion")
    with pytest.raises(pydantic.ValidationError):
        TrainConfig(lr="fast")
