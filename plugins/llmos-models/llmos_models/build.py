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

from llmos.sdk import DATASET, MODEL, ValidationError, get_manager

from llmos_models.config import PRESETS
from llmos_models.lm import count_parameters  # noqa: F401 - where callers have always found it


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
    config = hf_config(arch, cfg, vocab_size=vocab_size, max_positions=max_positions, special=special)
    return model_from_hf_config(config, seed=seed)


def model_from_hf_config(config: Any, *, seed: int = 0) -> Any:
    """A freshly initialised fp32 causal LM for a ``transformers`` config (same seed, same weights)."""
    import torch
    from transformers import AutoModelForCausalLM

    if getattr(config, "auto_map", None):
        raise ValidationError("an architecture's config names custom code (auto_map), which llmos never runs")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.train()
    return model




class BuildStep:
    """``model.llama`` / ``model.gpt2``: build a model sized for ``ctx.artifacts["dataset"]``
    and put it in ``ctx.artifacts["model"]``. They are the older names of ``model.build``
    with ``architecture = "llama"`` / ``"gpt2"`` (their settings: the architecture's config
    fields, flat): the architecture is looked up through ``llmos_register_architectures``."""

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
        model = self.make(cfg, vocab_size=int(vocab), max_positions=max_pos, seed=int(getattr(ctx, "seed", 0)),
                          special=special)
        MODEL.set(ctx, model)
        params = count_parameters(model)
        return {"params": float(params)}

    def make(self, cfg: Any, *, vocab_size: int, max_positions: int, seed: int, special: dict[str, int]) -> Any:
        # the architecture registered as self.arch (llmos_register_architectures), found as model.build finds it
        ext = get_manager().get_extension("architectures", self.arch)
        config = ext.load_factory()(cfg, vocab_size=vocab_size, max_positions=max_positions, special=special)
        return model_from_hf_config(config, seed=seed)

    __call__ = run


def llama_hf_config(cfg: Any, *, vocab_size: int, max_positions: int, special: dict[str, int] | None = None) -> Any:
    """The ``llama`` architecture (llmos_register_architectures): a ``transformers.LlamaConfig``."""
    return hf_config("llama", cfg, vocab_size=vocab_size, max_positions=max_positions, special=special)


def gpt2_hf_config(cfg: Any, *, vocab_size: int, max_positions: int, special: dict[str, int] | None = None) -> Any:
    """The ``gpt2`` architecture (llmos_register_architectures): a ``transformers.GPT2Config``."""
    return hf_config("gpt2", cfg, vocab_size=vocab_size, max_positions=max_positions, special=special)


class ArchitectureStep(BuildStep):
    """``model.build``: a model of any registered architecture (``architecture``, looked up
    through ``llmos_register_architectures``), sized by one of its presets plus ``settings``."""

    def __init__(self, config: Any = None) -> None:
        from llmos_models.config import BuildConfig

        self.config = config if config is not None else BuildConfig()
        self.arch = self.config.architecture

    def make(self, cfg: Any, *, vocab_size: int, max_positions: int, seed: int, special: dict[str, int]) -> Any:
        from llmos_models.config import resolve_architecture

        ext, arch_cfg = resolve_architecture(cfg)
        config = ext.load_factory()(arch_cfg, vocab_size=vocab_size, max_positions=max_positions, special=special)
        return model_from_hf_config(config, seed=seed)


class LlamaStep(BuildStep):
    arch = "llama"


class GPT2Step(BuildStep):
    arch = "gpt2"
