"""Torch helpers every model-handling plugin shares (llmos-compress, llmos-export and
llmos-train depend on llmos-models for them): parameter counts, the causal-LM loss,
perplexity, whether a model is quantized. torch is imported inside the functions."""

from __future__ import annotations

import math
from typing import Any

from llmos.sdk import ValidationError


def count_parameters(model: Any) -> int:
    """Number of distinct weights (tied weights counted once), including the packed
    weights of quantized modules (e.g. ``torch.ao.nn.quantized.dynamic.Linear``, whose
    ``weight()``/``bias()`` are methods rather than parameters)."""
    import torch

    seen: set[int] = set()
    total = 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
    for module in model.modules():
        for attr in ("weight", "bias"):
            getter = getattr(type(module), attr, None)
            if callable(getter) and not isinstance(getter, torch.nn.Parameter):
                try:
                    value = getattr(module, attr)()
                except Exception:  # noqa: BLE001 - not a quantized accessor
                    continue
                if isinstance(value, torch.Tensor):
                    total += value.numel()
    return total


def lm_loss(model: Any, x: Any, reduction: str = "mean") -> Any:
    """Next-token cross-entropy of a causal LM on blocks ``x`` (labels shifted, logits not copied).

    ``x`` of shape ``(batch, 2, block)`` holds token ids and labels (``-100``: no loss, e.g.
    prompts and padding of ``data.chat``); of shape ``(batch, block)``, every token is a label.
    """
    import torch
    import torch.nn.functional as F

    x, labels = (x[:, 0], x[:, 1]) if x.dim() == 3 else (x, x)
    logits = model(input_ids=x).logits
    targets = torch.empty_like(labels)
    targets[:, :-1] = labels[:, 1:]
    targets[:, -1] = -100
    return F.cross_entropy(
        logits.view(-1, logits.size(-1)).float(), targets.view(-1), ignore_index=-100, reduction=reduction
    )


def perplexity(model: Any, blocks: Any, batch_size: int = 8, *, max_blocks: int | None = None,
               progress: Any = None, dtype: Any = None) -> tuple[float, float]:
    """Mean next-token cross-entropy (nats) and perplexity of ``model`` on ``blocks``.

    :param blocks: array-like ``(n_blocks, block_size)`` of token ids (e.g. a memory-mapped split).
        Every position but the first of each block is predicted from the ones before it.
        ``(n_blocks, 2, block_size)`` blocks hold ids and labels: only labels other than -100 count.
    :param max_blocks: use only the first ``max_blocks`` blocks.
    :param progress: optional reporter with ``update(n)``.
    :param dtype: autocast dtype (``None``: float32); the blocks go to the model's device.
    :returns: ``(loss, exp(loss))``.
    """
    import numpy as np
    import torch
    import torch.nn.functional as F

    from llmos.sdk import autocast

    device = str(next(model.parameters()).device)
    n = len(blocks) if max_blocks is None else min(len(blocks), max_blocks)
    if n == 0:
        raise ValidationError("no blocks to evaluate on: the split is empty")
    was_training = getattr(model, "training", False)
    model.eval()
    total, count = 0.0, 0
    try:
        with torch.inference_mode():
            for start in range(0, n, batch_size):
                batch = torch.from_numpy(np.asarray(blocks[start : min(n, start + batch_size)], dtype=np.int64))
                batch = batch.to(device)
                # (batch, 2, block) blocks carry labels (-100: no loss), e.g. data.chat's
                batch, labels = (batch[:, 0], batch[:, 1]) if batch.dim() == 3 else (batch, batch)
                with autocast(device, dtype):
                    logits = model(input_ids=batch).logits
                loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(),
                                       labels[:, 1:].reshape(-1), reduction="sum", ignore_index=-100)
                total += float(loss)
                count += int((labels[:, 1:] != -100).sum())
                if progress is not None:
                    progress.update(batch.shape[0])
    finally:
        if was_training:
            model.train()
    if count == 0:
        raise ValidationError("no tokens to evaluate on: every label of these blocks is masked (-100)")
    mean = total / count
    return mean, math.exp(mean)


def is_quantized(model: Any) -> bool:
    """True when ``model`` holds dynamically quantized ``Linear`` modules (int8)."""
    from torch.ao.nn.quantized import dynamic as nnqd

    return any(isinstance(m, nnqd.Linear) for m in model.modules())
