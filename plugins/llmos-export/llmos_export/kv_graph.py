"""The format-3 ONNX graph: attention that reads the KV cache in place and returns only
the new tokens' keys and values.

A format-2 graph takes the whole cache stacked ``(layers, batch, kv_heads, past,
head_dim)``, splits it per layer, concatenates each layer's new keys to it and stacks
the result again: three copies of the whole cache on every decode step, which is most
of a step's time once several rows are batched. Format 3 takes one input per layer
(``past_key_<i>``, ``past_value_<i>``, ``(batch, kv_heads, past, head_dim)``), scores the
new queries against the past and against the new keys separately, takes one softmax
over both (only the scores are concatenated, ``(batch, heads, n, past + n)``), and
returns ``new_keys``/``new_values`` ``(layers, batch, kv_heads, n, head_dim)``: the
caller keeps the cache (a preallocated buffer it writes the new columns into, see
:class:`llmos_export.runtime.KVBuffer`) and nothing of the past is copied.

The mask is built from the graph's inputs, as for format 2: ``attention_mask``
``(batch, past + n)`` is 1 over real tokens (any columns may be padding: unused cache
columns, left or right padding), ``position_ids`` ``(batch, n)`` the new tokens'
positions. A key is visible to a query when it is a real token whose position
(``cumsum(attention_mask) - 1``) is at most the query's — and within the layer's sliding
window, if it has one.

The attention is a ``transformers`` attention function (registered as
:data:`ATTENTION`), so every architecture whose attention layers call the attention
interface with their own scaling exports this way; one with attention sinks, or one
whose layers do not have a ``layer_idx``, does not, and is exported as format 2.
"""

from __future__ import annotations

from typing import Any

#: the name the attention function is registered under in ``transformers``
ATTENTION = "llmos_kv_inplace"


class _State:
    """The traced call's tensors, read by the attention function (tracing is single-threaded)."""

    past: list[tuple[Any, Any]] | None = None
    new: dict[int, tuple[Any, Any]] = {}
    mask: Any = None
    kpos: Any = None
    qpos: Any = None


def _attention(module: Any, query: Any, key: Any, value: Any, attention_mask: Any, scaling: float | None = None,
               dropout: float = 0.0, softcap: float | None = None, sliding_window: int | None = None,
               s_aux: Any = None, **_: Any) -> tuple[Any, None]:
    import torch

    if _State.past is None:
        raise RuntimeError("the llmos in-place KV attention only runs inside the format-3 export wrapper")
    if s_aux is not None:
        raise NotImplementedError("attention sinks")
    layer = getattr(module, "layer_idx", None)
    if layer is None:
        raise NotImplementedError("an attention layer without layer_idx")
    pk, pv = _State.past[layer]
    _State.new[layer] = (key, value)
    b, hq, n, d = query.shape
    hkv = key.shape[1]
    rep = hq // hkv
    scale = scaling if scaling is not None else d ** -0.5
    # grouped queries: (batch, kv_heads, rep * n, head_dim), so the cache is never repeated
    q = query.reshape(b, hkv, rep * n, d)
    scores = torch.cat([torch.matmul(q, pk.transpose(-1, -2)), torch.matmul(q, key.transpose(-1, -2))], -1) * scale
    scores = scores.reshape(b, hkv, rep, n, -1)
    if softcap is not None:
        scores = torch.tanh(scores / softcap) * softcap
    visible = _State.mask
    if sliding_window is not None:
        visible = visible & (_State.qpos[:, :, None] - _State.kpos[:, None, :] < int(sliding_window))
    scores = scores.masked_fill(~visible[:, None, None], torch.finfo(scores.dtype).min)
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype).reshape(b, hkv, rep * n, -1)
    past = pk.shape[2]
    out = torch.matmul(probs[..., :past], pv) + torch.matmul(probs[..., past:], value)
    return out.reshape(b, hq, n, d).transpose(1, 2).contiguous(), None


def register() -> None:
    from transformers import AttentionInterface

    AttentionInterface.register(ATTENTION, _attention)


def wrapper(model: Any, layers: int) -> Any:
    """``model`` (attention set to :data:`ATTENTION`) as a module taking
    ``input_ids, attention_mask, position_ids, *past_keys, *past_values`` and returning
    ``logits, new_keys, new_values``."""
    import torch

    register()
    model.set_attn_implementation(ATTENTION)

    class InPlaceKV(torch.nn.Module):
        def __init__(self, lm: Any) -> None:
            super().__init__()
            self.lm = lm

        def forward(self, input_ids: Any, attention_mask: Any, position_ids: Any, *past: Any) -> Any:
            valid = attention_mask.bool()
            kpos = attention_mask.cumsum(-1) - 1
            _State.past = list(zip(past[:layers], past[layers:], strict=True))
            _State.new = {}
            _State.kpos, _State.qpos = kpos, position_ids
            _State.mask = valid[:, None, :] & (kpos[:, None, :] <= position_ids[:, :, None])
            try:
                out = self.lm(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                              use_cache=False)
                if sorted(_State.new) != list(range(layers)):
                    raise NotImplementedError("attention layers that do not go through the attention interface")
                keys = torch.stack([_State.new[i][0] for i in range(layers)])
                values = torch.stack([_State.new[i][1] for i in range(layers)])
            finally:
                _State.past, _State.new, _State.mask, _State.kpos, _State.qpos = None, {}, None, None, None
            return out.logits, keys, values

    return InPlaceKV(model).eval()


def input_names(layers: int) -> list[str]:
    return (["input_ids", "attention_mask", "position_ids"] + [f"past_key_{i}" for i in range(layers)]
            + [f"past_value_{i}" for i in range(layers)])
