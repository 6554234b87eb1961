"""Run an exported ONNX model with ONNX Runtime: :class:`OnnxCausalLM`.

The graph written by :mod:`llmos_export.onnx_export` (format 2) takes ``input_ids``
``(batch, n)``, ``attention_mask`` ``(batch, past + n)`` (0 over left padding),
``position_ids`` ``(batch, n)``, ``past_keys`` and ``past_values``
``(layers, batch, kv_heads, past, head_dim)`` (``past`` may be 0) and returns ``logits``
``(batch, n, vocab)`` and the updated ``keys`` and ``values`` — one graph for the prompt
and for each next token. Format-1 graphs (exported before) have no mask and no
positions: they compute positions from the cache length, so they cannot take padded
batches; :func:`feeds` fills what a graph needs.

``llmos.json`` of an exported directory names :func:`load_onnx` as its loader, so
``llmos_models.io.load_model`` (and ``model.load``) return an :class:`OnnxCausalLM`.
Its ``forward`` takes and returns the KV cache (``past_key_values`` is a ``(keys,
values)`` pair of numpy arrays) and its ``generate`` follows ``transformers``'
``generate`` for what ``llmos generate`` uses: a ``generation_config``, a
``streamer``, ``stopping_criteria``, EOS, greedy or sampling (temperature, top-k,
top-p, repetition penalty, seeded by ``torch.manual_seed``).
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from llmos.sdk import NotFoundError, ValidationError

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


def takes_mask(sess: Any) -> bool:
    """True for a graph with ``attention_mask`` and ``position_ids`` inputs (format 2)."""
    return "attention_mask" in {i.name for i in sess.get_inputs()}


def feeds(sess: Any, ids: Any, keys: Any, values: Any, mask: Any = None, positions: Any = None) -> dict[str, Any]:
    """The inputs of one graph run. Without ``mask``/``positions``, every token counts
    (positions continue after the cache). A format-1 graph gets no mask and refuses padding.

    :raises ValidationError: padding (zeros in ``mask``) for a graph without a mask input.
    """
    import numpy as np

    ids = np.ascontiguousarray(ids, dtype=np.int64)
    out = {"input_ids": ids, "past_keys": keys, "past_values": values}
    past = keys.shape[3]
    if not takes_mask(sess):
        if mask is not None and not np.asarray(mask).all():
            raise ValidationError("this ONNX graph (format 1) takes no attention mask, so no padded batches: "
                                  "re-export the version with llmos model export --format onnx")
        return out
    if mask is None:
        mask = np.ones((ids.shape[0], past + ids.shape[1]), dtype=np.int64)
    if positions is None:
        positions = np.broadcast_to(np.arange(past, past + ids.shape[1], dtype=np.int64), ids.shape)
    out["attention_mask"] = np.ascontiguousarray(mask, dtype=np.int64)
    out["position_ids"] = np.ascontiguousarray(positions, dtype=np.int64)
    return out


def _module_base() -> Any:
    import torch

    return torch.nn.Module


def _numpy(x: Any) -> Any:
    import numpy as np

    if x is None:
        return None
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


class OnnxCausalLM(_module_base()):  # type: ignore[misc]
    """A causal LM backed by an ONNX Runtime session (CPU).

    ``model(input_ids=ids).logits`` works like a ``transformers`` model's forward
    (with ``attention_mask``, ``position_ids`` and ``past_key_values`` too);
    :meth:`generate` decodes with the KV cache.
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
        #: the graph takes an attention mask and positions (padded batches)
        self.takes_mask = takes_mask(self.session)

    def empty_past(self, batch: int = 1) -> tuple[Any, Any]:
        import numpy as np

        layers, heads, dim = self.kv_shape["layers"], self.kv_shape["kv_heads"], self.kv_shape["head_dim"]
        z = np.zeros((layers, batch, heads, 0, dim), dtype=np.float32)
        return z, z

    def step(self, input_ids: Any, past: tuple[Any, Any] | None = None, mask: Any = None,
             positions: Any = None) -> tuple[Any, tuple[Any, Any]]:
        """numpy in, numpy out: ``(logits, (keys, values))``."""
        import numpy as np

        ids = np.ascontiguousarray(input_ids, dtype=np.int64)
        k, v = past if past is not None else self.empty_past(ids.shape[0])
        logits, keys, values = self.session.run(None, feeds(self.session, ids, k, v, mask, positions))
        return logits, (keys, values)

    def forward(self, input_ids: Any = None, attention_mask: Any = None, position_ids: Any = None,
                past_key_values: Any = None, **_: Any) -> Any:
        """Logits for ``input_ids`` after ``past_key_values`` (a ``(keys, values)`` pair from
        an earlier call, or None); ``attention_mask`` covers the cache and the new tokens."""
        import torch

        if past_key_values is not None and not (isinstance(past_key_values, tuple) and len(past_key_values) == 2):
            if hasattr(past_key_values, "get_seq_length") and past_key_values.get_seq_length() == 0:
                past_key_values = None  # an empty transformers cache: start from nothing
            else:
                raise ValidationError("an ONNX model takes past_key_values as the (keys, values) pair it returned")
        past = None if past_key_values is None else (_numpy(past_key_values[0]), _numpy(past_key_values[1]))
        logits, past = self.step(_numpy(input_ids), past, _numpy(attention_mask), _numpy(position_ids))
        return SimpleNamespace(logits=torch.from_numpy(logits), past_key_values=past)

    def generate(self, input_ids: Any, attention_mask: Any = None, max_new_tokens: int | None = None, *,
                 generation_config: Any = None, streamer: Any = None, stopping_criteria: Any = None,
                 **kwargs: Any) -> Any:
        """Decode after ``input_ids`` (one sequence or an unpadded batch) with the KV cache;
        returns prompt + new tokens as a torch tensor, like ``transformers``.

        Settings come from ``generation_config`` and keyword arguments (``do_sample``,
        ``temperature``, ``top_k``, ``top_p``, ``repetition_penalty``, ``eos_token_id``,
        ``pad_token_id``); ``streamer.put``/``end`` and ``stopping_criteria`` are called as
        ``transformers`` does. ``seed`` seeds sampling (else torch's global generator).
        """
        import numpy as np
        import torch

        opts: dict[str, Any] = {"max_new_tokens": 32, "do_sample": None, "temperature": 0.0, "top_k": None,
                                "top_p": None, "repetition_penalty": 1.0, "eos_token_id": None, "pad_token_id": None,
                                "num_beams": 1, "typical_p": None}
        if generation_config is not None:
            for key in opts:
                value = getattr(generation_config, key, None)
                if value is not None:
                    opts[key] = value
        seed = kwargs.pop("seed", None)
        for key in list(kwargs):
            if key in opts and kwargs[key] is not None:
                opts[key] = kwargs.pop(key)
        if max_new_tokens is not None:
            opts["max_new_tokens"] = max_new_tokens
        if int(opts["num_beams"] or 1) > 1:
            raise ValidationError("an ONNX version decodes greedily or by sampling: beam search (num_beams > 1) "
                                  "needs the PyTorch version it was exported from")
        if opts["typical_p"] is not None and float(opts["typical_p"]) < 1.0:
            raise ValidationError("an ONNX version does not do typical_p sampling: use top_p or top_k")
        temperature = float(opts["temperature"] or 0.0)
        sample = bool(opts["do_sample"]) if opts["do_sample"] is not None else temperature > 0
        if sample and temperature <= 0:
            temperature = 1.0
        eos = opts["eos_token_id"]
        eos_ids = set(eos if isinstance(eos, (list, tuple)) else ([] if eos is None else [eos]))
        pad = opts["pad_token_id"] if opts["pad_token_id"] is not None else (min(eos_ids) if eos_ids else 0)
        gen = torch.Generator().manual_seed(int(seed)) if seed is not None else None

        ids = torch.as_tensor(_numpy(input_ids)).long()
        if attention_mask is not None and not bool(torch.as_tensor(_numpy(attention_mask)).all()):
            raise ValidationError("OnnxCausalLM.generate takes unpadded prompts (an attention mask of ones)")
        seqs = ids.clone()
        if streamer is not None:
            streamer.put(ids.cpu())
        logits, past = self.step(ids.numpy())
        done = torch.zeros(ids.shape[0], dtype=torch.bool)
        for _ in range(int(opts["max_new_tokens"])):
            scores = torch.from_numpy(np.ascontiguousarray(logits[:, -1, :])).float()
            penalty = float(opts["repetition_penalty"] or 1.0)
            if penalty != 1.0:
                seen = torch.gather(scores, 1, seqs)
                seen = torch.where(seen < 0, seen * penalty, seen / penalty)
                scores = scores.scatter(1, seqs, seen)
            if sample:
                scores = _warp(scores / temperature, opts["top_k"], opts["top_p"])
                nxt = torch.multinomial(torch.softmax(scores, -1), 1, generator=gen)[:, 0]
            else:
                nxt = scores.argmax(-1)
            if eos_ids:
                nxt = torch.where(done, torch.full_like(nxt, pad), nxt)
            seqs = torch.cat([seqs, nxt[:, None]], 1)
            if streamer is not None:
                streamer.put(nxt.cpu())
            if eos_ids:
                done |= torch.isin(nxt, torch.tensor(sorted(eos_ids)))
            if stopping_criteria is not None:
                for crit in stopping_criteria:
                    done |= torch.as_tensor(crit(seqs, scores)).bool().reshape(-1).expand_as(done)
            if bool(done.all()):
                break
            logits, past = self.step(nxt[:, None].numpy(), past)
        if streamer is not None:
            streamer.end()
        return seqs


def _warp(scores: Any, top_k: int | None, top_p: float | None) -> Any:
    """Top-k then top-p filtering of ``scores`` (batch, vocab), as ``transformers`` does."""
    import torch

    if top_k and 0 < int(top_k) < scores.shape[-1]:
        kth = torch.topk(scores, int(top_k), dim=-1).values[:, -1:]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if top_p is not None and float(top_p) < 1.0:
        srt, idx = torch.sort(scores, descending=True, dim=-1)
        probs = torch.softmax(srt, -1)
        drop = (torch.cumsum(probs, -1) - probs) > float(top_p)
        srt = srt.masked_fill(drop, float("-inf"))
        scores = torch.full_like(scores, float("-inf")).scatter(1, idx, srt)
    return scores


def load_onnx(path: Path | str) -> OnnxCausalLM:
    """The loader recorded in an ONNX export's ``llmos.json``."""
    return OnnxCausalLM(path)
