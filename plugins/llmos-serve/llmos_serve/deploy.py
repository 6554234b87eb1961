"""Promote and roll back: move aliases in the registry, remembering the last target.

The version an alias pointed at before a promote is kept in the registry as the
alias ``<alias>-previous`` — in the same database as everything else, so every
machine (and every server following the alias) sees the same history, on
SQLite or PostgreSQL alike.
"""

from __future__ import annotations

from typing import Any

from llmos.errors import NotFoundError, ValidationError

from llmos_serve.loader import ModelSpec, open_registry


def previous_alias(alias: str) -> str:
    return f"{alias}-previous"


def _current(reg: Any, model: str, alias: str) -> int | None:
    try:
        return int(reg.resolve(f"{model}@{alias}").number)
    except NotFoundError:
        return None


def promote(source: str, alias: str = "production", registry: Any = None) -> dict[str, Any]:
    """Point ``<model>@<alias>`` at the version ``source`` resolves to.

    :returns: ``{"model", "alias", "version", "previous"}``.
    """
    spec = ModelSpec.parse(source)
    if spec.path is not None:
        raise ValidationError(f"{source!r} is a directory: promote a registry version such as 'quickstart:3'")
    if alias.endswith("-previous"):
        raise ValidationError(f"alias {alias!r} is reserved for rollback bookkeeping; promote to another alias")
    reg = registry if registry is not None else open_registry()
    info = reg.resolve(source)
    model, version = str(info.model), int(info.number)
    previous = _current(reg, model, alias)
    if previous != version:
        if previous is not None:
            reg.set_alias(model, previous_alias(alias), previous)
        reg.set_alias(model, alias, version)
    return {"model": model, "alias": alias, "version": version, "previous": previous}


def rollback(model: str, alias: str = "production", registry: Any = None) -> dict[str, Any]:
    """Point ``model@alias`` back at ``model@<alias>-previous`` (and swap the two).

    :returns: ``{"model", "alias", "version", "previous"}`` (``previous``: the version rolled away from).
    """
    reg = registry if registry is not None else open_registry()
    target = _current(reg, model, previous_alias(alias))
    if target is None:
        raise NotFoundError(
            f"nothing to roll back to: {model}@{alias} has no recorded previous version "
            f"(versions are recorded by 'llmos deploy promote')"
        )
    current = _current(reg, model, alias)
    reg.set_alias(model, alias, target)
    if current is not None and current != target:
        reg.set_alias(model, previous_alias(alias), current)
    return {"model": model, "alias": alias, "version": target, "previous": current}


def status(model: str, alias: str = "production", registry: Any = None) -> dict[str, Any]:
    """``{"model", "alias", "version", "previous"}`` as they are now."""
    reg = registry if registry is not None else open_registry()
    current = _current(reg, model, alias)
    if current is None:
        raise NotFoundError(f"{model}@{alias} is not set: promote a version with 'llmos deploy promote {model}:N'")
    return {"model": model, "alias": alias, "version": current, "previous": _current(reg, model, previous_alias(alias))}
