"""Decoder-only models built from ``transformers`` configs and size presets.

Parameter counts of the presets at a 4096-token vocabulary, tied embeddings
(``tests/test_build.py`` checks them):

======  ==========================================  ======  ==========================================  ======
preset  Llama (hidden / layers / heads / MLP)       params  GPT-2 (hidden / layers / heads / MLP)       params
======  ==========================================  ======  ==========================================  ======
tiny    128 / 3 / 4 / 320                           ~1.1M   128 / 3 / 4 / 512                           ~1.2M
small   256 / 10 / 8 / 768                          ~9.6M   256 / 10 / 8 / 1024                         ~9.1M
base    512 / 8 / 8 / 1536                          ~29.4M  512 / 9 / 8 / 2048                          ~30.9M
======  ==========================================  ======  ==========================================  ======
"""

from __future__ import annotations

from typing import Any

from llmos.artifacts import DATASET, MODEL
from llmos.errors import ValidationError

PRESETS: dict[str, dict[str, dict[str, int]]] = {
    "llama": {
        "tiny": {"hidden_size": 128, "num_layers": 3, "num_heads": 4, "intermediate_size": 320},
        "small": {"hidden_size": 256, "num_layers": 10, "num_heads": 8, "intermediate_size": 768},
        "base": {"hidden_size": 512, "num_layers": 8, "num_heads": 8, "intermediate_size": 1536},
    },
    "gpt2": {
        "tiny": {"hidden_size": 128, "num_layers": 3, "num_heads": 4, "intermediate_size": 512},
        "small": {"hidden_size": 256, "num_layers": 10, "num_heads": 8, "intermediate_size": 1024},
        "base": {"hidden_size": 512, "num_layers": 9, "num_heads": 8, "intermediate_size": 2048},
    },
}


def _resolved(arch: str, cfg: Any) -> dict[str, Any]:
    p = dict(PRESETS[arch][cfg.preset])
    for key in ("hidden_size", "num_layers", "num_heads", "intermediate_size"):
        value = getattr(cfg, key, None)
        if value is not None:
            p[key] = value
    return p


def hf_config(arch: str, cfg: Any, *, vocab_size: int, max_positions: int, special: dict[str, int] | None = None) -> Any:
    """The ``transformers`` config for architecture ``arch`` (``"llama"``/``"gpt2"``)."""
    special = special or {}
    p = _resolved(arch, cfg)
    if arch == "llama":
        from transformers import LlamaConfig

        kv = cfg.num_kv_heads or p["num_heads"]
        if p["num_heads"] % kv:
            raise ValidationError(f"num_heads {p['num_heads']} is not divisible by num_kv_heads {kv}")
        return LlamaConfig(
            vocab_size=vocab_size,
            hidden_size=p["hidden_size"],
            intermediate_size=p["intermediate_size"],
            num_hidden_layers=p["num_layers"],
            num_attention_heads=p["num_heads"],
            num_key_value_heads=kv,
            max_position_embeddings=max_positions,
            rope_theta=cfg.rope_theta,
            attention_dropout=cfg.dropout,
            tie_word_embeddings=cfg.tie_word_embeddings,
            bos_token_id=special.get("bos"),
            eos_token_id=special.get("eos"),
            pad_token_id=special.get("pad"),
        )
    if arch == "gpt2":
        from transformers import GPT2Config

        return GPT2Config(
            vocab_size=vocab_size,
            n_embd=p["hidden_size"],
            n_layer=p["num_layers"],
            n_head=p["num_heads"],
            n_inner=p["intermediate_size"],
            n_positions=max_positions,
            resid_pdrop=cfg.dropout,
            embd_pdrop=cfg.dropout,
            attn_pdrop=cfg.dropout,
            tie_word_embeddings=cfg.tie_word_embeddings,
            bos_token_id=special.get("bos"),
            eos_token_id=special.get("eos"),
            pad_token_id=special.get("pad"),
        )
    raise ValidationError(f"unknown architecture {arch!r}: use 'llama' or 'gpt2'")


def build_model(arch: str, cfg: Any, *, vocab_size: int, max_positions: int = 512, seed: int = 0,
                special: dict[str, int] | None = None) -> Any:
    """Build a freshly initialised fp32 causal LM; the same seed gives the same weights.

    The global torch RNG is left as it was (initialisation runs under ``fork_rng``).
    """
    import torch
    from transformers import AutoModelForCausalLM

    config = hf_config(arch, cfg, vocab_size=vocab_size, max_positions=max_positions, special=special)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.train()
    return model


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


class BuildStep:
    """``model.llama`` / ``model.gpt2``: build a model sized for ``ctx.artifacts["dataset"]``
    and put it in ``ctx.artifacts["model"]``."""

    arch = "llama"

    def __init__(self, config: Any = None) -> None:
        from llmos_models.config import GPT2Config, LlamaConfig

        self.config = config if config is not None else (LlamaConfig() if self.arch == "llama" else GPT2Config())

    def run(self, ctx: Any) -> dict[str, float]:
        cfg = self.config
        ds = DATASET.get(ctx)
        vocab = cfg.vocab_size or getattr(ds, "vocab_size", None)
        if vocab is None:
            raise ValidationError(
                f"model.{self.arch} needs a vocabulary size: put a data stage (e.g. data.corpus) before it, "
                f"or set vocab_size"
            )
        if ds is not None and cfg.vocab_size is not None and cfg.vocab_size < ds.vocab_size:
            raise ValidationError(
                f"vocab_size {cfg.vocab_size} is smaller than the dataset's vocabulary ({ds.vocab_size}): remove the override"
            )
        block = getattr(ds, "block_size", 0) or 0
        max_pos = cfg.max_position_embeddings or max(block, 512)
        if block > max_pos:
            raise ValidationError(
                f"max_position_embeddings {max_pos} is smaller than the dataset's block_size {block}: raise it"
            )
        special = dict(getattr(ds, "special_tokens", {}) or {})
        model = build_model(self.arch, cfg, vocab_size=int(vocab), max_positions=max_pos,
                            seed=int(getattr(ctx, "seed", 0)), special=special)
        MODEL.set(ctx, model)
        params = count_parameters(model)
        return {"params": float(params)}

    __call__ = run


class LlamaStep(BuildStep):
    arch = "llama"


class GPT2Step(BuildStep):
    arch = "gpt2"
