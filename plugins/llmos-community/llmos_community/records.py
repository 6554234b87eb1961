"""What the community workflow writes to the registry database: contributors,
submissions, reviews (with their signatures), installs and events.

Each function is one transaction (``Registry.session(write=True)``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any


def _reg() -> Any:
    from llmos_registry import open_registry

    return open_registry()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def upsert_contributor(s: Any, handle: str, public_key: str | None = None, role: str | None = None,
                       name: str = "") -> Any:
    from sqlalchemy import select

    from llmos_registry.models import Contributor

    c = s.scalars(select(Contributor).where(Contributor.handle == handle)).first()
    if c is None:
        c = Contributor(handle=handle, name=name, public_key=public_key, roles=[])
        s.add(c)
    if public_key:
        c.public_key = public_key
    if name:
        c.name = name
    if role and role not in (c.roles or []):
        c.roles = [*(c.roles or []), role]
    return c


def record_submission(plugin: str, version: str | None, kind: str, author: str, digest: str,
                      public_key: str | None) -> int:
    """Open (or refresh) the submission of ``plugin``/``version``; returns its id."""
    from sqlalchemy import select

    from llmos_registry.models import Event, Submission

    with _reg().session(write=True) as s:
        upsert_contributor(s, author, public_key, "contributor")
        sub = s.scalars(select(Submission).where(Submission.plugin_name == plugin, Submission.version == version,
                                                 Submission.status == "open")).first()
        if sub is None:
            sub = Submission(plugin_name=plugin, version=version, kind=kind, author=author, manifest_digest=digest,
                             status="open")
            s.add(sub)
        else:
            sub.manifest_digest, sub.updated_at = digest, _now()
        s.flush()
        s.add(Event(kind="contrib.submit", subject=f"{plugin}=={version}" if version else plugin,
                    data={"author": author, "kind": kind, "digest": digest, "submission": sub.id}))
        return sub.id


def record_review(plugin: str, subject: str, reviewer: str, decision: str, digest: str, signature: str,
                  reason: str, status_after: str | None) -> None:
    """Record a review on the open submission of ``plugin`` (one is opened when the
    submission was made elsewhere, e.g. by a pull request from another machine)."""
    from sqlalchemy import select

    from llmos_registry.models import Event, Review, Submission

    version = None if subject == "plugin" else subject
    with _reg().session(write=True) as s:
        upsert_contributor(s, reviewer, None, "reviewer")
        q = select(Submission).where(Submission.plugin_name == plugin).order_by(Submission.id.desc())
        q = q.where(Submission.version == version) if version else q
        sub = s.scalars(q).first()
        if sub is None:
            sub = Submission(plugin_name=plugin, version=version,
                             kind="new-plugin" if version is None else "new-version",
                             author="?", manifest_digest=digest, status="open")
            s.add(sub)
            s.flush()
        s.add(Review(submission_id=sub.id, reviewer=reviewer, decision=decision, digest=digest,
                     signature=signature, reason=reason))
        if status_after:
            sub.status, sub.updated_at = status_after, _now()
        s.add(Event(kind=f"contrib.{decision}", subject=plugin if version is None else f"{plugin}=={version}",
                    data={"reviewer": reviewer, "digest": digest, "reason": reason, "submission": sub.id,
                          "status": sub.status}))


def submissions(plugin: str | None = None) -> list[dict[str, Any]]:
    """Submissions with their reviews, newest first."""
    from sqlalchemy import select

    from llmos_registry.models import Review, Submission

    with _reg().session() as s:
        q = select(Submission).order_by(Submission.id.desc())
        if plugin:
            q = q.where(Submission.plugin_name == plugin)
        out = []
        for sub in s.scalars(q):
            reviews = s.scalars(select(Review).where(Review.submission_id == sub.id).order_by(Review.id)).all()
            out.append({
                "id": sub.id, "plugin": sub.plugin_name, "version": sub.version, "kind": sub.kind,
                "author": sub.author, "digest": sub.manifest_digest, "status": sub.status,
                "created_at": sub.created_at.isoformat(), "updated_at": sub.updated_at.isoformat(),
                "reviews": [{"reviewer": r.reviewer, "decision": r.decision, "digest": r.digest,
                             "reason": r.reason, "at": r.created_at.isoformat()} for r in reviews],
            })
        return out


def record_install(name: str, version: str, source: str, url: str | None, sha256: str | None) -> None:
    from sqlalchemy import select

    from llmos_registry.models import Event, InstalledPlugin

    with _reg().session(write=True) as s:
        for row in s.scalars(select(InstalledPlugin).where(InstalledPlugin.name == name,
                                                           InstalledPlugin.uninstalled_at.is_(None))):
            row.uninstalled_at = _now()
        s.add(InstalledPlugin(name=name, version=version, source=source, artifact_url=url, sha256=sha256))
        s.add(Event(kind="plugin.install", subject=name,
                    data={"version": version, "source": source, "url": url, "sha256": sha256}))


def record_uninstall(name: str, version: str | None) -> None:
    from sqlalchemy import select

    from llmos_registry.models import Event, InstalledPlugin

    with _reg().session(write=True) as s:
        for row in s.scalars(select(InstalledPlugin).where(InstalledPlugin.name == name,
                                                           InstalledPlugin.uninstalled_at.is_(None))):
            row.uninstalled_at = _now()
        s.add(Event(kind="plugin.uninstall", subject=name, data={"version": version}))


def installed_record(name: str) -> dict[str, Any] | None:
    """The current install record of ``name`` (from ``llmos plugin install``), if any."""
    from sqlalchemy import select

    from llmos_registry.models import InstalledPlugin

    with _reg().session() as s:
        row = s.scalars(select(InstalledPlugin).where(InstalledPlugin.name == name,
                                                      InstalledPlugin.uninstalled_at.is_(None))
                        .order_by(InstalledPlugin.id.desc())).first()
        if row is None:
            return None
        return {"name": row.name, "version": row.version, "source": row.source, "artifact_url": row.artifact_url,
                "sha256": row.sha256, "installed_at": row.installed_at.isoformat()}
