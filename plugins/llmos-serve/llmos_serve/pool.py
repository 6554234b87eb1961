"""Which version answers a request: aliases followed live, canary split, drain.

The pool holds one :class:`~llmos_serve.engine.Engine` per loaded version and
its *targets*: the primary spec (``quickstart@production``), an optional
canary (``quickstart@canary`` taking ``canary_percent`` of the traffic), and the
specs served *also* (``--also quickstart-lora:2``: chosen by requests naming them).
Adapter versions of one base share one loaded base (:mod:`llmos_serve.bases`).
Every version loads on the pool's ``device`` with its ``precision`` (a version's tags
``device=``/``precision=`` decide where those are ``auto``).

A watcher thread re-resolves targets that can move (aliases, bare names) every
``poll_interval`` seconds — one cheap registry query each. When a target now
points at another version, the pool loads it *beside* the current one, then
switches the target in one step under a lock. Requests hold a :class:`Lease`
on the engine they started on, so in-flight requests finish on their version;
an engine no target points at is stopped once its last lease is released.
"""

from __future__ import annotations

import logging
import random
import threading
from dataclasses import dataclass, field
from typing import Any

from llmos.sdk import ConflictError, LlmosError, NotFoundError, ValidationError

from llmos_serve import engines
from llmos_serve.bases import SharedBases
from llmos_serve.engine import Engine
from llmos_serve.loader import LoadedModel, ModelSpec, load, open_registry, resolve

log = logging.getLogger("llmos.serve")


class NotReady(LlmosError):
    """The server is still loading its model."""


@dataclass
class _Slot:
    loaded: LoadedModel
    engine: Engine
    leases: int = 0


@dataclass
class _Target:
    spec: ModelSpec
    ref: str | None = None  # "name:N" currently served
    history: list[str] = field(default_factory=list)


class Lease:
    """A request's hold on one version; release exactly once (context manager)."""

    def __init__(self, pool: ModelPool, slot: _Slot, target: str) -> None:
        self._pool, self._slot, self.target = pool, slot, target
        self._released = False

    @property
    def engine(self) -> Engine:
        return self._slot.engine

    @property
    def model(self) -> LoadedModel:
        return self._slot.loaded

    @property
    def ref(self) -> str:
        return self._slot.loaded.ref

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._pool._release(self._slot)

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


class ModelPool:
    """Loaded versions and the routing between them.

    :param primary: the spec to serve (``name@alias``, ``name``, ``name:N`` or a directory).
    :param canary: optional second spec receiving ``canary_percent`` % of requests.
    :param engine_options: keyword arguments for every :class:`Engine`.
    :param observer_factory: ``fn(loaded) -> observer`` for engine metrics.
    :param routing_seed: seed of the canary coin (deterministic split in tests).
    :param poll_interval: seconds between alias checks (0 disables the watcher).
    :param engine: the serving engine (``auto``, ``eager``, ``ort``; see :mod:`llmos_serve.engines`).
    :param device: where versions load (``auto|cpu|cuda|cuda:N|mps``; see :mod:`llmos.devices`).
    :param precision: their precision (``auto|fp32|bf16|fp16``).
    :param also: more specs served, each chosen by requests naming it (its spec as typed,
        or its model name when no earlier target has that name).
    """

    def __init__(
        self,
        primary: str,
        canary: str | None = None,
        canary_percent: float = 0.0,
        *,
        engine_options: dict[str, Any] | None = None,
        observer_factory: Any = None,
        routing_seed: int | None = None,
        poll_interval: float = 2.0,
        registry: Any = None,
        engine: str = "auto",
        device: str = "auto",
        precision: str = "auto",
        also: list[str] | tuple[str, ...] = (),
    ) -> None:
        if not 0 <= canary_percent <= 100:
            raise ValidationError(f"--canary-percent must be between 0 and 100, got {canary_percent}")
        if canary_percent and not canary:
            raise ValidationError("--canary-percent needs --canary REF (the version that gets that share)")
        self.primary = _Target(ModelSpec.parse(primary))
        self.canary = _Target(ModelSpec.parse(canary)) if canary else None
        self.canary_percent = float(canary_percent)
        self.also: list[_Target] = []
        for text in also:
            spec = ModelSpec.parse(text)
            if spec.text in [t.spec.text for t in self._targets()]:
                raise ValidationError(f"--also {spec.text}: that spec is served already; name each version once")
            self.also.append(_Target(spec))
        from llmos.sdk import PRECISIONS, check_device_name

        try:
            check_device_name(device)
        except ValueError as exc:
            raise ValidationError(f"--device: {exc}") from None
        if precision not in PRECISIONS:
            raise ValidationError(f"--precision {precision!r}: use one of {', '.join(PRECISIONS)}")
        self.device, self.precision = device, precision
        #: base models loaded once for all the adapter versions served on them
        self.bases = SharedBases()
        self.engine_options = dict(engine_options or {})
        self.observer_factory = observer_factory
        self.poll_interval = poll_interval
        self.engine = engine
        self._rng = random.Random(routing_seed)
        self._lock = threading.RLock()
        self._load_lock = threading.Lock()
        self._slots: dict[str, _Slot] = {}
        self._registry = registry
        self._reg_lock = threading.Lock()
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self.ready = threading.Event()
        self.load_error: str | None = None
        #: called (from the loading thread) when the first load fails
        self.on_load_error: Any = None
        self.switches: list[tuple[str, str | None, str]] = []  # (target spec, old ref, new ref)
        #: versions that failed to load ("name:N" -> why); not retried until forced
        self.failed: dict[str, str] = {}

    # -- names --------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.primary.spec.name

    def model_ids(self) -> list[str]:
        """Model ids a request may name: the model's name, and each spec as typed."""
        ids = [self.primary.spec.name, self.primary.spec.text]
        if self.canary is not None:
            ids += [self.canary.spec.name, self.canary.spec.text]
        for t in self.also:
            ids += [t.spec.text, t.spec.name]
        return list(dict.fromkeys(ids))

    def ref_for(self, model_id: str) -> str | None:
        """The version ("name:N") a request naming ``model_id`` gets (the primary's for a
        name the canary split shares), or ``None`` while it loads."""
        extra = self._also_for(model_id)
        if extra is not None:
            return extra.ref
        return self.canary.ref if self.routes_to_canary(model_id) else self.primary.ref  # type: ignore[union-attr]

    def serving(self) -> dict[str, Any]:
        with self._lock:
            out: dict[str, Any] = {"primary": {"spec": self.primary.spec.text, "version": self.primary.ref}}
            if self.canary is not None:
                out["canary"] = {
                    "spec": self.canary.spec.text,
                    "version": self.canary.ref,
                    "percent": self.canary_percent,
                }
            if self.also:
                out["also"] = [{"spec": t.spec.text, "version": t.ref} for t in self.also]
            out["loaded"] = sorted(self._slots)
            if self.failed:
                out["failed"] = dict(self.failed)
            return out

    def engines(self) -> list[Engine]:
        with self._lock:
            return [s.engine for s in self._slots.values()]

    def loaded(self, ref: str | None) -> LoadedModel | None:
        """The loaded model for ``name:N``, if it is in memory."""
        with self._lock:
            slot = self._slots.get(ref) if ref else None
            return slot.loaded if slot is not None else None

    def current_ref(self) -> str | None:
        return self.primary.ref

    # -- life cycle -----------------------------------------------------------------

    def _reg(self) -> Any:
        if self._registry is None:
            self._registry = open_registry()
        return self._registry

    def check(self) -> None:
        """Resolve every spec now (fails fast on a wrong reference, or a device or precision
        this machine lacks), loading nothing."""
        from llmos.sdk import autocast_dtype, resolve_device

        autocast_dtype(resolve_device(self.device), self.precision)
        for t in self._targets():
            if t.spec.path is None:
                with self._reg_lock:
                    resolve(t.spec, self._reg())

    def start(self, background: bool = False) -> None:
        """Load the versions the targets point at, then watch aliases."""
        if background:
            threading.Thread(target=self._start_guarded, name="llmos-serve-load", daemon=True).start()
        else:
            self._start()

    def _start_guarded(self) -> None:
        try:
            self._start()
        except Exception as exc:  # noqa: BLE001 - reported through /ready
            self.load_error = exc.message if isinstance(exc, LlmosError) else f"{type(exc).__name__}: {exc}"
            log.error("could not load the model: %s", self.load_error)
            if self.on_load_error is not None:
                self.on_load_error()

    def _start(self) -> None:
        self.refresh()
        self.ready.set()
        if self.poll_interval > 0 and any(t.spec.follows for t in self._targets()):
            self._watcher = threading.Thread(target=self._watch, name="llmos-serve-watch", daemon=True)
            self._watcher.start()

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            slots = list(self._slots.values())
            self._slots.clear()
        for s in slots:
            _unload(s)

    def _targets(self) -> list[_Target]:
        return [self.primary] + ([self.canary] if self.canary is not None else []) + self.also

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_interval):
            try:
                self.refresh()
            except Exception as exc:  # noqa: BLE001 - keep serving what we have
                log.warning("alias check failed (still serving %s): %s", self.primary.ref, exc)

    # -- switching ------------------------------------------------------------------

    def refresh(self, force: bool = False) -> list[tuple[str, str | None, str]]:
        """Re-resolve the targets; load and switch to versions that changed.

        :param force: also reload versions already loaded (``POST /admin/reload``).
        :returns: the switches made, ``(spec, old ref, new ref)``.
        """
        made = []
        with self._load_lock:
            for t in self._targets():
                if t.ref is not None and not t.spec.follows and not force:
                    continue
                if t.spec.path is not None:
                    name, version = t.spec.name, "local"
                else:
                    with self._reg_lock:
                        name, version, _ = resolve(t.spec, self._reg())
                ref = f"{name}:{version}"
                if ref == t.ref and not force:
                    continue
                if ref in self.failed and not force:
                    continue  # tried and failed: wait for the alias to move again or a forced reload
                with self._lock:
                    slot = self._slots.get(ref)
                if slot is None or force:
                    try:
                        slot = self._load(t.spec, version)
                    except Exception as exc:
                        self.failed[ref] = exc.message if isinstance(exc, LlmosError) else f"{type(exc).__name__}: {exc}"
                        if t.ref is None:
                            raise
                        log.error("cannot load %s (still serving %s): %s", ref, t.ref, self.failed[ref])
                        continue
                self.failed.pop(ref, None)
                made.append(self._switch(t, slot))
        return made

    def _load(self, spec: ModelSpec, version: str) -> _Slot:
        with self._reg_lock:
            reg = self._reg() if spec.path is None else None
            tags = dict(reg.resolve(f"{spec.name}:{version}").tags or {}) if reg is not None else {}
            device, precision = self._placement(f"{spec.name}:{version}", tags)
            loaded = load(spec, version=version, registry=reg, device=device, precision=precision, bases=self.bases)
        try:
            observer = self.observer_factory(loaded) if self.observer_factory is not None else None
            engine = engines.create(self.engine, loaded, tags, label=loaded.ref, observer=observer,
                                    **self.engine_options)
        except BaseException:
            loaded.close()
            raise
        log.info("loaded %s from %s (%s engine, %s, %s%s)", loaded.ref, loaded.path, engine.kind, loaded.device,
                 loaded.precision, f", adapter on the shared base {loaded.base}" if loaded.base else "")
        return _Slot(loaded, engine.start())

    def _placement(self, ref: str, tags: dict[str, str]) -> tuple[str, str]:
        """``(device, precision)`` for version ``ref``: the pool's, where ``auto`` leaves the
        choice to the version's tags ``device=`` and ``precision=``."""
        from llmos.sdk import PRECISIONS, check_device_name

        device, precision = self.device, self.precision
        if device == "auto" and tags.get("device"):
            device = tags["device"]
            try:
                check_device_name(device)
            except ValueError as exc:
                raise ValidationError(f"the tag device={device} of {ref}: {exc} (llmos model tag {ref} device=...)") from None
        if precision == "auto" and tags.get("precision"):
            precision = tags["precision"]
            if precision not in PRECISIONS:
                raise ValidationError(f"the tag precision={precision} of {ref}: use one of {', '.join(PRECISIONS)} "
                                      f"(llmos model tag {ref} precision=...)")
        return device, precision

    def _switch(self, target: _Target, slot: _Slot) -> tuple[str, str | None, str]:
        ref = slot.loaded.ref
        with self._lock:
            old_slot = self._slots.get(target.ref) if target.ref else None
            replaced = self._slots.get(ref)
            if replaced is not None and replaced is not slot:  # forced reload of the same version
                self._slots[f"{ref}#retired{id(replaced)}"] = replaced
            self._slots[ref] = slot
            old = target.ref
            target.ref = ref
            target.history.append(ref)
            self.switches.append((target.spec.text, old, ref))
            for s in {id(x): x for x in (old_slot, replaced) if x is not None and x is not slot}.values():
                self._maybe_retire(s)
        if old is not None and old != ref:
            log.info("%s now serves %s (was %s)", target.spec.text, ref, old)
        return (target.spec.text, old, ref)

    def _maybe_retire(self, slot: _Slot) -> None:
        """Stop ``slot``'s engine if no target points at it and no request holds it."""
        in_use = {t.ref for t in self._targets()}
        key = next((k for k, v in self._slots.items() if v is slot), None)
        if key is None or (key in in_use and self._slots.get(key) is slot) or slot.leases > 0:
            return
        del self._slots[key]
        threading.Thread(target=_unload, args=(slot,), daemon=True).start()

    def set_alias(self, alias: str, version: int, model: str | None = None) -> dict[str, Any]:
        """Move ``model@alias`` to ``version`` in the registry and switch now.

        The new version is loaded before the alias moves, so a bad version never
        becomes the target. :returns: ``{"model", "alias", "version", "previous"}``.
        """
        model = model or self.name
        reg = self._reg()
        with self._reg_lock:
            previous = None
            try:
                previous = reg.resolve(f"{model}@{alias}").number
            except NotFoundError:
                previous = None
            reg.resolve(f"{model}:{version}")  # NotFoundError for a version that does not exist
        affected = [t for t in self._targets() if t.spec.name == model and t.spec.alias == alias]
        with self._load_lock:
            ref = f"{model}:{version}"
            with self._lock:
                slot = self._slots.get(ref)
            if affected and slot is None:
                try:
                    slot = self._load(affected[0].spec, str(version))
                except Exception as exc:
                    why = exc.message if isinstance(exc, LlmosError) else f"{type(exc).__name__}: {exc}"
                    raise ConflictError(f"{ref} does not load ({why}); {model}@{alias} was not moved") from exc
            with self._reg_lock:
                reg.set_alias(model, alias, int(version))
            for t in affected:
                if t.ref != ref:
                    self._switch(t, slot)  # type: ignore[arg-type]
        return {"model": model, "alias": alias, "version": int(version), "previous": previous}

    # -- routing --------------------------------------------------------------------

    def _also_for(self, model_id: str) -> _Target | None:
        """The ``also`` target a request naming ``model_id`` goes to, if any: the one typed
        so, else the first with that model name unless the primary or canary has it."""
        for t in self.also:
            if model_id == t.spec.text:
                return t
        main = {self.primary.spec.name, self.primary.spec.text}
        if self.canary is not None:
            main |= {self.canary.spec.name, self.canary.spec.text}
        if model_id in main:
            return None
        return next((t for t in self.also if model_id == t.spec.name), None)

    def acquire(self, model_id: str) -> Lease:
        """Pick the version for a request naming ``model_id`` and hold it.

        :raises NotFoundError: ``model_id`` is not served here.
        :raises NotReady: the model is still loading.
        """
        if model_id not in self.model_ids():
            raise NotFoundError(
                f"The model '{model_id}' does not exist or is not served here; "
                f"use one of: {', '.join(self.model_ids())}"
            )
        with self._lock:
            target = self._route(model_id)
            slot = self._slots.get(target.ref) if target.ref else None
            if slot is None:
                raise NotReady(self.load_error or "the model is still loading; retry in a few seconds")
            slot.leases += 1
            return Lease(self, slot, "canary" if target is self.canary else "primary")

    def routes_to_canary(self, model_id: str) -> bool:
        """True when a request naming ``model_id`` always goes to the canary."""
        c = self.canary
        if c is None or model_id == self.primary.spec.text or self._also_for(model_id) is not None:
            return False
        return model_id == c.spec.text or (model_id == c.spec.name and c.spec.name != self.primary.spec.name)

    def _route(self, model_id: str) -> _Target:
        extra = self._also_for(model_id)
        if extra is not None:
            return extra
        c = self.canary
        if c is None or c.ref is None:
            return self.primary
        if self.routes_to_canary(model_id):
            return c
        if model_id == self.primary.spec.text:
            return self.primary
        return c if self._rng.random() * 100.0 < self.canary_percent else self.primary

    def _release(self, slot: _Slot) -> None:
        with self._lock:
            slot.leases -= 1
            if slot.leases <= 0:
                self._maybe_retire(slot)


def _unload(slot: _Slot) -> None:
    """Stop a slot's engine, then free what its version holds (a shared base's adapter)."""
    slot.engine.stop()
    slot.loaded.close()
