"""The append-only event log.

Functions take the :class:`~llmos_registry.store.Store` (the :class:`~llmos_registry.Registry`)
as their first argument; the ``Registry`` facade exposes them as methods.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from llmos.sdk import redact
from llmos_registry.models import (
    Event,
)
from llmos_registry.refs import (
    _check_json,
    _utc,
)

from llmos_registry.types import EventRecord

if TYPE_CHECKING:
    from llmos_registry.store import Store


def record_event(store: Store, kind: str, subject: str, data: Mapping[str, Any] | None = None, *,
                 alias_at: tuple[str, str, int | None] | None = None) -> None:
    """Append an event to the log (one transaction). With ``alias_at=(model, alias, number)``
    the event is recorded only while ``model@alias`` points at ``number`` (``None``: is
    unset), checked under the model row's lock: a decision recorded about an alias's
    current version is about the version it still has. :raises ConflictError: it moved."""
    payload = _check_json(redact(dict(data or {})), "event data")
    with store.session(write=True) as s:
        if alias_at is not None:
            from llmos_registry.versions import check_alias_at

            check_alias_at(s, store._lock_model(s, alias_at[0]), alias_at[1], alias_at[2])
        s.add(Event(kind=kind, subject=subject, data=payload))


def events(store: Store, *, kind: str | None = None, subject: str | None = None, limit: int = 100) -> list[EventRecord]:
    """The newest events first."""
    with store.session() as s:
        q = select(Event).order_by(Event.id.desc()).limit(limit)
        if kind:
            q = q.where(Event.kind == kind)
        if subject:
            q = q.where(Event.subject == subject)
        return [
            {"id": e.id, "ts": _utc(e.ts).isoformat(), "kind": e.kind, "subject": e.subject,
             "data": redact(e.data)}
            for e in s.scalars(q).all()
        ]

