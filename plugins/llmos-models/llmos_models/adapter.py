"""Adapters (LoRA, through peft): saving one, loading it on its base, merging it.

An adapter version holds only what the adapter adds — ``adapter_config.json`` and
``adapter_model.safetensors`` (peft's layout) — plus the base's tokenizer files and
``llmos.json``::

    {"format": 1, "kind": "adapter", "loader": "adapter", "base": "quickstart:1",
     "peft_type": "LORA", "adapter_params": 12288, ...}

Its base is found through the registry: the version's parent (its lineage). For a
directory that is not a registry version, ``llmos.json``'s ``base`` — a registry
reference, never a path — names it. Nothing in an adapter directory names code:
the ``loader`` is the name of a registered model loader, and ``adapter_config.json``'s
``base_model_name_or_path`` is informational only (it holds the base's reference).
Only LoRA adapters are loaded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llmos.sdk import NotFoundError, ValidationError

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
#: the peft methods llmos loads (their config is plain JSON, their weights safetensors)
SUPPORTED = ("LORA",)


def is_adapter_model(model: Any) -> bool:
    """True for a peft model (a base with an adapter injected)."""
    import sys

    if "peft" not in sys.modules:  # no peft model can exist without it; don't pay its import
        return False
    try:
        from peft import PeftModel
    except ImportError:  # pragma: no cover - peft is a dependency of this plugin
        return False
    return isinstance(model, PeftModel)


def is_adapter_dir(path: Path | str) -> bool:
    return (Path(path) / ADAPTER_CONFIG).is_file()


def save_adapter(model: Any, path: Path) -> dict[str, Any]:
    """Write ``model``'s adapter (only its tensors) into ``path``; returns the keys for ``llmos.json``."""
    base = getattr(model, "llmos_base", None)
    for cfg in model.peft_config.values():
        cfg.base_model_name_or_path = base or ""  # informational; never read as a path
    # save_embedding_layers=False: peft's "auto" would look the base name up on a model hub
    model.save_pretrained(str(path), safe_serialization=True, save_embedding_layers=False)
    (path / "README.md").unlink(missing_ok=True)  # peft's model card template
    if not (path / ADAPTER_WEIGHTS).is_file():
        raise ValidationError(f"peft wrote no {ADAPTER_WEIGHTS} in {path}; is the peft version supported?")
    peft_types = sorted({str(getattr(c.peft_type, "value", c.peft_type)) for c in model.peft_config.values()})
    trainable = sum(p.numel() for n, p in model.named_parameters() if "lora_" in n)
    return {"kind": "adapter", "loader": "adapter", "base": base, "peft_type": ",".join(peft_types),
            "adapter_params": int(trainable)}


def read_adapter_config(path: Path) -> dict[str, Any]:
    f = Path(path) / ADAPTER_CONFIG
    try:
        data = json.loads(f.read_text())
    except (OSError, ValueError) as exc:
        raise ValidationError(f"{f} is not a readable adapter config ({exc}); re-save the adapter") from None
    peft_type = str(data.get("peft_type", ""))
    if peft_type not in SUPPORTED:
        raise ValidationError(
            f"{f}: adapter type {peft_type or '(none)'!r} is not supported; llmos loads {', '.join(SUPPORTED)} adapters"
        )
    if not (Path(path) / ADAPTER_WEIGHTS).is_file():
        raise NotFoundError(f"{path} has no {ADAPTER_WEIGHTS}: an adapter directory needs its safetensors weights")
    return data


def base_ref_of(path: Path | str, ref: str | None = None) -> str:
    """The registry reference of the adapter's base.

    With ``ref`` (the adapter's own registry version) it is that version's parent —
    the lineage the registry recorded. Otherwise ``llmos.json``'s ``base`` reference.
    """
    from llmos.sdk import open_registry

    if ref is not None:
        info = open_registry().resolve(ref)
        parents = list(info.parents or [])
        if len(parents) != 1:
            raise ValidationError(
                f"adapter version {ref} has {len(parents)} parents ({', '.join(parents) or 'none'}); it needs exactly "
                f"one, its base: register it with --parent BASE"
            )
        return parents[0]
    from llmos_models.meta import read_meta

    base = read_meta(path).get("base")
    if not isinstance(base, str) or not base:
        raise ValidationError(
            f"{path} is an adapter without a base: register it in the registry with --parent BASE, "
            f"or load it by its registry reference"
        )
    return base


def apply_adapter(base_model: Any, path: Path | str, *, adapter_name: str = "default") -> Any:
    """``base_model`` with the adapter at ``path`` applied, in eval mode (a
    ``peft.PeftModel``). Loading an adapter *version* — its base found through the
    registry — is :func:`llmos_models.io.load_adapter` (the ``adapter`` model loader)."""
    path = Path(path)
    read_adapter_config(path)
    import warnings

    from peft import PeftModel

    with warnings.catch_warnings():  # peft calls a transformers API deprecated in v5 (noise, not ours)
        warnings.simplefilter("ignore", FutureWarning)
        model = PeftModel.from_pretrained(base_model, str(path), adapter_name=adapter_name, is_trainable=False,
                                          use_safetensors=True)
    model.eval()
    return model


def merge(model: Any) -> Any:
    """A plain model equal to base + adapter (the adapter's update added into the weights)."""
    import copy

    if not is_adapter_model(model):
        raise ValidationError("this version has no adapter to merge: it is already a full model")
    return copy.deepcopy(model).merge_and_unload()
