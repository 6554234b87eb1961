"""Where a loaded model runs: :func:`place` puts any model llmos loads on its device.

``device`` and ``precision`` are the settings of ``llmos generate``, ``llmos serve`` and
evaluation (``auto|cpu|cuda|cuda:N|mps`` and ``auto|fp32|bf16|fp16``, see
:mod:`llmos.devices`). PyTorch models go through ``llmos.sdk.place_for_inference`` (moved,
and cast to bf16/fp16 when asked; ``auto`` is bf16 on CUDA GPUs that support it). Models
that run only on the CPU in float32 — ONNX Runtime graphs, and int8 versions (PyTorch's
dynamic quantization has CPU kernels only) — stay there under ``auto``, and an explicit
other device or precision for them is a one-line error, not a crash inside torch.
"""

from __future__ import annotations

from typing import Any

from llmos.sdk import ValidationError


def cpu_only(model: Any) -> str | None:
    """Why ``model`` runs only on the CPU in float32, or ``None`` when it can move."""
    if hasattr(model, "session") and hasattr(model, "kv_shape"):
        return "an ONNX Runtime graph"
    if getattr(model, "llmos_compression", None):
        return "int8-quantized (PyTorch's dynamic quantization runs on the CPU)"
    modules = getattr(model, "modules", None)
    if modules is not None and any(type(m).__module__.startswith("torch.ao.nn.quantized") for m in modules()):
        return "int8-quantized (PyTorch's dynamic quantization runs on the CPU)"
    return None


def place(model: Any, device: str = "auto", precision: str = "auto", *, what: str = "this model") -> tuple[str, str]:
    """Move ``model`` to ``device`` with ``precision`` (see the module docstring).

    :returns: ``(resolved device, precision name)``, e.g. ``("cuda", "bf16")`` or ``("cpu", "fp32")``.
    :raises ValidationError: an unknown or unavailable device or precision, or one the model cannot use.
    """
    from llmos.sdk import autocast_dtype, check_device_name, place_for_inference, precision_name

    try:
        check_device_name(device)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None
    why = cpu_only(model)
    if why is not None:
        if device not in ("auto", "cpu"):
            raise ValidationError(f"device {device!r}: {what} is {why}, which runs on the CPU only: use device cpu or auto")
        if precision not in ("auto", "fp32"):
            raise ValidationError(f"precision {precision!r}: {what} is {why}, which runs in fp32: use precision "
                                  f"fp32 or auto")
        return "cpu", "fp32"
    resolved = place_for_inference(model, device, precision)
    return resolved, precision_name(autocast_dtype(resolved, precision))
