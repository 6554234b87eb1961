"""The ONNX Runtime serving engine: the same continuous batching as the eager engine
(:class:`~llmos_serve.engine.Engine`: admission between steps, per-sequence sampling and
stopping, cancellation — all shared), with each forward pass one ONNX Runtime call.

The batch state is a :class:`llmos_export.runtime.KVCache`: preallocated numpy buffers
in which row ``r`` holds its tokens' keys and values in columns ``0 .. len - 1`` (no
padding: each row has its own length and positions, the attention mask covers the
columns each row has), grown in chunks. New prompts are prefilled together
(right-padded) and copied in as new rows; each decode step feeds the buffers in place
(a format-3 graph reads each layer's cache without copying it) and writes one new
column per row; finished rows are dropped by moving the remaining ones up.

It runs graphs written by ``llmos model export --format onnx``: format 3 (the cache read
in place), format 2 (the cache copied in and out each step: slower, re-export to
speed it up) and format 1 (no mask: one sequence at a time).
"""

from __future__ import annotations

import logging
from typing import Any

from llmos_serve.engine import Engine, Sequence
from llmos_serve.rows import pad_prompts

log = logging.getLogger("llmos.serve.engine")


class OrtEngine(Engine):
    """Serve an :class:`llmos_export.runtime.OnnxCausalLM` (its ``run_cache`` and ``kv_shape``)."""

    kind = "ort"

    def __init__(self, model: Any, tokenizer: Any, **options: Any) -> None:
        super().__init__(model, tokenizer, **options)
        fmt = getattr(model, "format", 2 if getattr(model, "takes_mask", False) else 1)
        if fmt < 2 and self.max_batch_size > 1:
            log.warning("%s: its ONNX graph has no attention mask (format 1), so it is served one sequence at a "
                        "time; re-export it (llmos model export --format onnx) to batch", self.label)
            self.max_batch_size = 1
        elif fmt == 2:
            log.info("%s: its ONNX graph (format 2) copies the KV cache every step; re-export it "
                     "(llmos model export --format onnx) for the faster format 3", self.label)

    def _clear_batch(self) -> None:
        if self._cache is not None:
            self._cache.keep([])  # no rows; the buffers stay for the next batch

    def _kv(self) -> Any:
        if self._cache is None:
            from llmos_export.runtime import KVCache

            self._cache = KVCache(self.model.kv_shape)
        return self._cache

    def _prefill_batch(self, new: list[Sequence]) -> Any:
        import numpy as np

        ids, _mask, lens = pad_prompts(new, self.pad_id, left=False)
        logits = self._kv().prefill(self.model, ids, lens)
        if any(s.params.prompt_logprobs is not None for s in new):
            self._record_prompt_logprobs(_torch(logits), new, left=False)
        return _torch(logits[np.arange(len(new)), np.asarray(lens) - 1])

    def _decode_batch(self) -> Any:
        return _torch(self._cache.step(self.model, self._last))

    def _keep_rows(self, keep: list[int]) -> None:
        self._cache.keep(keep)


def _torch(a: Any) -> Any:
    import numpy as np
    import torch

    return torch.from_numpy(np.ascontiguousarray(a))
