"""Where an engine's tensors live: the device of the model it runs."""

from __future__ import annotations

from typing import Any


def device_of(model: Any) -> Any:
    """The ``torch.device`` of ``model`` (its ``device`` attribute, else its first
    parameter's; the CPU for a model without parameters, e.g. an ONNX Runtime session)."""
    import torch

    device = getattr(model, "device", None)
    if isinstance(device, torch.device):
        return device
    try:
        return next(model.parameters()).device
    except (AttributeError, StopIteration, TypeError):
        return torch.device("cpu")
