"""Run an exported ONNX model with ONNX Runtime: :class:`OnnxCausalLM`.

The graph written by :mod:`llmos_export.onnx_export` takes ``input_ids`` ``(batch,
n)``, ``attention_mask`` ``(batch, past + n)`` (0 over padding and unused cache
columns), ``position_ids`` ``(batch, n)`` and the KV cache, and returns the logits
``(batch, n, vocab)`` and keys and values — one graph for the prompt and for each next
token. Three formats exist:

- format 3 (written now, see :mod:`llmos_export.kv_graph`): the cache is one input per
  layer, ``past_key_<i>``/``past_value_<i>`` ``(batch, kv_heads, past, head_dim)``, and the
  graph returns only the new tokens' ``new_keys``/``new_values`` ``(layers, batch,
  kv_heads, n, head_dim)``; nothing of the past is copied;
- format 2: ``past_keys``/``past_values`` stacked ``(layers, batch, kv_heads, past,
  head_dim)``, returned with the new tokens appended (``keys``/``values``);
- format 1 (the oldest): as format 2 without mask and positions (positions follow the
  cache length), so no padded batches.

:func:`run_graph` runs any of them with the whole cache in and out (``past`` may be 0);
:meth:`OnnxCausalLM.run_cache` runs one step over a cache the caller keeps, and
:class:`KVCache` is that cache: preallocated buffers a step writes its new columns
into (used by :meth:`OnnxCausalLM.generate` and the serving engine).

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


def graph_format(sess: Any) -> int:
    """3: per-layer cache inputs, new keys out; 2: stacked cache with mask and positions;
    1: stacked cache, no mask (see the module's docstring)."""
    names = {i.name for i in sess.get_inputs()}
    if "past_key_0" in names:
        return 3
    return 2 if "attention_mask" in names else 1


def takes_mask(sess: Any) -> bool:
    """True for a graph with ``attention_mask`` and ``position_ids`` inputs (format 2 or 3)."""
    return graph_format(sess) >= 2


def feeds(sess: Any, ids: Any, keys: Any, values: Any, mask: Any = None, positions: Any = None) -> dict[str, Any]:
    """The inputs of one graph run, the cache given stacked ``(layers, batch, kv_heads,
    past, head_dim)``. Without ``mask``/``positions``, every token counts (positions
    continue after the cache). A format-1 graph gets no mask and refuses padding.

    :raises ValidationError: padding (zeros in ``mask``) for a graph without a mask input.
    """
    import numpy as np

    ids = np.ascontiguousarray(ids, dtype=np.int64)
    fmt = graph_format(sess)
    if fmt == 3:
        out = {"input_ids": ids}
        for i in range(keys.shape[0]):
            out[f"past_key_{i}"] = np.ascontiguousarray(keys[i])
            out[f"past_value_{i}"] = np.ascontiguousarray(values[i])
    else:
        out = {"input_ids": ids, "past_keys": np.ascontiguousarray(keys), "past_values": np.ascontiguousarray(values)}
    past = keys.shape[3]
    if fmt == 1:
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


def run_graph(sess: Any, ids: Any, keys: Any, values: Any, mask: Any = None,
              positions: Any = None) -> tuple[Any, Any, Any]:
    """``(logits, keys, values)``: the whole cache in and out, whatever the graph's format."""
    import numpy as np

    logits, k, v = sess.run(None, feeds(sess, ids, keys, values, mask, positions))
    if graph_format(sess) == 3:
        k, v = np.concatenate([keys, k], 3), np.concatenate([values, v], 3)
    return logits, k, v


class KVCache:
    """The KV cache of a batch of rows, for :meth:`OnnxCausalLM.run_cache`.

    Keys and values live in preallocated buffers ``(layers, row capacity, kv_heads,
    column capacity, head_dim)``. Row ``r``'s tokens are in columns ``0 .. lens[r] - 1``
    (column = position, no padding between); the columns after them are unused and
    masked. A step feeds each layer's buffer as it is (a format-3 graph reads it in place)
    and writes each row's new keys into its next column, so a decode step copies nothing
    of the past. Capacity grows in chunks of :attr:`CHUNK` columns (and doubles in rows),
    one copy each time, and shrinks again when the longest rows leave.
    """

    CHUNK = 64

    def __init__(self, kv_shape: dict[str, int]) -> None:
        import numpy as np

        self._dims = (int(kv_shape["layers"]), int(kv_shape["kv_heads"]), int(kv_shape["head_dim"]))
        self.keys = self._alloc(0, 0)
        self.values = self._alloc(0, 0)
        self.lens = np.zeros(0, dtype=np.int64)

    def _alloc(self, rows: int, cols: int) -> Any:
        import numpy as np

        layers, heads, dim = self._dims
        return np.zeros((layers, rows, heads, cols, dim), dtype=np.float32)

    @property
    def rows(self) -> int:
        return len(self.lens)

    def _resize(self, rows: int, cols: int) -> None:
        n, used = self.rows, int(self.lens.max()) if self.rows else 0
        keys, values = self._alloc(rows, cols), self._alloc(rows, cols)
        keys[:, :n, :, :used] = self.keys[:, :n, :, :used]
        values[:, :n, :, :used] = self.values[:, :n, :, :used]
        self.keys, self.values = keys, values

    def reserve(self, rows: int, cols: int) -> None:
        """Room for ``rows`` rows of ``cols`` columns."""
        have_rows, have_cols = self.keys.shape[1], self.keys.shape[3]
        if rows <= have_rows and cols <= have_cols:
            return
        new_rows = have_rows if rows <= have_rows else max(rows, 2 * have_rows)
        new_cols = have_cols if cols <= have_cols else -(-cols // self.CHUNK) * self.CHUNK
        self._resize(new_rows, new_cols)

    def mask(self, n: int) -> Any:
        """``(rows, columns + n)``: each row's tokens, then ``n`` new ones."""
        import numpy as np

        cols = self.keys.shape[3]
        m = np.ones((self.rows, cols + n), dtype=np.int64)
        m[:, :cols] = np.arange(cols) < self.lens[:, None]
        return m

    def prefill(self, model: Any, ids: Any, lens: list[int]) -> Any:
        """Run right-padded prompts ``ids`` (``(rows, longest)``, row ``i``'s first
        ``lens[i]`` tokens real) and add them as rows after the present ones; returns each
        new row's logits at every prompt position ``(rows, longest, vocab)`` (row ``i``'s
        next-token logits are at ``lens[i] - 1``)."""
        import numpy as np

        b, width = ids.shape
        lens_np = np.asarray(lens, dtype=np.int64)
        mask = (np.arange(width) < lens_np[:, None]).astype(np.int64)
        positions = np.minimum(np.arange(width, dtype=np.int64), np.maximum(lens_np - 1, 0)[:, None])
        logits, keys, values = model.run_cache(ids, mask, positions)
        start = self.rows
        self.reserve(start + b, width + 1)  # and the next step's column
        self.keys[:, start:start + b, :, :width] = keys
        self.values[:, start:start + b, :, :width] = values
        self.lens = np.concatenate([self.lens, lens_np])
        return logits

    def step(self, model: Any, last: Any) -> Any:
        """One decode step: ``last`` ``(rows,)`` is each row's newest token; returns the
        logits ``(rows, vocab)`` and appends the token's keys and values to each row."""
        import numpy as np

        rows = self.rows
        self.reserve(rows, int(self.lens.max()) + 1)
        ids = np.asarray(last, dtype=np.int64).reshape(rows, 1)
        logits, keys, values = model.run_cache(ids, self.mask(1), self.lens[:, None], self.keys, self.values, rows)
        r = np.arange(rows)
        self.keys[:, r, :, self.lens, :] = keys[:, :, :, 0].transpose(1, 0, 2, 3)
        self.values[:, r, :, self.lens, :] = values[:, :, :, 0].transpose(1, 0, 2, 3)
        self.lens = self.lens + 1
        return logits[:, -1]

    def keep(self, idx: list[int]) -> None:
        """Keep rows ``idx``, in that order (the others are dropped)."""
        import numpy as np

        k = len(idx)
        if list(idx) != list(range(k)):
            used = int(self.lens[idx].max()) if k else 0
            self.keys[:, :k, :, :used] = self.keys[:, idx, :, :used]
            self.values[:, :k, :, :used] = self.values[:, idx, :, :used]
        self.lens = self.lens[np.asarray(idx, dtype=np.int64)]
        longest = int(self.lens.max()) if k else 0
        if self.keys.shape[3] > longest + 2 * self.CHUNK:
            self._resize(self.keys.shape[1], -(-(longest + 1) // self.CHUNK) * self.CHUNK)


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
        #: 1, 2 or 3 (see the module's docstring)
        self.format = graph_format(self.session)
        #: the graph takes an attention mask and positions (padded batches)
        self.takes_mask = self.format >= 2

    def empty_past(self, batch: int = 1) -> tuple[Any, Any]:
        import numpy as np

        layers, heads, dim = self.kv_shape["layers"], self.kv_shape["kv_heads"], self.kv_shape["head_dim"]
        z = np.zeros((layers, batch, heads, 0, dim), dtype=np.float32)
        return z, z

    def step(self, input_ids: Any, past: tuple[Any, Any] | None = None, mask: Any = None,
             positions: Any = None) -> tuple[Any, tuple[Any, Any]]:
        """numpy in, numpy out: ``(logits, (keys, values))``, the whole cache in and out."""
        import numpy as np

        ids = np.ascontiguousarray(input_ids, dtype=np.int64)
        k, v = past if past is not None else self.empty_past(ids.shape[0])
        logits, keys, values = run_graph(self.session, ids, k, v, mask, positions)
        return logits, (keys, values)

    def run_cache(self, ids: Any, mask: Any, positions: Any, keys: Any = None, values: Any = None,
                  rows: int | None = None) -> tuple[Any, Any, Any]:
        """One run over a cache the caller keeps (:class:`KVCache`): the first ``rows`` rows
        of ``keys``/``values`` ``(layers, >= rows, kv_heads, columns, head_dim)`` (None: no
        past), ``mask`` ``(rows, columns + n)``. Returns ``(logits, new_keys, new_values)``,
        the new tokens' keys and values ``(layers, rows, kv_heads, n, head_dim)``.

        :raises ValidationError: a format-1 graph given more than one row or padding.
        """
        import numpy as np

        ids = np.ascontiguousarray(ids, dtype=np.int64)
        b, n = ids.shape
        if keys is None:
            keys, values = self.empty_past(b)
            rows = b
        rows = b if rows is None else rows
        if self.format == 3:
            f = {"input_ids": ids, "attention_mask": np.ascontiguousarray(mask, dtype=np.int64),
                 "position_ids": np.ascontiguousarray(positions, dtype=np.int64)}
            for i in range(keys.shape[0]):
                f[f"past_key_{i}"] = keys[i, :rows]  # contiguous: read in place
                f[f"past_value_{i}"] = values[i, :rows]
            logits, new_k, new_v = self.session.run(None, f)
            return logits, new_k, new_v
        k, v = keys[:, :rows], values[:, :rows]
        if self.format == 1:  # no mask: the cache must be exactly the row's tokens
            m = np.asarray(mask)
            if rows != 1 or not m[0, -n:].all():
                raise ValidationError("this ONNX graph (format 1) decodes one unpadded sequence at a time: "
                                      "re-export the version with llmos model export --format onnx")
            past = int(m[0, :-n].sum())
            k, v, mask, positions = k[:, :, :, :past], v[:, :, :, :past], None, None
        logits, k, v = self.session.run(None, feeds(self.session, ids, k, v, mask, positions))
        return logits, k[:, :, :, -n:], v[:, :, :, -n:]

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
        cache = KVCache(self.kv_shape)
        logits = cache.prefill(self, ids.numpy(), [ids.shape[1]] * ids.shape[0])[:, -1]
        done = torch.zeros(ids.shape[0], dtype=torch.bool)
        for _ in range(int(opts["max_new_tokens"])):
            scores = torch.from_numpy(np.ascontiguousarray(logits)).float()
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
            logits = cache.step(self, nxt.numpy())
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
