"""Store maintenance: gc (honouring pins), fsck (blobs and checkouts), info.

Functions take the :class:`~llmos_registry.store.Store` (the :class:`~llmos_registry.Registry`)
as their first argument; the ``Registry`` facade exposes them as methods.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from llmos_registry import db as _db
from llmos_registry.models import (
    Event,
    FilePart,
    Model,
    ModelVersion,
    VersionFile,
)

from llmos_registry import files

from llmos_registry.types import FsckReport, GcReport

if TYPE_CHECKING:
    from llmos_registry.store import Store


def _referenced(store: Store, s: Session) -> set[str]:
    """Digests of every blob some version uses."""
    whole = select(VersionFile.sha256).where(VersionFile.kind == "blob")
    parts = select(FilePart.sha256)
    return set(s.scalars(whole.union(parts)).all())


def _users(store: Store, s: Session, digests: Iterable[str], limit: int = 5) -> dict[str, list[str]]:
    """``digest → ["model:N/path", ...]`` (at most ``limit`` each), for reports."""
    wanted = sorted(set(digests))
    users: dict[str, list[str]] = {}
    for chunk in (wanted[i : i + 500] for i in range(0, len(wanted), 500)):
        rows = s.execute(
            select(VersionFile.sha256, Model.name, ModelVersion.number, VersionFile.path)
            .join(ModelVersion, ModelVersion.id == VersionFile.version_id)
            .join(Model, Model.id == ModelVersion.model_id)
            .where(VersionFile.kind == "blob", VersionFile.sha256.in_(chunk))
        ).all() + s.execute(
            select(FilePart.sha256, Model.name, ModelVersion.number, VersionFile.path)
            .join(VersionFile, VersionFile.id == FilePart.file_id)
            .join(ModelVersion, ModelVersion.id == VersionFile.version_id)
            .join(Model, Model.id == ModelVersion.model_id)
            .where(FilePart.sha256.in_(chunk))
        ).all()
        for sha, m, n, p in rows:
            users.setdefault(sha, []).append(f"{m}:{n}/{p}")
    return {d: sorted(set(u))[:limit] for d, u in users.items()}


def gc(store: Store, grace_seconds: float = 3600.0, *, dry_run: bool = False) -> GcReport:
    """Remove blobs no version references, and left-over temporary files and
    checkouts of deleted versions. Blobs touched in the last ``grace_seconds`` are
    kept, and so, whatever the grace, is every blob touched since the oldest live
    pin (a register in progress: see :mod:`llmos_registry.pins`) and since this gc
    started."""
    import math
    import time

    from llmos_registry import pins

    started = time.time()
    # Order matters: (1) stat every blob, (2) read the pins, (3) read what versions use.
    # A register writes or reuses a blob only after its pin is committed, so a blob it
    # touched before (1) is either pinned in (2) or, if the register finished, used by a
    # version in (3). One it touches after (1) changes its mtime: the removal re-checks.
    seen = []
    for digest, path in store.blobs.iter_digests():
        try:
            seen.append((digest, path, path.stat()))
        except FileNotFoundError:
            continue
    with store.session() as s:
        live_pins, stale_pins = pins.live_pins(s)
    pins_read = time.time()
    if stale_pins and not dry_run:
        with store.session(write=True) as s:
            pins.drop_pins(s, stale_pins)
    with store.session() as s:
        referenced = _referenced(store, s)
        live = {
            (m, str(n))
            for m, n in s.execute(
                select(Model.name, ModelVersion.number)
                .join(ModelVersion, ModelVersion.model_id == Model.id)
                .where(ModelVersion.status != "deleted")
            ).all()
        }
    cutoff = started - grace_seconds
    keep_since = min(p.created_ts for p in live_pins) - pins.MTIME_SLACK_S if live_pins else math.inf
    # temporary files and checkouts are listed after (2): a register or checkout that
    # began since may own them
    keep_temp_since = min(keep_since, pins_read - pins.MTIME_SLACK_S)
    removed = removed_bytes = kept_recent = kept_pinned = temps = 0
    for digest, path, st in seen:
        if digest in referenced:
            continue
        if st.st_mtime > cutoff:
            kept_recent += 1
            continue
        if st.st_mtime >= keep_since:
            kept_pinned += 1
            continue
        if dry_run:
            size: int | None = st.st_size
        else:
            size = store.blobs.remove_unless_touched(path, st.st_mtime_ns)
        if size is None:
            kept_pinned += 1
            continue
        removed += 1
        removed_bytes += size
    for tmp in store.blobs.iter_temp():
        try:
            st = tmp.stat()
            # a gc's aside copy keeps the blob's mtime: its rename time (ctime) counts
            mtime = max(st.st_mtime, st.st_ctime) if tmp.name.startswith(".gc-") else st.st_mtime
            if mtime <= cutoff and mtime < keep_temp_since:
                temps += 1
                if not dry_run:
                    tmp.unlink(missing_ok=True)
        except FileNotFoundError:
            pass
    stale_checkouts = 0
    if store.checkouts.is_dir():
        for mdir in store.checkouts.iterdir():
            if not mdir.is_dir():
                continue
            for vdir in mdir.iterdir():
                stamp = re.fullmatch(r"\.(\d+)\.stamp\.json(\.tmp-.*)?", vdir.name)
                if stamp:  # the record beside a checkout: goes with it
                    if (mdir.name, stamp.group(1)) not in live and not stamp.group(2):
                        if not dry_run:
                            vdir.unlink(missing_ok=True)
                    continue
                stale = vdir.name.startswith(".tmp-") or (mdir.name, vdir.name) not in live
                try:
                    mtime = vdir.stat().st_mtime
                except FileNotFoundError:
                    continue
                if stale and mtime <= cutoff and mtime < keep_temp_since:
                    stale_checkouts += 1
                    if not dry_run:
                        shutil.rmtree(vdir, ignore_errors=True)
    if not dry_run and (removed or temps):
        with store.session(write=True) as s:
            s.add(Event(kind="store.gc", subject="blobs", data={"removed": removed, "bytes": removed_bytes}))
    return {
        "removed_blobs": removed,
        "removed_bytes": removed_bytes,
        "kept_recent": kept_recent,
        "kept_pinned": kept_pinned,
        "live_pins": len(live_pins),
        "removed_temp_files": temps,
        "removed_checkouts": stale_checkouts,
        "dry_run": dry_run,
    }


def fsck(store: Store, progress: Callable[[int], None] | None = None, *, repair: bool = False) -> FsckReport:
    """Re-hash every blob and every checkout; report missing (referenced but absent)
    and corrupt (content does not match the name) blobs, and checkouts whose files
    differ from their version (``repair``: materialise those again). ``ok`` is true
    when nothing is wrong (or everything wrong was repaired)."""
    with store.session() as s:
        refs = _referenced(store, s)
    bad, checked, total = [], 0, 0
    present = set()
    for digest, path in store.blobs.iter_digests():
        actual = store.blobs.hash_file(digest)
        present.add(digest)
        checked += 1
        size = path.stat().st_size if path.exists() else 0
        total += size
        if progress:
            progress(size)
        if actual is not None and actual != digest:
            bad.append((digest, actual))
    absent = sorted(refs - present)
    with store.session() as s:
        users = _users(store, s, [d for d, _ in bad] + absent)
    corrupt = [{"sha256": d, "actual": a, "used_by": users.get(d, [])} for d, a in bad]
    missing = [{"sha256": d, "used_by": users.get(d, [])} for d in absent]
    checkouts = files.verify_checkouts(store, repair=repair and not corrupt and not missing)
    return {
        "ok": not corrupt and not missing and all(c["repaired"] for c in checkouts),
        "checkouts": checkouts,
        "checked_blobs": checked,
        "checked_bytes": total,
        "missing": missing,
        "corrupt": corrupt,
        "unreferenced": len(present - refs),
        "temp_files": len(list(store.blobs.iter_temp())),
    }


def info(store: Store) -> dict[str, Any]:
    """URL (password hidden), schema revision, row counts, store size."""
    from llmos_registry import models as m

    counts = {}
    with store.session() as s:
        for cls in (m.Model, m.ModelVersion, m.VersionFile, m.Alias, m.Run, m.RunMetric, m.InstalledPlugin,
                    m.Contributor, m.Submission, m.Review, m.Event):
            counts[cls.__tablename__] = s.scalar(select(func.count()).select_from(cls))
    blobs = n = 0
    for _, path in store.blobs.iter_digests():
        n += 1
        try:
            blobs += path.stat().st_size
        except FileNotFoundError:
            pass
    return {
        "url": _db.redact(store.url),
        "dialect": store.engine.dialect.name,
        "revision": _db.current_revision(store.engine),
        "head": _db.head_revision(),
        "home": str(store.home),
        "counts": counts,
        "blobs": {"count": n, "bytes": blobs, "path": str(store.blobs.base)},
    }

