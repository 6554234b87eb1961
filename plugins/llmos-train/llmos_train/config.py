"""Settings of ``optimizer.train`` and ``optimizer.grid-search`` (pydantic, no torch)."""

from __future__ import annotations

import itertools
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

class AdamConfig(BaseModel):
    """Settings of the ``adamw`` and ``adam`` optimizers (torch.optim.AdamW / Adam)."""

    model_config = ConfigDict(extra="forbid")

    betas: tuple[float, float] = Field((0.9, 0.95), description="Moment decay rates (β1, β2).")
    eps: float = Field(1e-8, gt=0, description="Denominator epsilon.")
    fused: bool | None = Field(
        None, description="torch's fused CUDA kernel (None: on when the parameters are on a CUDA device)."
    )

    @field_validator("betas")
    @classmethod
    def _betas(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not all(0 <= b < 1 for b in v):
            raise ValueError("both betas must be in [0, 1)")
        return v


class LambConfig(BaseModel):
    """Settings of the ``lamb`` optimizer (:class:`llmos_train.optim.Lamb`)."""

    model_config = ConfigDict(extra="forbid")

    betas: tuple[float, float] = Field((0.9, 0.95), description="Moment decay rates (β1, β2).")
    eps: float = Field(1e-8, gt=0, description="Denominator epsilon.")
    max_trust_norm: float | None = Field(10.0, gt=0, description="Upper clip of ‖p‖ in the trust ratio (None: none).")

    _betas = field_validator("betas")(AdamConfig._betas.__func__)


class SgdConfig(BaseModel):
    """Settings of the ``sgd`` optimizer (torch.optim.SGD)."""

    model_config = ConfigDict(extra="forbid")

    momentum: float = Field(0.9, ge=0, lt=1, description="Momentum (0: plain SGD).")
    nesterov: bool = Field(False, description="Nesterov momentum (needs momentum > 0).")

    @model_validator(mode="after")
    def _check(self) -> SgdConfig:
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov needs momentum > 0")
        return self


def _warmup(info: ValidationInfo) -> tuple[int, int]:
    ctx = info.context or {}
    return int(ctx.get("warmup", 0)), int(ctx.get("total", 1 << 62))


class NoSettings(BaseModel):
    """Schedules ``constant`` and ``linear-warmup`` take no settings of their own."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="after")
    def _check(self, info: ValidationInfo) -> NoSettings:
        warmup, total = _warmup(info)
        if warmup > total:
            raise ValueError(f"warmup_steps ({warmup}) must not exceed max_steps ({total})")
        return self


class CosineConfig(BaseModel):
    """Settings of the ``cosine`` schedule (linear warmup, then cosine decay to a floor)."""

    model_config = ConfigDict(extra="forbid")

    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="Final lr as a fraction of the peak.")

    @model_validator(mode="after")
    def _check(self, info: ValidationInfo) -> CosineConfig:
        warmup, total = _warmup(info)
        if warmup > total:
            raise ValueError(f"warmup_steps ({warmup}) must not exceed max_steps ({total})")
        return self


class NoamConfig(BaseModel):
    """Settings of the ``noam`` schedule (Vaswani et al. 2017)."""

    model_config = ConfigDict(extra="forbid")

    d_model: int | None = Field(None, ge=1, description="Model width (default: the model's hidden size).")

    @model_validator(mode="after")
    def _check(self, info: ValidationInfo) -> NoamConfig:
        if _warmup(info)[0] < 1:
            raise ValueError("schedule 'noam' needs warmup_steps ≥ 1")
        return self


#: settings that moved into optimizer_config / schedule_config (named in the error)
_MOVED = {"betas": "optimizer_config", "eps": "optimizer_config", "momentum": "optimizer_config",
          "min_lr_ratio": "schedule_config", "d_model": "schedule_config"}
#: renamed settings
_RENAMED = {"eval_batches": "eval_blocks (it counts blocks now, so the score does not depend on batch_size: "
                            "eval_blocks = eval_batches × batch_size gives the old number)"}


class TrainConfig(BaseModel):
    """How to train the model in ``ctx.artifacts["model"]`` on ``ctx.artifacts["dataset"]``."""

    model_config = ConfigDict(extra="forbid")

    # -- optimizer -------------------------------------------------------------
    optimizer: str = Field(
        "adamw",
        description="Optimizer by name: adamw, adam, sgd, lamb, or one a plugin registers with "
        "llmos_register_optimizers (llmos components --json lists them).",
    )
    optimizer_config: dict[str, Any] = Field(
        default_factory=dict, validate_default=True, description="Settings of that optimizer (e.g. betas, eps for adamw; momentum for sgd)."
    )
    lr: float = Field(1e-3, gt=0, description="Peak learning rate (for noam: a factor on the noam formula).")
    weight_decay: float = Field(
        0.01, ge=0, description="Weight decay of matrices (decoupled for adamw and lamb; biases and norms: none)."
    )

    # -- schedule --------------------------------------------------------------
    max_steps: int = Field(100, ge=1, description="Optimizer updates to run.")
    schedule: str = Field(
        "cosine",
        description="LR schedule by name: constant, linear-warmup, cosine (with warmup), noam, or one a plugin "
        "registers with llmos_register_lr_schedules.",
    )
    warmup_steps: int = Field(0, ge=0, description="Linear warmup steps (noam: its warmup parameter, ≥ 1).")
    schedule_config: dict[str, Any] = Field(
        default_factory=dict, validate_default=True, description="Settings of that schedule (e.g. min_lr_ratio for cosine)."
    )

    # -- loop ------------------------------------------------------------------
    batch_size: int = Field(8, ge=1, description="Blocks per micro-batch, summed over all DDP processes.")
    grad_accum: int = Field(1, ge=1, description="Micro-batches accumulated per optimizer update.")
    clip_grad_norm: float | None = Field(
        1.0, gt=0, description="Clip the global gradient norm at this value (0 or false: no clipping)."
    )
    seed: int | None = Field(None, description="Seed of data order and dropout (default: the pipeline's seed).")

    # -- evaluation, logging, checkpoints -------------------------------------
    eval_every: int = Field(0, ge=0, description="Evaluate on the validation split every N steps (0: only at the end).")
    eval_blocks: int | None = Field(
        None, ge=1, description="Evaluate on the first N validation blocks (omit: the whole split); the score "
        "does not depend on batch_size.",
    )
    log_every: int = Field(10, ge=1, description="Record train metrics (loss, lr, grad_norm, tokens/s) every N steps.")
    checkpoint_every: int = Field(
        0, ge=0, description="Write a resumable checkpoint every N steps (0: only at the end and on Ctrl-C)."
    )
    keep_checkpoints: int = Field(2, ge=1, description="How many recent checkpoints to keep.")

    # -- early stopping --------------------------------------------------------
    early_stopping_patience: int | None = Field(
        None, ge=1, description="Stop after this many evaluations without improvement of val_loss (None: never)."
    )
    early_stopping_min_delta: float = Field(0.0, ge=0, description="Improvement smaller than this does not count.")
    restore_best: bool = Field(
        True, description="When early stopping ends training, continue with the weights of the best evaluation."
    )

    # -- devices -----------------------------------------------------------------
    device: str = Field("auto", description="Where to train: auto (cuda, then mps, then cpu), cpu, cuda, cuda:N, mps. "
                        "Under DDP each process takes the GPU of its LOCAL_RANK.")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="auto: bf16 autocast on CUDA GPUs that support it, fp32 elsewhere; or fp32, bf16 (CPU "
        "too), fp16 (GPU; no loss scaling)."
    )
    compile: bool = Field(False, description="torch.compile the model (faster steps after a compilation pause).")
    compile_backend: str = Field(
        "inductor", pattern=r"^[a-z_]+$",
        description="torch.compile backend: inductor (generated kernels), aot_eager (traced, no codegen: a quick "
        "check), cudagraphs...",
    )
    gradient_checkpointing: bool = Field(
        False, description="Recompute activations in the backward pass: less memory, about 30% more compute."
    )

    # -- parallelism -----------------------------------------------------------
    nproc: int | None = Field(
        None, ge=1, description="Data-parallel processes (DDP via torchrun, gloo on CPU); default: llmos run --nproc."
    )
    threads: int | None = Field(None, ge=1, description="torch intra-op threads per process (default: torch's).")
    parallel: Literal["ddp", "fsdp"] = Field(
        "ddp", description="With nproc > 1: ddp (a full copy per process) or fsdp (parameters, gradients and "
        "optimizer state sharded over the processes, for models that do not fit one GPU)."
    )

    @field_validator("device")
    @classmethod
    def _device(cls, name: str) -> str:
        from llmos.sdk import check_device_name

        return check_device_name(name)

    @model_validator(mode="before")
    @classmethod
    def _moved(cls, data: Any) -> Any:
        if isinstance(data, dict):
            moved = [k for k in data if k in _MOVED]
            if moved:
                k = moved[0]
                raise ValueError(f"{k!r} is a setting of the optimizer or schedule now: write "
                                 f"{_MOVED[k]} = {{ {k} = ... }}")
            for old, new in _RENAMED.items():
                if old in data:
                    raise ValueError(f"{old!r} was renamed {new}")
            if data.get("clip_grad_norm") is False or (
                    not isinstance(data.get("clip_grad_norm"), bool) and data.get("clip_grad_norm") == 0):
                data = {**data, "clip_grad_norm": None}  # TOML has no None: 0 or false turns clipping off
            elif data.get("clip_grad_norm") is True:
                raise ValueError("clip_grad_norm = true is ambiguous: give the norm to clip at (e.g. 1.0), or false")
        return data

    @field_validator("optimizer")
    @classmethod
    def _optimizer(cls, name: str) -> str:
        from llmos_train.extensions import OPTIMIZERS, lookup

        lookup(OPTIMIZERS, name)
        return name

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, name: str) -> str:
        from llmos_train.extensions import SCHEDULES, lookup

        lookup(SCHEDULES, name)
        return name

    @field_validator("optimizer_config")
    @classmethod
    def _optimizer_config(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        from llmos_train.extensions import OPTIMIZERS, validate_settings

        if "optimizer" not in info.data:  # the name itself is wrong: reported there
            return value
        return validate_settings(OPTIMIZERS, info.data["optimizer"], value)

    @field_validator("schedule_config")
    @classmethod
    def _schedule_config(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        from llmos_train.extensions import SCHEDULES, validate_settings

        if not {"schedule", "warmup_steps", "max_steps"} <= set(info.data):
            return value
        return validate_settings(SCHEDULES, info.data["schedule"], value,
                                 context={"warmup": info.data["warmup_steps"], "total": info.data["max_steps"]})


class GridSearchConfig(BaseModel):
    """A grid over :class:`TrainConfig` settings; each combination is one trial (a child run)."""

    model_config = ConfigDict(extra="forbid")

    grid: dict[str, list[Any]] = Field(
        ..., description='Setting → values to try, e.g. {lr = [1e-3, 3e-3], batch_size = [4, 8]}.'
    )
    train: dict[str, Any] = Field(default_factory=dict, description="Settings shared by every trial (TrainConfig).")
    metric: Literal["val_loss", "val_ppl"] = Field("val_loss", description="What the best trial minimises.")
    parallel: int = Field(
        1, ge=1, description="Trials trained at once, each in its own process (capped at the machine's cores)."
    )

    @model_validator(mode="after")
    def _check(self) -> GridSearchConfig:
        if not self.grid:
            raise ValueError("grid is empty: give at least one setting with values, e.g. lr = [1e-3, 3e-3]")
        unknown = sorted(set(self.grid) - set(TrainConfig.model_fields))
        if unknown:
            raise ValueError(f"unknown training setting(s) in grid: {', '.join(unknown)}")
        for key, values in self.grid.items():
            if not values:
                raise ValueError(f"grid.{key} has no values")
        from pydantic import ValidationError

        for trial in self.trials():  # every combination must be a valid TrainConfig
            try:
                TrainConfig.model_validate(trial)
            except ValidationError as exc:
                err = exc.errors()[0]
                loc = ".".join(str(p) for p in err.get("loc", ())) or "train"
                raise ValueError(f"trial {trial}: {loc}: {err.get('msg')}") from None
        return self

    def trials(self) -> list[dict[str, Any]]:
        """Every combination, as full TrainConfig settings (in a stable order)."""
        keys = sorted(self.grid)
        return [
            {**self.train, **dict(zip(keys, combo, strict=True))}
            for combo in itertools.product(*(self.grid[k] for k in keys))
        ]
