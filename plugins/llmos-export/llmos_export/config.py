"""Settings of the export components (pydantic; imported by the hook lazily)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


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
