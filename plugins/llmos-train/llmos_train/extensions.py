"""Optimizers and LR schedules by name, from the plugins that register them (no torch here).

Two extension points of the plugin API (see ``docs/hooks.md``):

- ``llmos_register_optimizers(register)``: ``register(name, factory, config=Model,
  description=...)`` where ``factory(params, config) -> torch.optim.Optimizer``.
  ``params`` are parameter groups that already carry ``lr`` and ``weight_decay`` (matrices
  decay, biases and norms do not), so the factory passes them straight to its optimizer;
  ``config`` is the validated ``optimizer_config`` (an instance of ``Model``, or ``None``).
- ``llmos_register_lr_schedules(register)``: ``factory(config, *, warmup, total) -> f``
  (plus ``model_width=``, the model's hidden size, when the factory accepts it) where
  ``f(i) -> float`` multiplies ``lr`` for update ``i + 1`` (``LambdaLR``'s convention).
  The schedule's config model is validated with the context ``{"warmup", "total"}``
  (pydantic's ``ValidationInfo.context``), so it can refuse combinations at
  ``llmos run --check``.

llmos-train registers adamw, adam, sgd and lamb, and constant, linear-warmup, cosine and
noam, through the same hooks. The table is read from the process-wide plugin manager,
so a DDP worker (a fresh process started by torchrun) finds a plugin's optimizer exactly
as the pipeline process does: by name, through the entry points.
"""

from __future__ import annotations

from typing import Any

OPTIMIZERS = "optimizers"
SCHEDULES = "lr_schedules"

_HOOKS = {OPTIMIZERS: "llmos_register_optimizers", SCHEDULES: "llmos_register_lr_schedules"}
_WHAT = {OPTIMIZERS: "optimizer", SCHEDULES: "schedule"}
_SELF = "llmos-train"


class Extension:
    """One registered optimizer or schedule."""

    def __init__(self, kind: str, name: str, factory: Any, config: Any, description: str, plugin: str) -> None:
        self.kind, self.name, self.factory, self.config = kind, name, factory, config
        self.description, self.plugin = description, plugin
        self._loaded: Any = None

    def load(self) -> Any:
        """The factory callable (a ``"module:attr"`` string is imported on first use)."""
        if self._loaded is None:
            if isinstance(self.factory, str):
                from llmos.components import import_object

                self._loaded = import_object(self.factory)
            else:
                self._loaded = self.factory
        return self._loaded

    def settings(self, data: dict[str, Any] | None, context: dict[str, Any] | None = None) -> Any:
        """``data`` validated by the config model (``None`` when it takes no settings)."""
        if self.config is None:
            if data:
                raise ValueError(f"{_WHAT[self.kind]} {self.name!r} takes no settings, got {sorted(data)}")
            return None
        return self.config.model_validate(dict(data or {}), context=context)


class _Collector:
    """The ``register`` callback handed to one plugin."""

    def __init__(self, kind: str, plugin: str) -> None:
        self.kind, self.plugin = kind, plugin
        self.found: list[Extension] = []

    def __call__(self, name: str, factory: Any, *, config: Any = None, description: str = "") -> None:
        from llmos.components import NAME_RE

        if not isinstance(name, str) or not NAME_RE.match(name):
            raise ValueError(f"invalid {_WHAT[self.kind]} name {name!r} (use lowercase letters, digits, '-', '_')")
        if not (callable(factory) or (isinstance(factory, str) and ":" in factory)):
            raise ValueError(f"{_WHAT[self.kind]} {name!r}: factory must be callable or 'module:attr'")
        if config is not None and not hasattr(config, "model_validate"):
            raise ValueError(f"{_WHAT[self.kind]} {name!r}: config must be a pydantic model class")
        lines = (description or "").strip().splitlines()
        self.found.append(Extension(self.kind, name, factory, config, lines[0] if lines else "", self.plugin))


def _own(kind: str) -> list[Extension]:
    """llmos-train's own registrations, when the manager in use did not load llmos-train
    (a test's empty manager, or the loop used as a library)."""
    from llmos_train import plugin

    reg = _Collector(kind, _SELF)
    {OPTIMIZERS: plugin.register_optimizers, SCHEDULES: plugin.register_lr_schedules}[kind](reg)
    return reg.found


def available(kind: str, manager: Any = None) -> dict[str, Extension]:
    """Every ``kind`` extension of the working plugins, by name (sorted)."""
    if manager is None:
        from llmos.plugins import get_manager

        manager = get_manager()
    found: list[Extension] = []
    collectors: dict[str, _Collector] = {}
    api2 = getattr(getattr(manager.pm.hook, "llmos_register_optimizer_steps", None), "spec", None) is not None
    if api2:  # plugin API 2: llmos_register_optimizers means torch optimizers (API 1: training steps)

        def kw(plugin_name: str) -> dict[str, Any]:
            collectors[plugin_name] = _Collector(kind, plugin_name)
            return {"register": collectors[plugin_name]}

        for plugin_name, _ in manager.call_each(_HOOKS[kind], per_plugin_kwargs=kw):
            found.extend(collectors[plugin_name].found)
    if not any(e.plugin == _SELF for e in found):
        found.extend(_own(kind))
    table: dict[str, Extension] = {}
    for ext in found:
        if ext.name in table:
            raise ValueError(
                f"{_WHAT[kind]} {ext.name!r} is registered by plugins {table[ext.name].plugin!r} and "
                f"{ext.plugin!r}: disable one (llmos plugin disable NAME)"
            )
        table[ext.name] = ext
    return dict(sorted(table.items()))


def lookup(kind: str, name: str, manager: Any = None) -> Extension:
    """The ``kind`` extension called ``name``, or a ValueError listing the installed names."""
    table = available(kind, manager)
    if name not in table:
        hook = _HOOKS[kind]
        raise ValueError(
            f"unknown {_WHAT[kind]} {name!r}: installed are {', '.join(table) or 'none'} "
            f"(a plugin adds one with the {hook} hook)"
        )
    return table[name]


def validate_settings(kind: str, name: str, data: dict[str, Any], context: dict[str, Any] | None = None
                      ) -> dict[str, Any]:
    """``data`` checked against the config model of ``name``, as JSON-ready settings with
    defaults filled in (so lineage and DDP workers see every value)."""
    import pydantic

    ext = lookup(kind, name)
    try:
        cfg = ext.settings(data, context)
    except pydantic.ValidationError as exc:
        from llmos.components import format_validation_error

        raise ValueError(format_validation_error(exc)) from None
    return {} if cfg is None else cfg.model_dump(mode="json")
