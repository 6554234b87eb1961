"""Device, precision, compile, gradient checkpointing and FSDP code paths, on the CPU."""

from __future__ import annotations

import pytest
import torch

from llmos.errors import ValidationError
from llmos_train.config import TrainConfig
from llmos_train.step import TrainStep


def train_losses(make_ctx, model_factory, dataset, workdir, **cfg) -> tuple[list[float], object]:
    ctx = make_ctx(model_factory(0), dataset, workdir=workdir)
    TrainStep(TrainConfig(**{"max_steps": 4, "batch_size": 4, "log_every": 1, **cfg})).run(ctx)
    return [m["loss"] for kind, _, m in ctx.logged if kind == "train"], ctx


def test_auto_device_is_the_cpu_here_and_an_absent_gpu_is_a_clear_error(make_ctx, model_factory, dataset,
                                                                       tmp_path) -> None:
    from llmos.devices import autocast_dtype, resolve_device

    assert resolve_device("auto") == "cpu" and autocast_dtype("cpu", "auto") is None  # fp32 on the CPU
    assert autocast_dtype("cpu", "bf16") == torch.bfloat16
    auto, _ = train_losses(make_ctx, model_factory, dataset, tmp_path / "a")
    cpu, ctx = train_losses(make_ctx, model_factory, dataset, tmp_path / "b", device="cpu", precision="fp32")
    assert auto == cpu
    assert next(ctx.artifacts["model"].parameters()).device.type == "cpu"
    with pytest.raises(ValidationError, match="no CUDA GPU is visible"):
        train_losses(make_ctx, model_factory, dataset, tmp_path / "c", device="cuda")
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        TrainConfig(device="gpu")


def test_gradient_checkpointing_gives_the_same_losses(make_ctx, model_factory, dataset, tmp_path) -> None:
    plain, _ = train_losses(make_ctx, model_factory, dataset, tmp_path / "p")
    recomputed, ctx = train_losses(make_ctx, model_factory, dataset, tmp_path / "g", gradient_checkpointing=True)
    assert ctx.artifacts["model"].is_activation_checkpointing
    assert recomputed == pytest.approx(plain, rel=1e-6)


def test_bf16_autocast_on_the_cpu_trains_close_to_fp32(make_ctx, model_factory, dataset, tmp_path) -> None:
    fp32, _ = train_losses(make_ctx, model_factory, dataset, tmp_path / "f")
    bf16, ctx = train_losses(make_ctx, model_factory, dataset, tmp_path / "b", precision="bf16")
    assert bf16 != fp32 and bf16 == pytest.approx(fp32, rel=2e-2)
    assert next(ctx.artifacts["model"].parameters()).dtype == torch.float32  # master weights stay fp32


def test_compile_gives_the_same_losses(make_ctx, model_factory, dataset, tmp_path) -> None:
    # aot_eager: dynamo + AOTAutograd tracing of forward and backward without inductor's C++
    # code generation (minutes on 2 cores); the GPU check (benchmarks/gpu_check.py) uses inductor
    eager, _ = train_losses(make_ctx, model_factory, dataset, tmp_path / "e", max_steps=2)
    compiled, _ = train_losses(make_ctx, model_factory, dataset, tmp_path / "c", max_steps=2, compile=True,
                               compile_backend="aot_eager")
    assert compiled == pytest.approx(eager, rel=1e-4)


def test_fused_adamw_is_chosen_only_for_gpu_parameters() -> None:
    from llmos_train.optim import make_optimizer

    model = torch.nn.Linear(4, 4)
    opt = make_optimizer("adamw", model, lr=1e-3)
    assert opt.defaults["fused"] in (None, False) and opt.defaults["foreach"]
