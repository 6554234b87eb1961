"""Settings of the export components (pydantic; imported by the hook lazily)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class OnnxConfig(BaseModel):
    """``deployment.onnx``: ONNX export checked with ONNX Runtime."""

    model_config = ConfigDict(extra="forbid")

    opset: int = Field(18, ge=17, le=23, description="ONNX opset version.")
    quantize: bool = Field(
        False, description="Also write model.int8.onnx: ONNX Runtime dynamic int8 quantization of the weights."
    )
    tolerance: float = Field(
        1e-3, gt=0, description="Largest |logit difference| allowed between ONNX Runtime and PyTorch (fp32 graph)."
    )
    check_tokens: int = Field(16, ge=2, le=512, description="Length of the random check sequence.")
    model: str | None = Field(
        None, description="Pipelines: register the export under this model name (default: '<pipeline model>-onnx')."
    )


class SafetensorsConfig(BaseModel):
    """``deployment.safetensors``: a plain Hugging Face directory."""

    model_config = ConfigDict(extra="forbid")

    dtype: Literal["float32", "float16", "bfloat16"] = Field("float32", description="Weight dtype of the export.")
    model: str | None = Field(
        None, description="Pipelines: register the export under this model name (default: '<pipeline model>-hf')."
    )


class ExportConfig(BaseModel):
    """``deployment.export``: any export format a plugin registers."""

    model_config = ConfigDict(extra="forbid")

    format: str = Field("safetensors", description="A registered export format (llmos components --kind "
                                                   "export_formats), or plugin:name.")
    settings: dict[str, Any] = Field(default_factory=dict, description="The format's own settings.")

    @model_validator(mode="after")
    def _known(self):  # type: ignore[no-untyped-def]
        resolve_format(self)  # a located error at --check time, listing what exists
        return self


def resolve_format(cfg: Any) -> tuple[Any, Any]:
    """``(extension, validated settings)`` for an :class:`ExportConfig`; ``ValueError``
    (reported with its location by pydantic) naming the available formats."""
    from llmos.sdk import find_extension, validate_settings

    ext = find_extension("export_formats", cfg.format)
    return ext, validate_settings(ext, cfg.settings)
