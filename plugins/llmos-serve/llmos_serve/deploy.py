"""Promote and roll back: move aliases in the registry, remembering the last target.

The version an alias pointed at before a promote is kept in the registry as the
alias ``<alias>-previous`` — in the same database as everything else, so every
machine (and every server following the alias) sees the same history, on
SQLite or PostgreSQL alike.
"""

from __future__ import annotations

from typing import Any

from llmos.sdk import ConflictError, NotFoundError, ValidationError

from llmos_serve.loader import ModelSpec, open_registry


#: how many times a promote decides again when the alias moved between its check and its move
MAX_ATTEMPTS = 20


def previous_alias(alias: str) -> str:
    return f"{alias}-previous"


def _current(reg: Any, model: str, alias: str) -> int | None:
    try:
        return int(reg.resolve(f"{model}@{alias}").number)
    except NotFoundError:
        return None


class PromotionRefused(ConflictError):
    """A promotion rule failed: the alias did not move."""


def version_metrics(reg: Any, info: Any) -> dict[str, float]:
    """What a rule can name about a version: its recorded metrics, ``size_bytes`` and
    ``params`` (counted from the stored tensors when not recorded)."""
    out = {k: float(v) for k, v in (info.metrics or {}).items()}
    out.setdefault("size_bytes", float(info.size_bytes or 0))
    if "params" not in out:
        total = 0
        for t in reg.tensors(info.ref).values():
            n = 1
            for d in t.get("shape") or []:
                n *= int(d)
            total += n
        out["params"] = float(total)
    return out


def promote(source: str, alias: str = "production", registry: Any = None, *,
            require: str | None = None) -> dict[str, Any]:
    """Point ``<model>@<alias>`` at the version ``source`` resolves to — if ``require``
    (a rule such as ``"val_ppl <= current.val_ppl"``, see :mod:`llmos_serve.rules`)
    holds; ``current`` is the version the alias points at now (none: the rule's
    comparisons with it pass, so a first promotion always goes through).

    Every decision is recorded as a registry event (``deploy.promoted`` or
    ``deploy.refused``, subject the candidate ``model:N``) with the rule, each
    comparison's numbers and both versions' metrics.

    The check and the decision are atomic: the alias moves (or the refusal is
    recorded) only if it still points at the current version the rule was checked
    against (a compare-and-swap under the model row's lock); when a concurrent promote
    moved it in between, the rule is checked again against the new current (up to
    ``MAX_ATTEMPTS`` times). So two promotes never both pass against the same current.

    :returns: ``{"model", "alias", "version", "previous", "promoted", "checks"}``.
    :raises PromotionRefused: the rule failed (the alias is unchanged); the message has both numbers.
    """
    from llmos_serve import rules

    spec = ModelSpec.parse(source)
    if spec.path is not None:
        raise ValidationError(f"{source!r} is a directory: promote a registry version such as 'quickstart:3'")
    if alias.endswith("-previous"):
        raise ValidationError(f"alias {alias!r} is reserved for rollback bookkeeping; promote to another alias")
    parsed = rules.parse(require) if require is not None else []
    reg = registry if registry is not None else open_registry()
    info = reg.resolve(source)
    model, version = str(info.model), int(info.number)
    cand_metrics = version_metrics(reg, info)
    for attempt in range(1, MAX_ATTEMPTS + 1):
        previous = _current(reg, model, alias)
        cur_metrics = None
        if previous is not None:
            cur_metrics = version_metrics(reg, reg.resolve(f"{model}:{previous}"))
        outcome = rules.evaluate(parsed, cand_metrics, cur_metrics,
                                 names=(f"{model}:{version}", f"current {model}:{previous}"))
        record = {"model": model, "alias": alias, "version": version, "previous": previous,
                  "candidate": f"{model}:{version}",
                  "current": f"{model}:{previous}" if previous is not None else None,
                  "rule": require, "checks": outcome.checks,
                  "metrics": {"candidate": cand_metrics, "current": cur_metrics}}
        # the decision is recorded (and the alias moved) only if the alias still points at
        # the `previous` it was checked against: compare-and-swap under the model's row lock;
        # if another promote moved it in between, decide again against the new current
        try:
            if not outcome.ok:
                reg.record_event("deploy.refused", f"{model}:{version}", record, alias_at=(model, alias, previous))
            elif previous != version:
                reg.set_alias(model, alias, version, expect=previous,
                              previous_as=previous_alias(alias) if previous is not None else None,
                              event=("deploy.promoted", f"{model}:{version}", record))
            else:
                reg.record_event("deploy.promoted", f"{model}:{version}", record, alias_at=(model, alias, previous))
        except ConflictError:
            if _current(reg, model, alias) == previous or attempt == MAX_ATTEMPTS:
                raise
            continue
        break
    if not outcome.ok:
        stays = f"version {previous}" if previous is not None else "unset"
        raise PromotionRefused(
            f"not promoting {model}:{version} to {model}@{alias}: {outcome.explain()}; "
            f"{model}@{alias} stays at {stays}")
    return {"model": model, "alias": alias, "version": version, "previous": previous, "promoted": True,
            "checks": outcome.checks}


def history(reg: Any, ref: str, limit: int = 50) -> list[dict[str, Any]]:
    """The promotion decisions about version ``ref`` (``model:N``), newest first."""
    out = []
    for kind in ("deploy.promoted", "deploy.refused"):
        out += reg.events(kind=kind, subject=ref, limit=limit)
    return sorted(out, key=lambda e: e["id"], reverse=True)[:limit]


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
    # one transaction, and only if the alias is still where it was read (else ConflictError)
    reg.set_alias(model, alias, target, expect=current, previous_as=previous_alias(alias))
    return {"model": model, "alias": alias, "version": target, "previous": current}


def status(model: str, alias: str = "production", registry: Any = None) -> dict[str, Any]:
    """``{"model", "alias", "version", "previous"}`` as they are now."""
    reg = registry if registry is not None else open_registry()
    current = _current(reg, model, alias)
    if current is None:
        raise NotFoundError(f"{model}@{alias} is not set: promote a version with 'llmos deploy promote {model}:N'")
    return {"model": model, "alias": alias, "version": current, "previous": _current(reg, model, previous_alias(alias))}
