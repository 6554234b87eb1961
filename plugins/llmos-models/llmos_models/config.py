"""Settings of the model plugin's components (pydantic; imported by the hook lazily)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from llmos_models.generate import GenerationSettings

#: Size presets of the built-in architectures (config fields per preset).
PRESETS: dict[str, dict[str, dict[str, int]]] = {
    "llama": {
        "tiny": {"hidden_size": 128, "num_layers": 3, "num_heads": 4, "intermediate_size": 320},
        "small": {"hidden_size": 256, "num_layers": 10, "num_heads": 8, "intermediate_size": 768},
        "base": {"hidden_size": 512, "num_layers": 8, "num_heads": 8, "intermediate_size": 1536},
    },
    "gpt2": {
        "tiny": {"hidden_size": 128, "num_layers": 3, "num_heads": 4, "intermediate_size": 512},
        "small": {"hidden_size": 256, "num_layers": 10, "num_heads": 8, "intermediate_size": 1024},
        "base": {"hidden_size": 512, "num_layers": 9, "num_heads": 8, "intermediate_size": 2048},
    },
}

Preset = Literal["tiny", "small", "base"]


class _ArchConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    preset: Preset = Field("tiny", description="Size preset: tiny (~1M params), small (~10M), base (~30M).")
    hidden_size: int | None = Field(None, ge=8, description="Override: width of the residual stream.")
    num_layers: int | None = Field(None, ge=1, description="Override: number of decoder layers.")
    num_heads: int | None = Field(None, ge=1, description="Override: attention heads (must divide hidden_size).")
    max_position_embeddings: int | None = Field(
        None, ge=2, description="Longest sequence the model accepts (default: max(block size, 512))."
    )
    vocab_size: int | None = Field(
        None, ge=2, description="Override the vocabulary size (default: the dataset's vocab_size)."
    )
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout probability (attention and residual).")
    tie_word_embeddings: bool = Field(True, description="Share the input embedding and output projection.")

    @model_validator(mode="after")
    def _heads(self):  # type: ignore[no-untyped-def]
        arch = "llama" if isinstance(self, LlamaConfig) else "gpt2"
        p = PRESETS[arch][self.preset]
        h = self.hidden_size or p["hidden_size"]
        n = self.num_heads or p["num_heads"]
        if h % n:
            raise ValueError(f"hidden_size {h} is not divisible by num_heads {n}")
        return self


class LlamaConfig(_ArchConfig):
    """``model.llama``: a Llama-style decoder (RMSNorm, RoPE, SwiGLU, nn.Linear layers)."""

    intermediate_size: int | None = Field(None, ge=1, description="Override: width of the SwiGLU MLP.")
    num_kv_heads: int | None = Field(None, ge=1, description="Key/value heads (grouped-query attention); default = num_heads.")
    rope_theta: float = Field(10000.0, gt=0, description="RoPE base frequency.")


class GPT2Config(_ArchConfig):
    """``model.gpt2``: a GPT-2-style decoder (LayerNorm, learned positions, GELU MLP)."""

    intermediate_size: int | None = Field(None, ge=1, description="Override: width of the MLP (default 4×hidden).")


class BuildConfig(BaseModel):
    """``model.build``: any architecture a plugin registers (``llmos components --kind architectures``)."""

    model_config = ConfigDict(extra="forbid")

    architecture: str = Field("llama", description="A registered architecture (e.g. llama, gpt2), or plugin:name.")
    preset: str = Field("tiny", description="One of the architecture's size presets.")
    settings: dict[str, Any] = Field(default_factory=dict,
                                     description="The architecture's own config fields (override the preset).")
    max_position_embeddings: int | None = Field(
        None, ge=2, description="Longest sequence the model accepts (default: max(block size, 512))."
    )
    vocab_size: int | None = Field(None, ge=2, description="Override the vocabulary size (default: the dataset's).")

    @model_validator(mode="after")
    def _known(self):  # type: ignore[no-untyped-def]
        resolve_architecture(self)  # a located error at --check time, listing what exists
        return self


def resolve_architecture(cfg: BuildConfig) -> tuple[Any, Any]:
    """``(extension, validated architecture config)`` for a :class:`BuildConfig`;
    ``ValueError`` (reported by pydantic with its location) naming the available choices."""
    from llmos.sdk import find_extension, validate_settings

    ext = find_extension("architectures", cfg.architecture)
    presets = ext.extra.get("presets") or {}
    if presets and cfg.preset not in presets:
        raise ValueError(f"architecture {ext.name!r} has no preset {cfg.preset!r} (presets: {', '.join(presets)})")
    return ext, validate_settings(ext, {**presets.get(cfg.preset, {}), **cfg.settings})


class LoadConfig(BaseModel):
    """``model.load``: load a registered version into the run."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    ref: str = Field(..., min_length=1, description="Registry reference ('name', 'name:3', 'name@production') or a local directory.")
    as_: Literal["model", "teacher"] = Field(
        "model", alias="as", description="Put it in ctx.artifacts['model'] (default) or ['teacher'] for distillation."
    )


class EvaluateConfig(BaseModel):
    """``model.evaluate``: perplexity vs a unigram baseline, size, speed and samples."""

    model_config = ConfigDict(extra="forbid")

    batch_size: int = Field(8, ge=1, description="Blocks per forward pass.")
    max_blocks: int | None = Field(None, ge=1, description="Evaluate at most this many validation blocks (None = all).")
    split: str = Field("validation", description="Dataset split to evaluate on.")
    speed_tokens: int = Field(32, ge=1, description="Tokens generated greedily to measure tokens/s and latency.")
    prompts: list[str] = Field(
        default_factory=lambda: ["Return the", "This module provides", "The default"],
        description="Prompts for sample generations (printed and kept in ctx.artifacts['samples']).",
    )
    sample: GenerationSettings = Field(
        default_factory=lambda: GenerationSettings(max_new_tokens=40, temperature=0.8, top_k=50, top_p=0.95,
                                                   repetition_penalty=1.1),
        description="Generation settings for the samples (seed defaults to the run's seed).",
    )
    quiet: bool = Field(False, description="Do not print the metrics and samples.")
    bits_per_byte: bool = Field(
        True, description="Also report bits per byte (val_bpb, test_bpb): comparable across tokenizers."
    )
    tasks: list[str | dict[str, Any]] = Field(
        default_factory=list,
        description="Eval tasks to run (registered names, e.g. 'stdlib-docstrings', or {name = 'multiple-choice', "
        "path = 'task.yaml'}); results become metrics task.<name>.v<version>.<metric>.",
    )
    device: str = Field("auto", description="Where to evaluate: auto (cuda, then mps, then cpu), cpu, cuda, cuda:N, mps.")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="auto: bf16 autocast on CUDA GPUs that support it, fp32 elsewhere."
    )

    @field_validator("device")
    @classmethod
    def _device(cls, name: str) -> str:
        from llmos.sdk import check_device_name

        return check_device_name(name)


class RegisterConfig(BaseModel):
    """``model.register``: save the model and register it as a new version."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(None, description="Model name in the registry (default: the pipeline's model name).")
    alias: str | None = Field(None, description="Point this alias (e.g. 'production') at the new version.")
    tags: dict[str, str] = Field(default_factory=dict, description="Tags recorded on the version.")
    description: str = Field("", description="Free text recorded on the version.")
