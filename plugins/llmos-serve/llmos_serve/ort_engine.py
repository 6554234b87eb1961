"""The ONNX Runtime serving engine: the same continuous batching as the eager engine
(:class:`~llmos_serve.engine.Engine`: admission between steps, per-sequence sampling and
stopping, cancellation), with each forward pass one ONNX Runtime call.

The batch state is numpy: the KV cache ``(layers, batch, kv_heads, length, head_dim)``
for keys and values, a ``(batch, length)`` attention mask (0 over left padding), each
row's next position and last token. New prompts are prefilled together (left-padded) and
their cache is left-padded to the running batch's length and concatenated to it;
finished rows are dropped, and columns that are padding for every remaining row trimmed.

It runs graphs written by ``llmos model export --format onnx`` (format 2: with
``attention_mask`` and ``position_ids`` inputs). A format-1 graph (no mask) cannot take
padded batches, so it is served one sequence at a time (``max_batch_size`` 1).
"""

from __future__ import annotations

import logging
from typing import Any

from llmos_serve.engine import Engine, Sequence

log = logging.getLogger("llmos.serve.engine")


class OrtEngine(Engine):
    """Serve an :class:`llmos_export.runtime.OnnxCausalLM` (its ``session`` and ``kv_shape``)."""

    kind = "ort"

    def __init__(self, model: Any, tokenizer: Any, **options: Any) -> None:
        super().__init__(model, tokenizer, **options)
        if not getattr(model, "takes_mask", False) and self.max_batch_size > 1:
            log.warning("%s: its ONNX graph has no attention mask (format 1), so it is served one sequence at a "
                        "time; re-export it (llmos model export --format onnx) to batch", self.label)
            self.max_batch_size = 1

    def _prefill(self, new: list[Sequence]) -> None:
        import numpy as np

        lens = [len(s.prompt_ids) for s in new]
        width = max(lens)
        ids = np.full((len(new), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(new), width), dtype=np.int64)
        for i, s in enumerate(new):
            ids[i, width - lens[i]:] = s.prompt_ids
            mask[i, width - lens[i]:] = 1
        pos = np.clip(mask.cumsum(-1) - 1, 0, None)
        logits, (keys, values) = self.model.step(ids, None, mask, pos)
        if any(s.params.prompt_logprobs is not None for s in new):
            self._record_prompt_logprobs(_torch(logits), new)
        tokens = self._sample(_torch(logits[:, -1, :]), new)
        next_pos = np.asarray(lens, dtype=np.int64)
        last = np.asarray(tokens, dtype=np.int64)
        if self._active and self._cache is not None:
            self._merge((keys, values), mask, next_pos, last)
        else:
            self._cache, self._mask, self._pos, self._last = (keys, values), mask, next_pos, last
        self._active = self._active + new
        self._accept(tokens, offset=len(self._active) - len(new))

    def _merge(self, cache: Any, mask: Any, pos: Any, last: Any) -> None:
        import numpy as np

        width = max(self._mask.shape[1], mask.shape[1])

        def pad(c: tuple[Any, Any], m: Any) -> tuple[tuple[Any, Any], Any]:
            d = width - m.shape[1]
            if d <= 0:
                return c, m
            spec = ((0, 0), (0, 0), (0, 0), (d, 0), (0, 0))
            return (np.pad(c[0], spec), np.pad(c[1], spec)), np.pad(m, ((0, 0), (d, 0)))

        (k1, v1), m1 = pad(self._cache, self._mask)
        (k2, v2), m2 = pad(cache, mask)
        self._cache = (np.concatenate([k1, k2], 1), np.concatenate([v1, v2], 1))
        self._mask = np.concatenate([m1, m2], 0)
        self._pos = np.concatenate([self._pos, pos])
        self._last = np.concatenate([self._last, last])

    def _decode_step(self) -> None:
        import numpy as np

        batch = len(self._active)
        self.batch_sizes[batch] += 1
        self.steps += 1
        if self.observer is not None:
            self.observer.on_batch(batch)
        mask = np.concatenate([self._mask, np.ones((batch, 1), dtype=np.int64)], 1)
        logits, cache = self.model.step(self._last[:, None], self._cache, mask, self._pos[:, None])
        self._cache, self._mask, self._pos = cache, mask, self._pos + 1
        tokens = self._sample(_torch(logits[:, -1, :]), self._active)
        self._last = np.asarray(tokens, dtype=np.int64)
        self._accept(tokens, offset=0)

    def _select(self, keep: list[int]) -> None:
        import numpy as np

        if not keep:
            self._active, self._cache, self._mask, self._pos, self._last = [], None, None, None, None
            return
        if len(keep) == len(self._active):
            return
        idx = np.asarray(keep, dtype=np.int64)
        self._active = [self._active[i] for i in keep]
        k, v = self._cache
        self._mask, self._pos, self._last = self._mask[idx], self._pos[idx], self._last[idx]
        used = np.flatnonzero(self._mask.any(0))
        start = int(used[0]) if len(used) else 0
        self._mask = self._mask[:, start:]
        self._cache = (np.ascontiguousarray(k[:, idx, :, start:]), np.ascontiguousarray(v[:, idx, :, start:]))


def _torch(a: Any) -> Any:
    import numpy as np
    import torch

    return torch.from_numpy(np.ascontiguousarray(a))
