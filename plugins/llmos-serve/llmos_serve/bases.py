"""Base models shared by the adapter versions a server serves.

An adapter version (LoRA, ``llmos_models.adapter``) is served on its base: the version's
registry parent. The pool keeps one :class:`~llmos_models.adapter.SharedBase` per
``(base version, device, precision)``: the first adapter version of a base loads it, the
next ones only attach their tensors to it (peft's ``load_adapter``), and each adapter's
engine calls it through its own :class:`~llmos_models.adapter.AdapterView` (under the
shared base's lock, with its adapter active: rows of different adapters never share a
forward pass). When the last adapter on a base is unloaded the base goes too.

A plain version of the same base served beside its adapters is loaded on its own (its
engine runs the model without a lock, and attaching adapters changes the base's layers).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any


class SharedBases:
    """The base models loaded for adapter versions, keyed by ``(base ref, device, precision)``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._bases: dict[tuple[str, str, str], Any] = {}

    def attach(self, path: Path, label: str, *, ref: str | None, registry: Any, device: str,
               precision: str) -> tuple[Any, str, str, str]:
        """Attach the adapter directory ``path`` (version ``ref``, or a local directory
        whose ``llmos.json`` names its base) to its base, loading the base if no served
        adapter uses it yet.

        :returns: ``(view, base ref, device, precision)``; ``view.detach()`` through
            :meth:`detach` undoes it.
        """
        from llmos.sdk import autocast_dtype, open_registry, precision_name, resolve_device
        from llmos_models.adapter import SharedBase, base_ref_of, read_adapter_config
        from llmos_models.io import load_model
        from llmos_models.placement import place

        read_adapter_config(path)  # a broken adapter fails before its base is loaded
        reg = registry if registry is not None else open_registry()
        info = reg.resolve(base_ref_of(path, ref, registry=reg))
        base = f"{info.model}:{info.number}"
        resolved = resolve_device(device)
        key = (base, resolved, precision_name(autocast_dtype(resolved, precision)))
        with self._lock:
            shared = self._bases.get(key)
            created = shared is None
            if created:
                model, _ = load_model(Path(reg.checkout(base)), ref=base)
                where = place(model, resolved, precision, what=f"the base {base} of {label}")
                shared = SharedBase(model, ref=base, place=lambda m: place(m, resolved, precision, what=label))
                shared.placement = where
            view = shared.attach(path, label)  # a failure here leaves no base behind
            if created:
                self._bases[key] = shared
            return view, base, *shared.placement

    def detach(self, view: Any) -> None:
        """Remove ``view``'s adapter; unload its base when no adapter uses it any more."""
        with self._lock:
            view.detach()
            for key, shared in list(self._bases.items()):
                if shared is view.shared and not shared.adapters:
                    del self._bases[key]

    def stats(self) -> list[dict[str, Any]]:
        """One entry per loaded base: its version, device, precision, adapters, and the
        number of its parameters (stored once whatever the number of adapters)."""
        with self._lock:
            items = list(self._bases.items())
        out = []
        for (base, device, precision), shared in items:
            params = sum(p.numel() for n, p in shared.model.named_parameters() if "lora_" not in n)
            out.append({"base": base, "device": device, "precision": precision, "adapters": shared.adapters,
                        "base_params": int(params)})
        return out

    def __len__(self) -> int:
        with self._lock:
            return len(self._bases)
