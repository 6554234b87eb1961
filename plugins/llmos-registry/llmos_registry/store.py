"""The registry's store: database engine and sessions, the blob store, and the few
helpers every part uses (find a version, lock a model row, assemble a VersionInfo).

:class:`llmos_registry.Registry` is this store with the operations of the other modules
(:mod:`~llmos_registry.versions`, :mod:`~llmos_registry.ingest`,
:mod:`~llmos_registry.files`, :mod:`~llmos_registry.compare`,
:mod:`~llmos_registry.maintenance`, :mod:`~llmos_registry.events`,
:mod:`~llmos_registry.runs`) as methods, the way MLflow puts a client over a store.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from llmos.sdk import ConflictError, LlmosError, NotFoundError
from llmos_registry import db as _db
from llmos_registry.blobs import BlobStore
from llmos_registry.models import Alias, LineageEdge, Model, ModelVersion, Tag, VersionFile, VersionMetric, utcnow
from llmos_registry.refs import _no_model, _utc, parse_ref
from llmos_registry.types import VersionInfo


class Store:
    """Engine, sessions, blobs and checkouts of one registry (see :class:`llmos_registry.Registry`)."""

    def __init__(
        self,
        url: str | None = None,
        home: Path | str | None = None,
        *,
        migrate: bool = True,
        notify: Callable[..., Any] | None = None,
    ) -> None:
        from llmos import config

        #: ``notify(hook_name, **kwargs)``, called after a commit (default: the global plugin manager's)
        self._notify_hook = notify

        self.home = Path(home) if home is not None else config.home()
        if url is None:
            url = os.environ.get("LLMOS_DATABASE_URL") or f"sqlite:///{self.home / 'llmos.db'}"
        self.url = url
        self.engine = _db.get_engine(self.url)
        self.write_engine = _db.write_engine(self.engine)
        self.blobs = BlobStore(self.home / "blobs")
        db_file = self.engine.url.database if self.engine.dialect.name == "sqlite" else None
        self._write_lock_path = (
            Path(db_file).expanduser().with_suffix(".write.lock") if db_file and db_file != ":memory:" else None
        )
        self.checkouts = self.home / "checkouts"
        if migrate:
            try:
                _db.ensure_schema(self.engine, self.url)
            except OperationalError as exc:
                raise LlmosError(
                    f"cannot open the registry database {_db.redact(self.url)}: {str(exc.orig).strip().splitlines()[0]}"
                    "; check LLMOS_DATABASE_URL"
                ) from exc


    def __repr__(self) -> str:
        return f"Registry({_db.redact(self.url)!r}, home={str(self.home)!r})"

    def notify(self, hook: str, **kwargs: Any) -> None:
        """Tell plugins what was committed (``llmos_after_version_registered``,
        ``llmos_after_alias_moved``), through the callback given to
        :func:`~llmos_registry.open_registry` or else the process-wide plugin manager. A
        hook problem is a warning: the write is committed and stays."""
        try:
            if self._notify_hook is not None:
                self._notify_hook(hook, **kwargs)
                return
            from llmos.sdk import get_manager

            get_manager().notify(hook, **kwargs)
        except LlmosError as exc:
            print(f"Warning: {hook} not delivered: {exc.message}", file=sys.stderr)


    @contextmanager
    def session(self, write: bool = False) -> Iterator[Session]:
        """A session in one transaction, committed on success and rolled back on error.

        ``write=True`` takes SQLite's write lock at ``BEGIN`` (``BEGIN IMMEDIATE``), which
        is what keeps concurrent writers from failing with "database is locked".
        """
        if write and self._write_lock_path is not None:
            # Writers queue on a file lock first: it wakes the next writer the moment
            # the previous one commits, where SQLite's busy handler polls with sleeps.
            import fcntl

            fd = os.open(self._write_lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                with Session(self.write_engine, expire_on_commit=False) as s:
                    with s.begin():
                        yield s
            finally:
                os.close(fd)  # releases the lock
            return
        with Session(self.write_engine if write else self.engine, expire_on_commit=False) as s:
            with s.begin():
                yield s


    def _lock_model(self, s: Session, name: str, *, create: str | None = None) -> Model:
        """The model row, locked for this write transaction (created when ``create``
        is not ``None``, with that description)."""
        from llmos_registry.models import name_key

        dialect = s.get_bind().dialect.name
        key = name_key(name)
        if create is not None:
            values = {"name": name, "name_key": key, "description": create, "last_version": 0, "created_at": utcnow()}
            # no conflict target: a clash on name or on name_key both leave the row as it is
            if dialect == "postgresql":
                from sqlalchemy.dialects.postgresql import insert as pg_insert

                s.execute(pg_insert(Model).values(**values).on_conflict_do_nothing())
            elif dialect == "sqlite":
                from sqlalchemy.dialects.sqlite import insert as sqlite_insert

                s.execute(sqlite_insert(Model).values(**values).on_conflict_do_nothing())
            elif s.scalar(select(Model.id).where(Model.name_key == key)) is None:
                s.add(Model(**values))
                s.flush()
        model = s.scalar(select(Model).where(Model.name_key == key).with_for_update())
        if model is None:
            _no_model(s, name)
        if model.name != name:
            raise ConflictError(
                f"model name {name!r} clashes with the existing model {model.name!r}: names are unique "
                f"case-insensitively; use {model.name!r} (or another name)"
            )
        return model


    def _find(self, s: Session, ref: str, *, allow_deleted: bool = False) -> ModelVersion:
        """The version ``ref`` names: one indexed query when it exists."""
        name, kind, value = parse_ref(ref)
        base = select(ModelVersion).join(Model, Model.id == ModelVersion.model_id).where(Model.name == name)
        if kind == "latest":
            v = s.scalar(
                base.where(ModelVersion.status == "ready").order_by(ModelVersion.number.desc()).limit(1)
            )
            if v is None:
                self._check_model(s, name)
                raise NotFoundError(f"model {name!r} has no ready version (see: llmos model versions {name})")
            return v
        if kind == "alias":
            # drive the lookup from the alias (unique on model, name), then the version's
            # primary key: a join lets SQLite walk every version of the model instead
            alias_target = (
                select(Alias.version_id)
                .join(Model, Model.id == Alias.model_id)
                .where(Model.name == name, Alias.name == value)
                .scalar_subquery()
            )
            v = s.scalar(select(ModelVersion).where(ModelVersion.id == alias_target))
            if v is None:
                self._check_model(s, name)
                raise NotFoundError(f"model {name!r} has no alias {value!r} (set one: llmos model alias set {name} {value} N)")
            return v
        v = s.scalar(base.where(ModelVersion.number == value))
        if v is None:
            self._check_model(s, name)
            raise NotFoundError(f"model {name!r} has no version {value} (see: llmos model versions {name})")
        if v.status == "deleted" and not allow_deleted:
            raise NotFoundError(f"{name}:{value} was deleted; its number is not reused (see: llmos model versions {name})")
        return v


    @staticmethod
    def _check_model(s: Session, name: str) -> None:
        if s.scalar(select(Model.id).where(Model.name == name)) is None:
            _no_model(s, name)


    def _info(self, s: Session, v: ModelVersion, name: str | None = None, *, files: bool = True) -> VersionInfo:
        name = name or s.scalar(select(Model.name).where(Model.id == v.model_id))
        assert name is not None
        file_rows = (
            s.execute(
                select(VersionFile.path, VersionFile.size, VersionFile.sha256, VersionFile.kind)
                .where(VersionFile.version_id == v.id)
                .order_by(VersionFile.path)
            ).all()
            if files
            else []
        )
        metrics = dict(s.execute(select(VersionMetric.name, VersionMetric.value).where(VersionMetric.version_id == v.id)).all())
        tags = dict(s.execute(select(Tag.key, Tag.value).where(Tag.version_id == v.id)).all())
        parents = [
            f"{m}:{n}"
            for m, n in s.execute(
                select(Model.name, ModelVersion.number)
                .join(ModelVersion, ModelVersion.model_id == Model.id)
                .join(LineageEdge, LineageEdge.parent_id == ModelVersion.id)
                .where(LineageEdge.child_id == v.id)
                .order_by(Model.name, ModelVersion.number)
            ).all()
        ]
        aliases = sorted(s.scalars(select(Alias.name).where(Alias.version_id == v.id)).all())
        return version_info(
            name, v, files=[{"path": p, "size": sz, "sha256": h, "kind": k} for p, sz, h, k in file_rows],
            metrics=metrics, tags=tags, parents=parents, aliases=aliases,
        )



def version_info(
    model: str,
    v: Any,
    *,
    files: list[dict[str, Any]] | None = None,
    metrics: dict[str, float] | None = None,
    tags: dict[str, str] | None = None,
    parents: list[str] | None = None,
    aliases: list[str] | None = None,
) -> VersionInfo:
    """The one place a :class:`VersionInfo` is assembled, from a version row ``v``
    (an ORM :class:`ModelVersion`, a result row, or anything with ``number``,
    ``status``, ``lineage``, ``created_at``, ``size_bytes``, ``description`` and
    ``run_id``) and what was read beside it."""
    return VersionInfo(
        model=model,
        number=v.number,
        ref=f"{model}:{v.number}",
        files=[{"path": f["path"], "size": f["size"], "sha256": f["sha256"], "kind": f["kind"]} for f in files or []],
        metrics=dict(metrics or {}),
        tags=dict(tags or {}),
        parents=list(parents or []),
        lineage=dict(v.lineage or {}),
        status=v.status,
        created_at=_utc(v.created_at),
        size_bytes=v.size_bytes,
        description=v.description or "",
        aliases=sorted(aliases or []),
        run_id=v.run_id,
    )
