"""Devices and numeric precision, shared by training, evaluation, generation and serving.

No torch at import time (torch loads when a function is called):

- ``resolve_device("auto")``: ``cuda`` when a CUDA GPU is visible, else ``mps`` (Apple),
  else ``cpu``; an explicit ``cuda``/``cuda:1``/``mps`` that is not available is a clear
  error instead of a crash deep inside torch;
- ``autocast_dtype(device, "auto")``: bfloat16 on CUDA GPUs that support it, otherwise
  ``None`` (float32); ``"bf16"``/``"fp16"``/``"fp32"`` choose explicitly;
- ``autocast(device, dtype)``: the matching ``torch.autocast`` context (a no-op for fp32).
"""

from __future__ import annotations

import contextlib
from typing import Any

from llmos.errors import ValidationError

DEVICE_HELP = "auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps"
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def check_device_name(name: str) -> str:
    """Validate the spelling of a device setting (without importing torch)."""
    import re

    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", name or ""):
        raise ValueError(f"unknown device {name!r}: use {DEVICE_HELP}")
    return name


def resolve_device(name: str = "auto") -> str:
    """The torch device string for setting ``name`` (see the module docstring)."""
    import torch

    check_device_name(name)
    if name == "auto":
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return "mps"
        return "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValidationError(f"device {name!r}: no CUDA GPU is visible to torch here: use device = \"cpu\" or \"auto\"")
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise ValidationError(
                f"device {name!r}: only {torch.cuda.device_count()} CUDA device(s) here (cuda:0...)"
            )
    if name == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValidationError("device 'mps': Apple's Metal backend is not available here: use \"cpu\" or \"auto\"")
    return name


def autocast_dtype(device: str, precision: str = "auto") -> Any:
    """The autocast dtype for ``precision`` on ``device`` (``None``: plain float32)."""
    import torch

    if precision not in PRECISIONS:
        raise ValidationError(f"unknown precision {precision!r}: use {', '.join(PRECISIONS)}")
    kind = device.split(":")[0]
    if precision == "fp32":
        return None
    if precision == "auto":
        if kind == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return None
    if precision == "fp16" and kind == "cpu":
        raise ValidationError("precision 'fp16' needs a GPU: on the CPU use bf16 or fp32")
    return torch.bfloat16 if precision == "bf16" else torch.float16


def autocast(device: str, dtype: Any) -> Any:
    """``torch.autocast`` for ``device`` with ``dtype``, or a no-op context for float32."""
    if dtype is None:
        return contextlib.nullcontext()
    import torch

    return torch.autocast(device_type=device.split(":")[0], dtype=dtype)


def precision_name(dtype: Any) -> str:
    """``"bf16"``, ``"fp16"`` or ``"fp32"`` for an autocast dtype (for metrics and logs)."""
    if dtype is None:
        return "fp32"
    return {"torch.bfloat16": "bf16", "torch.float16": "fp16"}.get(str(dtype), str(dtype))


def place_for_inference(model: Any, device: str = "auto", precision: str = "auto") -> str:
    """Move a model loaded only to generate or serve to ``device`` and, for bf16/fp16, cast
    its weights (no autocast needed). Returns the resolved device."""
    resolved = resolve_device(device)
    dtype = autocast_dtype(resolved, precision)
    model.to(resolved)
    if dtype is not None:
        model.to(dtype)
    return resolved
