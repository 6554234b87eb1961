"""Run an exported ONNX model with ONNX Runtime: :class:`OnnxCausalLM`.

The graph written by :mod:`llmos_export.onnx_export` takes ``input_ids`` ``(batch, n)``,
``past_keys`` and ``past_values`` ``(layers, batch, kv_heads, past, head_dim)`` (``past``
may be 0) and returns ``logits`` ``(batch, n, vocab)`` and the updated ``keys`` and
``values`` — one graph for the prompt and for each next token.

``llmos.json`` of an exported directory names :func:`load_onnx` as its loader, so
``llmos_models.io.load_model`` (and ``model.load``) return an :class:`OnnxCausalLM`.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from llmos.errors import NotFoundError, ValidationError

ONNX_JSON = "onnx.json"


def session(path: Path | str, threads: int | None = None) -> Any:
    """An ONNX Runtime CPU session (all graph optimisations on)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def _module_base() -> Any:
    import torch

    return torch.nn.Module


class OnnxCausalLM(_module_base()):  # type: ignore[misc]
    """A causal LM backed by an ONNX Runtime session (CPU).

    ``model(input_ids=ids).logits`` works like a ``transformers`` model's forward;
    :meth:`generate` decodes with the KV cache (greedy, or sampling with temperature/top-k).
    """

    def __init__(self, path: Path | str, variant: str | None = None, threads: int | None = None) -> None:
        super().__init__()
        from transformers import AutoConfig

        self.path = Path(path)
        meta_file = self.path / ONNX_JSON
        if not meta_file.is_file():
            raise NotFoundError(f"{self.path} is not an ONNX export (no {ONNX_JSON}); export with --format onnx")
        self.meta = json.loads(meta_file.read_text())
        files = self.meta["files"]
        variant = variant or "fp32"
        if variant not in files:
            raise ValidationError(f"{self.path} has no {variant!r} graph; it has: {', '.join(sorted(files))}")
        self.variant = variant
        self.config = AutoConfig.from_pretrained(str(self.path), trust_remote_code=False)
        self.session = session(self.path / files[variant], threads)
        self.kv_shape = self.meta["kv"]  # layers, kv_heads, head_dim

    def empty_past(self, batch: int = 1) -> tuple[Any, Any]:
        import numpy as np

        layers, heads, dim = self.kv_shape["layers"], self.kv_shape["kv_heads"], self.kv_shape["head_dim"]
        z = np.zeros((layers, batch, heads, 0, dim), dtype=np.float32)
        return z, z

    def step(self, input_ids: Any, past: tuple[Any, Any] | None = None) -> tuple[Any, tuple[Any, Any]]:
        """numpy in, numpy out: ``(logits, (keys, values))``."""
        import numpy as np

        ids = np.ascontiguousarray(input_ids, dtype=np.int64)
        k, v = past if past is not None else self.empty_past(ids.shape[0])
        logits, keys, values = self.session.run(None, {"input_ids": ids, "past_keys": k, "past_values": v})
        return logits, (keys, values)

    def forward(self, input_ids: Any = None, **_: Any) -> Any:
        import torch

        logits, past = self.step(input_ids.cpu().numpy() if hasattr(input_ids, "cpu") else input_ids)
        return SimpleNamespace(logits=torch.from_numpy(logits), past_key_values=past)

    def generate(self, input_ids: Any, max_new_tokens: int = 32, *, temperature: float = 0.0,
                 top_k: int | None = None, eos_token_id: int | None = None, seed: int | None = None,
                 **_: Any) -> Any:
        """Decode up to ``max_new_tokens`` after ``input_ids`` (one sequence or a batch);
        returns prompt + new tokens as a torch tensor, like ``transformers``."""
        import numpy as np
        import torch

        ids = input_ids.cpu().numpy() if hasattr(input_ids, "cpu") else np.asarray(input_ids)
        ids = ids.astype(np.int64)
        rng = np.random.default_rng(seed)
        out = [ids]
        logits, past = self.step(ids)
        done = np.zeros(ids.shape[0], dtype=bool)
        for _ in range(max_new_tokens):
            last = logits[:, -1, :].astype(np.float64)
            if temperature and temperature > 0:
                last = last / temperature
                if top_k:
                    kth = np.sort(last, axis=-1)[:, -top_k][:, None]
                    last = np.where(last < kth, -np.inf, last)
                p = np.exp(last - last.max(-1, keepdims=True))
                p /= p.sum(-1, keepdims=True)
                nxt = np.array([rng.choice(p.shape[-1], p=row) for row in p], dtype=np.int64)
            else:
                nxt = last.argmax(-1).astype(np.int64)
            if eos_token_id is not None:
                nxt = np.where(done, eos_token_id, nxt)
                done |= nxt == eos_token_id
            out.append(nxt[:, None])
            if done.all():
                break
            logits, past = self.step(nxt[:, None], past)
        return torch.from_numpy(np.concatenate(out, axis=1))


def load_onnx(path: Path | str) -> OnnxCausalLM:
    """The loader recorded in an ONNX export's ``llmos.json``."""
    return OnnxCausalLM(path)
