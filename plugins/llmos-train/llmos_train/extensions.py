"""Optimizers and LR schedules by name, from the plugins that register them (no torch here).

Two extension points of the plugin API (see ``docs/hooks.md``), read through the
process-wide plugin manager (``get_manager().get_extension(kind, name)``):

- ``llmos_register_optimizers(register)``: ``factory(params, config) -> torch.optim.Optimizer``.
  ``params`` are parameter groups that already carry ``lr`` and ``weight_decay`` (matrices
  decay, biases and norms do not), so the factory passes them straight to its optimizer;
  ``config`` is the validated ``optimizer_config`` (an instance of the registered model).
- ``llmos_register_lr_schedules(register)``: ``factory(config, *, warmup, total) -> f``
  (plus ``model_width=``, the model's hidden size, when the factory accepts it) where
  ``f(i) -> float`` multiplies ``lr`` for update ``i + 1`` (``LambdaLR``'s convention).
  The schedule's config model is validated with the context ``{"warmup", "total"}``
  (pydantic's ``ValidationInfo.context``), so it can refuse combinations at
  ``llmos run --check``.

llmos-train registers adamw, adam, sgd and lamb, and constant, linear-warmup, cosine and
noam, through the same hooks. A DDP worker (a fresh process started by torchrun) builds
its own plugin manager from the entry points, so it finds a plugin's optimizer exactly as
the pipeline process does: by name.
"""

from __future__ import annotations

from typing import Any

OPTIMIZERS = "optimizers"
SCHEDULES = "lr_schedules"


def lookup(kind: str, name: str) -> Any:
    """The ``kind`` extension called ``name`` (or ``plugin:name``); a ValueError (which
    pydantic reports at the setting) listing the available names otherwise."""
    from llmos.sdk import find_extension

    return find_extension(kind, name)


def settings(ext: Any, data: dict[str, Any] | None, context: dict[str, Any] | None = None) -> Any:
    """``data`` validated by ``ext``'s config model (``None`` when it takes no settings)."""
    if ext.config is None:
        if data:
            raise ValueError(f"{ext.name!r} takes no settings, got {sorted(data)}")
        return None
    return ext.config.model_validate(dict(data or {}), context=context)


def validate_settings(kind: str, name: str, data: dict[str, Any], context: dict[str, Any] | None = None
                      ) -> dict[str, Any]:
    """``data`` checked against the config model of ``name``, as JSON-ready settings with
    defaults filled in (so lineage and DDP workers see every value)."""
    import pydantic

    ext = lookup(kind, name)
    try:
        cfg = settings(ext, data, context)
    except pydantic.ValidationError as exc:
        from llmos.sdk import format_validation_error

        raise ValueError(format_validation_error(exc)) from None
    return {} if cfg is None else cfg.model_dump(mode="json")
