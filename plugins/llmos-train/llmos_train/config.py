"""Settings of ``optimizer.train`` and ``optimizer.grid-search`` (pydantic, no torch)."""

from __future__ import annotations

import itertools
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

OPTIMIZERS = ("adamw", "adam", "sgd", "lamb")
SCHEDULES = ("constant", "linear-warmup", "cosine", "noam")


class TrainConfig(BaseModel):
    """How to train the model in ``ctx.artifacts["model"]`` on ``ctx.artifacts["dataset"]``."""

    model_config = ConfigDict(extra="forbid")

    # -- optimizer -------------------------------------------------------------
    optimizer: Literal["adamw", "adam", "sgd", "lamb"] = Field("adamw", description="adamw, adam, sgd or lamb.")
    lr: float = Field(1e-3, gt=0, description="Peak learning rate (for noam: a factor on the noam formula).")
    weight_decay: float = Field(0.01, ge=0, description="Weight decay (decoupled for adamw and lamb).")
    betas: tuple[float, float] = Field((0.9, 0.95), description="Adam/LAMB moment decay rates.")
    eps: float = Field(1e-8, gt=0, description="Adam/LAMB denominator epsilon.")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum.")

    # -- schedule --------------------------------------------------------------
    schedule: Literal["constant", "linear-warmup", "cosine", "noam"] = Field(
        "cosine", description="constant, linear-warmup, cosine (with warmup) or noam."
    )
    warmup_steps: int = Field(0, ge=0, description="Linear warmup steps (noam: its warmup parameter, ≥ 1).")
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="cosine: final lr as a fraction of the peak.")
    d_model: int | None = Field(None, ge=1, description="noam: model width (default: the model's hidden size).")

    # -- loop ------------------------------------------------------------------
    max_steps: int = Field(100, ge=1, description="Optimizer updates to run.")
    batch_size: int = Field(8, ge=1, description="Blocks per micro-batch, summed over all DDP processes.")
    grad_accum: int = Field(1, ge=1, description="Micro-batches accumulated per optimizer update.")
    clip_grad_norm: float | None = Field(1.0, gt=0, description="Clip the global gradient norm (None: no clipping).")
    seed: int | None = Field(None, description="Seed of data order and dropout (default: the pipeline's seed).")

    # -- evaluation, logging, checkpoints -------------------------------------
    eval_every: int = Field(0, ge=0, description="Evaluate on the validation split every N steps (0: only at the end).")
    eval_batches: int | None = Field(
        None, ge=1, description="Evaluate on at most this many validation batches (None: the whole split)."
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

    # -- parallelism -----------------------------------------------------------
    nproc: int | None = Field(
        None, ge=1, description="Data-parallel processes (DDP via torchrun, gloo on CPU); default: llmos run --nproc."
    )
    threads: int | None = Field(None, ge=1, description="torch intra-op threads per process (default: torch's).")

    @field_validator("betas")
    @classmethod
    def _betas(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not all(0 <= b < 1 for b in v):
            raise ValueError("both betas must be in [0, 1)")
        return v

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.schedule == "noam" and self.warmup_steps < 1:
            raise ValueError("schedule 'noam' needs warmup_steps ≥ 1")
        if self.schedule in ("cosine", "linear-warmup") and self.warmup_steps > self.max_steps:
            raise ValueError(f"warmup_steps ({self.warmup_steps}) must not exceed max_steps ({self.max_steps})")
        return self


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
