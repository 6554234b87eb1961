"""Settings of the compression components (pydantic; imported by the hook lazily)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Int8Config(BaseModel):
    """``compression.int8``: dynamic int8 quantization of ``nn.Linear`` layers."""

    model_config = ConfigDict(extra="forbid")

    per_channel: bool = Field(
        True, description="One scale per output channel (more accurate) instead of one per tensor."
    )
    include_lm_head: bool = Field(
        True,
        description="Quantize the output projection too (faster and smaller; unties it from the fp32 embedding).",
    )
    exclude: list[str] = Field(
        default_factory=list, description="Module names (or name prefixes) to leave in fp32, e.g. ['model.layers.0']."
    )


class PruneConfig(BaseModel):
    """``compression.prune``: unstructured magnitude or structured pruning."""

    model_config = ConfigDict(extra="forbid")

    sparsity: float = Field(
        0.3,
        description="Fraction to remove, 0 < sparsity < 1: of the Linear weights (unstructured) or of the MLP "
        "neurons (structured).",
    )
    structured: bool = Field(
        False, description="Remove whole MLP neurons / attention heads (smaller and faster) instead of single weights."
    )
    heads: float = Field(
        0.0,
        description="Structured only: fraction of attention heads (key/value groups) to remove per layer, 0 <= heads < 1.",
    )
    scope: Literal["global", "layer"] = Field(
        "global", description="Unstructured only: rank weights over the whole model or within each layer."
    )
    calibration_batches: int = Field(
        4, ge=0, description="Structured: batches of training data used to rank neurons by activation (0 = weights only)."
    )
    recovery_steps: int = Field(0, ge=0, description="Steps of fine-tuning after pruning (needs a dataset).")
    lr: float = Field(5e-4, gt=0, description="Learning rate of the recovery fine-tune.")
    batch_size: int = Field(8, ge=1, description="Blocks per step of the recovery fine-tune.")
    seed: int | None = Field(None, description="Random seed (default: the run's seed).")

    @model_validator(mode="after")
    def _ranges(self) -> PruneConfig:
        if not 0.0 < self.sparsity < 1.0:
            raise ValueError(
                f"sparsity must be between 0 and 1 (exclusive), got {self.sparsity}: e.g. sparsity = 0.3 removes 30%"
            )
        if not 0.0 <= self.heads < 1.0:
            raise ValueError(f"heads must be in [0, 1), got {self.heads}: e.g. heads = 0.25 removes a quarter")
        if self.heads and not self.structured:
            raise ValueError("heads applies to structured pruning only: set structured = true")
        return self


class DistillConfig(BaseModel):
    """``compression.distill``: knowledge distillation from a teacher into the student."""

    model_config = ConfigDict(extra="forbid")

    teacher: str | None = Field(
        None,
        description="Registry reference or directory of the teacher (default: ctx.artifacts['teacher'], "
        "loaded by model.load with as = 'teacher').",
    )
    alpha: float = Field(0.5, ge=0.0, le=1.0, description="Weight of the distillation (KL) term; 1 - alpha weighs CE.")
    temperature: float = Field(2.0, gt=0.0, description="Softmax temperature T of teacher and student.")
    steps: int = Field(200, ge=1, description="Training steps.")
    lr: float = Field(1e-3, gt=0, description="Peak learning rate (AdamW, warmup then cosine decay).")
    warmup_steps: int = Field(20, ge=0, description="Linear warmup steps.")
    batch_size: int = Field(8, ge=1, description="Blocks per step.")
    student_layers: int | None = Field(
        None,
        ge=1,
        description="Only when the run has no student model: build one from the teacher with this many layers "
        "(default: half), initialised from every other teacher layer.",
    )
    eval_batches: int = Field(8, ge=1, description="Validation batches for the final student/teacher perplexity.")
    seed: int | None = Field(None, description="Random seed (default: the run's seed).")


class QuantizeConfig(BaseModel):
    """``compression.quantize``: any quantization method a plugin registers."""

    model_config = ConfigDict(extra="forbid")

    method: str = Field("int8", description="A registered quantizer (llmos components --kind quantizers), "
                                            "or plugin:name.")
    settings: dict[str, Any] = Field(default_factory=dict, description="The quantizer's own settings.")

    @model_validator(mode="after")
    def _known(self):  # type: ignore[no-untyped-def]
        resolve_quantizer(self)  # a located error at --check time, listing what exists
        return self


def resolve_quantizer(cfg: QuantizeConfig) -> tuple[Any, Any]:
    """``(extension, validated settings)``; ``ValueError`` naming the available quantizers."""
    from llmos.sdk import find_extension, validate_settings

    ext = find_extension("quantizers", cfg.method)
    return ext, validate_settings(ext, cfg.settings)

