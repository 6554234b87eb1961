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


def base_ref_of(path: Path | str, ref: str | None = None, registry: Any = None) -> str:
    """The registry reference of the adapter's base.

    With ``ref`` (the adapter's own registry version) it is that version's parent —
    the lineage the registry recorded. Otherwise ``llmos.json``'s ``base`` reference.
    ``registry``: the registry to ask (default: the process's).
    """
    from llmos.sdk import open_registry

    if ref is not None:
        info = (registry if registry is not None else open_registry()).resolve(ref)
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


class SharedBase:
    """One loaded base model serving several adapters through peft's multi-adapter API
    (``load_adapter``/``set_adapter``): the base's weights are in memory once, each adapter
    adds only its own tensors.

    Each adapter is used through its :class:`AdapterView`; a call runs under this object's
    lock with that adapter active, so calls for different adapters never mix in one forward
    pass (a server decodes each adapter's batch in its own steps).

    :param model: the base model, already on its device and in its precision.
    :param ref: its registry reference (for messages and statistics).
    :param place: optional ``place(model)`` run after each attach, under the lock (moves and
        casts the new adapter's tensors as the base was; tensors already there stay put).
    """

    def __init__(self, model: Any, ref: str | None = None, place: Any = None) -> None:
        import threading

        if is_adapter_model(model):
            raise ValidationError(f"the base {ref or ''} is itself an adapter: merge it first (llmos merge {ref})")
        self.base = model
        self.ref = ref
        self.peft: Any = None
        self.lock = threading.RLock()
        self._place = place
        self._active: str | None = None
        self._views: dict[str, AdapterView] = {}
        self._count = 0

    @property
    def model(self) -> Any:
        """The peft model holding every attached adapter (the base before the first)."""
        return self.peft if self.peft is not None else self.base

    @property
    def adapters(self) -> list[str]:
        """The labels of the attached adapters, in attach order."""
        with self.lock:
            return [v.label for v in self._views.values()]

    def attach(self, path: Path | str, label: str | None = None) -> AdapterView:
        """Load the adapter at ``path`` onto the base; its view. ``label`` names it in
        statistics (its registry reference)."""
        import warnings

        path = Path(path)
        read_adapter_config(path)
        with self.lock:
            self._count += 1
            name = f"adapter{self._count}"  # peft names are module keys: never a user's text
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                if self.peft is None:
                    from peft import PeftModel

                    self.peft = PeftModel.from_pretrained(self.base, str(path), adapter_name=name,
                                                          is_trainable=False, use_safetensors=True)
                else:
                    self.peft.load_adapter(str(path), adapter_name=name, is_trainable=False, use_safetensors=True)
            self.peft.eval()
            self._active = None
            if self._place is not None:
                self._place(self.peft)
            view = AdapterView(self, name, label or str(path))
            self._views[name] = view
            return view

    def detach(self, view: AdapterView) -> None:
        """Remove ``view``'s adapter (its tensors are freed); the base stays loaded."""
        with self.lock:
            if self._views.pop(view.name, None) is None:
                return
            if self._views:
                self.peft.delete_adapter(view.name)
            else:  # the last one: give the base back its own layers
                self.base = self.peft.unload()
                self.peft = None
            self._active = None

    def forward(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call the model with adapter ``name`` active."""
        with self.lock:
            if name not in self._views:
                raise ValidationError(f"adapter {name} is no longer attached to {self.ref}")
            if self._active != name:
                try:
                    self.peft.set_adapter(name, inference_mode=True)
                except TypeError:  # peft < 0.16 has no inference_mode (eval mode already is)
                    self.peft.set_adapter(name)
                self._active = name
            return self.peft(*args, **kwargs)


class AdapterView:
    """A :class:`SharedBase` seen with one adapter active: what an engine calls as its model
    (``view(input_ids=..., ...)``), with the base's ``config`` and ``device``."""

    def __init__(self, shared: SharedBase, name: str, label: str) -> None:
        self.shared, self.name, self.label = shared, name, label

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.shared.forward(self.name, *args, **kwargs)

    @property
    def config(self) -> Any:
        return self.shared.base.config

    @property
    def device(self) -> Any:
        return next(self.shared.base.parameters()).device

    def parameters(self) -> Any:
        """The base's parameters and this adapter's (those of the other adapters excluded)."""
        for n, p in self.shared.model.named_parameters():
            if "lora_" not in n or f".{self.name}." in f"{n}.":
                yield p

    def eval(self) -> AdapterView:
        return self

    def detach(self) -> None:
        self.shared.detach(self)
