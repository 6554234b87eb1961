"""The registry API: model versions over a content-addressed blob store, and runs.

See DESIGN.md §3 and §7 ("Registry API"). Every write is one transaction; blobs are
written (temp file, fsync, rename) before the rows that reference them are committed,
so a crash at any point leaves no partial version — only unreferenced blobs, which
``gc`` removes.
"""

from __future__ import annotations

import datetime as dt
import math
import mmap
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, aliased

from llmos.errors import ConflictError, LlmosError, NotFoundError, ValidationError
from llmos import liveness as _liveness
from llmos.redact import redact
from llmos.registry import db as _db
from llmos.registry import safetensors_io
from llmos.registry.blobs import BlobStats, BlobStore, manifest_digest
from llmos.registry.models import (
    Alias,
    Event,
    FilePart,
    LineageEdge,
    Model,
    ModelVersion,
    Run,
    RunMetric,
    RunStage,
    Tag,
    VersionFile,
    VersionMetric,
    utcnow,
)
from llmos.registry.types import RunInfo, VersionInfo

# whole-string patterns (``fullmatch``: a ``$`` would also match before a final newline)
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")
ALIAS_RE = re.compile(r"[A-Za-z0-9_\-]{1,128}")
KEY_RE = re.compile(r"[A-Za-z0-9_.\-/]{1,128}")
RESERVED_ALIAS = re.compile(r"latest|v\d+")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib")
STATUSES = ("ready", "archived", "deleted")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _why_bad(value: str) -> str:
    if _CONTROL.search(value):
        return " (it contains a control character, e.g. a newline)"
    return ""


# -- references ----------------------------------------------------------------------


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise ValidationError(
            f"invalid model name {name!r}{_why_bad(name) if isinstance(name, str) else ''}: use 1-128 letters, "
            "digits, '.', '_' or '-', starting with a letter or digit"
        )
    return name


def check_alias(alias: str) -> str:
    if not isinstance(alias, str) or not ALIAS_RE.fullmatch(alias):
        raise ValidationError(
            f"invalid alias {alias!r}{_why_bad(alias) if isinstance(alias, str) else ''}: use 1-128 letters, "
            "digits, '_' or '-' (e.g. production)"
        )
    if RESERVED_ALIAS.fullmatch(alias):
        raise ValidationError(
            f"alias {alias!r} is reserved ('latest' and 'v<N>' always mean the newest and version N): pick another name"
        )
    return alias


def parse_ref(ref: str) -> tuple[str, str, str | int | None]:
    """Split a reference: ``name`` → ``(name, "latest", None)``, ``name:3`` →
    ``(name, "number", 3)``, ``name@production`` → ``(name, "alias", "production")``
    (``name@latest`` and ``name@v3`` are accepted too)."""
    if not isinstance(ref, str) or not ref:
        raise ValidationError(f"invalid model reference {ref!r}: use NAME, NAME:VERSION or NAME@ALIAS")
    hint = "use NAME, NAME:VERSION (e.g. quickstart:2) or NAME@ALIAS (e.g. quickstart@production)"
    if "@" in ref:
        name, _, alias = ref.partition("@")
        check_name_in_ref(name, ref, hint)
        if alias == "latest":
            return name, "latest", None
        m = re.fullmatch(r"v(\d+)", alias)
        if m:
            return name, "number", int(m.group(1))
        if not ALIAS_RE.fullmatch(alias or ""):
            raise ValidationError(f"invalid model reference {ref!r}: bad alias {alias!r}{_why_bad(alias)}; {hint}")
        return name, "alias", alias
    if ":" in ref:
        name, _, num = ref.partition(":")
        check_name_in_ref(name, ref, hint)
        if num == "latest":
            return name, "latest", None
        if not re.fullmatch(r"[0-9]{1,18}", num) or int(num) < 1:
            raise ValidationError(f"invalid model reference {ref!r}: version must be a positive integer; {hint}")
        return name, "number", int(num)
    check_name_in_ref(ref, ref, hint)
    return ref, "latest", None


def check_name_in_ref(name: str, ref: str, hint: str) -> None:
    if not NAME_RE.fullmatch(name or ""):
        raise ValidationError(f"invalid model reference {ref!r}: bad model name {name!r}{_why_bad(name or '')}; {hint}")


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)
    return value


def _check_json(value: Any, what: str) -> Any:
    import json

    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"{what} must be JSON-serialisable: {exc}") from exc
    return value


def _check_metrics(metrics: Mapping[str, Any] | None) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in dict(metrics or {}).items():
        if not isinstance(key, str) or not KEY_RE.fullmatch(key):
            raise ValidationError(f"invalid metric name {key!r}: use letters, digits, '_', '.', '-' or '/'")
        try:
            val = float(value)
        except (TypeError, ValueError) as exc:
            raise ValidationError(f"metric {key!r} must be a number, got {value!r}") from exc
        if not math.isfinite(val):
            raise ValidationError(f"metric {key!r} must be finite, got {val}")
        out[key] = val
    return out


def _check_tags(tags: Mapping[str, Any] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in dict(tags or {}).items():
        if not isinstance(key, str) or not KEY_RE.fullmatch(key):
            raise ValidationError(f"invalid tag key {key!r}: use letters, digits, '_', '.', '-' or '/'")
        if value is None or isinstance(value, (dict, list)):
            raise ValidationError(f"tag {key!r} needs a text value, got {value!r}")
        out[key] = str(value)
    return out


# -- the registry ----------------------------------------------------------------------


class Registry:
    """Model versions, aliases, tags, metrics, lineage and runs in one database.

    Use :func:`open_registry`. ``url``: any SQLAlchemy URL (default
    ``$LLMOS_DATABASE_URL`` or SQLite in the home); ``home``: where blobs and
    checkouts live (default ``$LLMOS_HOME``).
    """

    def __init__(self, url: str | None = None, home: Path | str | None = None, *, migrate: bool = True) -> None:
        from llmos import config

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

    # -- sessions ----------------------------------------------------------------

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
        from llmos.registry.models import name_key

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

    # -- reading versions --------------------------------------------------------------

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
        return VersionInfo(
            model=name,
            number=v.number,
            ref=f"{name}:{v.number}",
            files=[{"path": p, "size": sz, "sha256": h, "kind": k} for p, sz, h, k in file_rows],
            metrics=metrics,
            tags=tags,
            parents=parents,
            lineage=dict(v.lineage or {}),
            status=v.status,
            created_at=_utc(v.created_at),
            size_bytes=v.size_bytes,
            description=v.description or "",
            aliases=aliases,
            run_id=v.run_id,
        )

    def resolve(self, ref: str) -> VersionInfo:
        """The version a reference names: ``name`` (latest ready), ``name:3``, ``name@alias``.

        :raises NotFoundError: unknown model, version or alias, or a deleted version.
        """
        with self.session() as s:
            return self._info(s, self._find(s, ref), parse_ref(ref)[0])

    get_version = resolve

    def list_models(self) -> list[dict[str, Any]]:
        """Every model: name, description, version counts, latest ready version, aliases."""
        with self.session() as s:
            models = s.scalars(select(Model).order_by(Model.name)).all()
            counts: dict[tuple[int, str], int] = {
                (mid, st): n
                for mid, st, n in s.execute(
                    select(ModelVersion.model_id, ModelVersion.status, func.count()).group_by(
                        ModelVersion.model_id, ModelVersion.status
                    )
                ).all()
            }
            latest = dict(
                s.execute(
                    select(ModelVersion.model_id, func.max(ModelVersion.number))
                    .where(ModelVersion.status == "ready")
                    .group_by(ModelVersion.model_id)
                ).all()
            )
            alias_rows = s.execute(
                select(Alias.model_id, Alias.name, ModelVersion.number).join(
                    ModelVersion, ModelVersion.id == Alias.version_id
                )
            ).all()
            aliases: dict[int, dict[str, int]] = {}
            for mid, alias, num in alias_rows:
                aliases.setdefault(mid, {})[alias] = num
            return [
                {
                    "name": m.name,
                    "description": m.description,
                    "versions": sum(counts.get((m.id, st), 0) for st in ("ready", "archived")),
                    "ready": counts.get((m.id, "ready"), 0),
                    "deleted": counts.get((m.id, "deleted"), 0),
                    "latest": latest.get(m.id),
                    "aliases": dict(sorted(aliases.get(m.id, {}).items())),
                    "created_at": _utc(m.created_at).isoformat() if m.created_at else None,
                }
                for m in models
            ]

    def list_versions(self, name: str, *, include_deleted: bool = False) -> list[VersionInfo]:
        """The versions of a model, oldest first (deleted tombstones only if asked)."""
        check_name(name)
        with self.session() as s:
            model_id = s.scalar(select(Model.id).where(Model.name == name))
            if model_id is None:
                _no_model(s, name)
            q = (
                select(ModelVersion.id, ModelVersion.number, ModelVersion.status, ModelVersion.lineage,
                       ModelVersion.created_at, ModelVersion.size_bytes, ModelVersion.description,
                       ModelVersion.run_id)
                .where(ModelVersion.model_id == model_id)
                .order_by(ModelVersion.number)
            )
            if not include_deleted:
                q = q.where(ModelVersion.status != "deleted")
            versions = s.execute(q).all()  # rows, not ORM objects: ~3x faster for 100,000
            # four queries for all versions (not four per version): models may have 100,000
            metrics: dict[int, dict[str, float]] = {}
            for vid, key, value in s.execute(
                select(VersionMetric.version_id, VersionMetric.name, VersionMetric.value)
                .join(ModelVersion, ModelVersion.id == VersionMetric.version_id)
                .where(ModelVersion.model_id == model_id)
            ).all():
                metrics.setdefault(vid, {})[key] = value
            tags: dict[int, dict[str, str]] = {}
            for vid, key, value in s.execute(
                select(Tag.version_id, Tag.key, Tag.value)
                .join(ModelVersion, ModelVersion.id == Tag.version_id)
                .where(ModelVersion.model_id == model_id)
            ).all():
                tags.setdefault(vid, {})[key] = value
            aliases: dict[int, list[str]] = {}
            for vid, alias in s.execute(
                select(Alias.version_id, Alias.name).where(Alias.model_id == model_id).order_by(Alias.name)
            ).all():
                aliases.setdefault(vid, []).append(alias)
            parents: dict[int, list[str]] = {}
            parent_version = aliased(ModelVersion)
            parent_model = aliased(Model)
            for vid, pname, pnum in s.execute(
                select(LineageEdge.child_id, parent_model.name, parent_version.number)
                .join(ModelVersion, ModelVersion.id == LineageEdge.child_id)
                .join(parent_version, parent_version.id == LineageEdge.parent_id)
                .join(parent_model, parent_model.id == parent_version.model_id)
                .where(ModelVersion.model_id == model_id)
                .order_by(parent_model.name, parent_version.number)
            ).all():
                parents.setdefault(vid, []).append(f"{pname}:{pnum}")
            return [
                VersionInfo(
                    model=name, number=v.number, ref=f"{name}:{v.number}", files=[],
                    metrics=metrics.get(v.id, {}), tags=tags.get(v.id, {}), parents=parents.get(v.id, []),
                    lineage=dict(v.lineage or {}), status=v.status, created_at=_utc(v.created_at),
                    size_bytes=v.size_bytes, description=v.description or "", aliases=aliases.get(v.id, []),
                    run_id=v.run_id,
                )
                for v in versions
            ]

    def tensors(self, ref: str) -> dict[str, dict[str, Any]]:
        """Tensors of a version: ``name → {"file", "dtype", "shape", "size", "sha256"}``;
        files that are not safetensors appear as ``{"file": path, ...}`` under their path."""
        with self.session() as s:
            v = self._find(s, ref)
            return self._tensors(s, v)

    def _tensors(self, s: Session, v: ModelVersion) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        rows = s.execute(
            select(VersionFile.path, FilePart.name, FilePart.dtype, FilePart.shape, FilePart.size, FilePart.sha256)
            .join(FilePart, FilePart.file_id == VersionFile.id)
            .where(VersionFile.version_id == v.id)
            .order_by(VersionFile.path, FilePart.seq)
        ).all()
        for path, name, dtype, shape, size, sha in rows:
            if name in (safetensors_io.HEADER, safetensors_io.GAP):
                continue
            key = name if name not in out else f"{path}:{name}"
            out[key] = {"file": path, "dtype": dtype, "shape": shape, "size": size, "sha256": sha}
        return out

    # -- registering -------------------------------------------------------------------

    def register_version(
        self,
        name: str,
        path: Path | str,
        *,
        description: str = "",
        tags: Mapping[str, Any] | None = None,
        metrics: Mapping[str, Any] | None = None,
        parents: Sequence[str] | None = None,
        lineage: Mapping[str, Any] | None = None,
        aliases: Sequence[str] | None = None,
        run_id: str | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> VersionInfo:
        """Register the files at ``path`` (a Hugging Face layout directory or a single
        ``.safetensors`` file) as the next version of model ``name``.

        :param parents: refs of the versions this one derives from.
        :param lineage: ``{"run_id", "method", "settings", "data"}`` (any JSON).
        :param aliases: aliases to point at the new version in the same transaction.
        :param progress: called with the number of bytes processed, as they are.
        :returns: the new version (``stored_bytes``/``reused_bytes`` say what the blob
            store had to write).
        :raises ValidationError: bad name, tags, metrics, files (nothing is written).
        :raises NotFoundError: a parent does not exist.
        """
        check_name(name)
        tag_values = _check_tags(tags)
        metric_values = _check_metrics(metrics)
        alias_names = [check_alias(a) for a in (aliases or [])]
        lineage_data = dict(_check_json(redact(dict(lineage or {})), "lineage"))
        if run_id is None and isinstance(lineage_data.get("run_id"), str):
            run_id = lineage_data["run_id"]
        parent_refs = list(dict.fromkeys(parents or []))
        for ref in parent_refs:
            parse_ref(ref)
        files = _collect_files(Path(path))
        layouts = {rel: safetensors_io.read_layout(src) for rel, src in files if rel.endswith(".safetensors")}
        with self.session() as s:  # fail early, before writing any blob
            for ref in parent_refs:
                self._find(s, ref)
            if run_id is not None and s.get(Run, run_id) is None:
                raise NotFoundError(f"run {run_id!r} does not exist (see: llmos runs list)")

        from llmos.registry import pins

        stats = BlobStats()
        # the pin is committed before the first blob is written or reused: gc keeps
        # them whatever its grace, until the version that references them is committed
        written: list[tuple[str, int]] = []
        committed = False
        try:
            with pins.pinned(self.session, f"register {name}"):
                try:
                    manifest = self._ingest(files, layouts, stats, progress, written)

                    size_bytes = sum(f["size"] for f in manifest)
                    with self.session(write=True) as s:
                        model = self._lock_model(s, name, create=description)
                        parent_versions = [self._find(s, ref) for ref in parent_refs]
                        model.last_version += 1
                        number = model.last_version
                        created = utcnow()
                        s.flush()
                        # Core bulk inserts: the write lock is held for as short a time as possible
                        version_id = s.execute(
                            insert(ModelVersion)
                            .values(model_id=model.id, number=number, status="ready", description=description,
                                    size_bytes=size_bytes, lineage=lineage_data, run_id=run_id, created_at=created)
                            .returning(ModelVersion.id)
                        ).scalar_one()
                        file_ids = s.execute(
                            insert(VersionFile).returning(VersionFile.id, sort_by_parameter_order=True),
                            [{"version_id": version_id, "path": f["path"], "kind": f["kind"], "sha256": f["sha256"],
                              "size": f["size"]} for f in manifest],
                        ).scalars().all()
                        part_rows = [{"file_id": fid, **p} for fid, f in zip(file_ids, manifest) for p in f.get("parts", [])]
                        if part_rows:
                            s.execute(insert(FilePart), part_rows)
                        if tag_values:
                            s.execute(insert(Tag), [{"version_id": version_id, "key": k, "value": v} for k, v in tag_values.items()])
                        if metric_values:
                            s.execute(insert(VersionMetric), [{"version_id": version_id, "name": k, "value": v, "logged_at": created}
                                                              for k, v in metric_values.items()])
                        unique_parents = {p.id: p for p in parent_versions}
                        if unique_parents:
                            s.execute(insert(LineageEdge), [{"child_id": version_id, "parent_id": pid} for pid in unique_parents])
                        version = s.get(ModelVersion, version_id)
                        assert version is not None
                        moved = [self._move_alias(s, model, a, version) for a in alias_names]
                        parent_names = {p.model_id: parse_ref(r)[0] for r, p in zip(parent_refs, parent_versions)}
                        parent_list = sorted({(parent_names[p.model_id], p.number) for p in parent_versions})
                        s.add(
                            Event(
                                kind="version.registered",
                                subject=f"{name}:{number}",
                                data={"files": len(manifest), "size_bytes": size_bytes, "stored_bytes": stats.written_bytes,
                                      "parents": [f"{m}:{n}" for m, n in parent_list]},
                            )
                        )
                    committed = True  # the transaction above has committed
                    self._verify_stored(manifest, files, layouts)
                except BaseException:
                    if not committed:
                        self._discard(written)
                    raise
        except OSError as exc:
            raise _store_error(exc, self.blobs.base) from None
        except OperationalError as exc:
            raise _db_error(exc, self.url) from None
        info = VersionInfo(
            model=name,
            number=number,
            ref=f"{name}:{number}",
            files=[{"path": f["path"], "size": f["size"], "sha256": f["sha256"], "kind": f["kind"]} for f in manifest],
            metrics=metric_values,
            tags=tag_values,
            parents=[f"{m}:{n}" for m, n in parent_list],
            lineage=lineage_data,
            status="ready",
            created_at=created,
            size_bytes=size_bytes,
            description=description,
            aliases=sorted(set(alias_names)),
            run_id=run_id,
        )
        info.stored_bytes = stats.written_bytes
        info.reused_bytes = stats.reused_bytes
        _notify("llmos_after_version_registered", version=info)
        for alias, old in moved:
            _notify("llmos_after_alias_moved", model=name, alias=alias, old_version=old, new_version=number)
        return info

    def _ingest(
        self,
        files: list[tuple[str, Path]],
        layouts: dict[str, list[safetensors_io.Part]],
        stats: BlobStats,
        progress: Callable[[int], None] | None,
        written: list[tuple[str, int]] | None = None,
    ) -> list[dict[str, Any]]:
        """Store every file's blobs (whole files, or header + one blob per tensor).

        Blobs are hashed, written and fsynced by a pool of threads: sha256 releases the
        GIL, and concurrent fsyncs share the file system's journal commits — one fsync
        after another costs a commit each, which dominates for a 100-tensor model.
        """
        from concurrent.futures import ThreadPoolExecutor

        opened: list[tuple[int, mmap.mmap | None, memoryview | None]] = []
        try:
            jobs: list[tuple[str, list[safetensors_io.Part] | None, int, Any]] = []
            with ThreadPoolExecutor(max_workers=8, thread_name_prefix="llmos-blob") as pool:
                for rel, src in files:
                    try:  # a link swapped in after validation is not followed
                        fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW)
                    except OSError as exc:
                        raise ValidationError(f"cannot read {src}: {exc.strerror}; register again") from None
                    size = os.fstat(fd).st_size
                    mm = mmap.mmap(fd, size, access=mmap.ACCESS_READ) if size else None
                    view = memoryview(mm) if mm is not None else None
                    opened.append((fd, mm, view))
                    parts = layouts.get(rel)
                    if parts is not None and parts[-1].offset + parts[-1].size != size:
                        raise ValidationError(f"{src} changed while being registered; try again")
                    ranges = [(p.offset, p.size) for p in parts] if parts is not None else [(0, size)]
                    futures = [pool.submit(self._put, fd, off, n, view, written) for off, n in ranges]
                    jobs.append((rel, parts, size, futures))
                manifest = []
                for rel, parts, size, futures in jobs:
                    results = [f.result() for f in futures]
                    if parts is None:
                        (digest, written), = results
                        _count(stats, size, written)
                        if progress:
                            progress(size)
                        manifest.append({"path": rel, "kind": "blob", "sha256": digest, "size": size})
                        continue
                    rows = []
                    for seq, (part, (digest, written)) in enumerate(zip(parts, results)):
                        _count(stats, part.size, written)
                        rows.append({"seq": seq, "name": part.name, "sha256": digest, "size": part.size,
                                     "dtype": part.dtype, "shape": part.shape})
                        if progress:
                            progress(part.size)
                    manifest.append({"path": rel, "kind": "safetensors",
                                     "sha256": manifest_digest(r["sha256"] for r in rows), "size": size,
                                     "parts": rows})
            return manifest
        finally:
            for fd, mm, view in opened:
                if view is not None:
                    view.release()
                if mm is not None:
                    mm.close()
                os.close(fd)

    def _put(
        self, fd: int, offset: int, size: int, view: memoryview | None, written: list[tuple[str, int]] | None
    ) -> tuple[str, bool]:
        digest, new = self.blobs.put_range(fd, offset, size, view)
        if new and written is not None:  # (digest, mtime): a failed register removes what it wrote
            try:
                written.append((digest, self.blobs.path(digest).stat().st_mtime_ns))
            except FileNotFoundError:
                pass
        return digest, new

    def _discard(self, written: list[tuple[str, int]]) -> int:
        """Remove the blobs a failed register wrote, at once (not after gc's grace):
        all but those another version references or another writer touched since."""
        if not written:
            return 0
        try:
            with self.session() as s:
                used = self._referenced(s)
        except Exception:  # noqa: BLE001 - the database may be what failed: rely on the mtimes
            used = set()
        freed = 0
        for digest, mtime_ns in written:
            if digest not in used:
                freed += self.blobs.remove_unless_touched(self.blobs.path(digest), mtime_ns) or 0
        return freed

    def _verify_stored(
        self, manifest: list[dict[str, Any]], files: list[tuple[str, Path]], layouts: dict[str, list[safetensors_io.Part]]
    ) -> None:
        """After the commit, while still pinned: every blob the version uses is there
        (a gc that decided before the pin could be seen may have removed one); any
        missing is written again from the source."""
        digests = [f["sha256"] for f in manifest if f["kind"] == "blob"]
        digests += [p["sha256"] for f in manifest for p in f.get("parts", [])]
        if all(self.blobs.exists(d) for d in digests):
            return
        again = self._ingest(files, layouts, BlobStats(), None)
        if again != manifest or not all(self.blobs.exists(d) for d in digests):
            raise LlmosError("the files changed while being registered and blobs went missing; run: llmos model fsck")

    # -- aliases, tags, metrics, status -------------------------------------------------

    def _move_alias(self, s: Session, model: Model, alias: str, version: ModelVersion) -> tuple[str, int | None]:
        row = s.scalar(select(Alias).where(Alias.model_id == model.id, Alias.name == alias))
        old: int | None = None
        if row is None:
            s.add(Alias(model_id=model.id, name=alias, version_id=version.id, updated_at=utcnow()))
        else:
            old = s.scalar(select(ModelVersion.number).where(ModelVersion.id == row.version_id))
            row.version_id = version.id
            row.updated_at = utcnow()
        s.add(Event(kind="alias.moved", subject=f"{model.name}@{alias}", data={"old": old, "new": version.number}))
        return alias, old

    def set_alias(self, name: str, alias: str, version: int | str) -> VersionInfo:
        """Point ``name@alias`` at version ``version`` (moves it atomically if it exists).

        :raises ValidationError: bad or reserved alias.
        :raises NotFoundError: unknown model or version, or a deleted version.
        """
        check_name(name)
        check_alias(alias)
        number = _version_number(name, version)
        with self.session(write=True) as s:
            model = self._lock_model(s, name)
            v = self._find(s, f"{name}:{number}")
            _, old = self._move_alias(s, model, alias, v)
            info = self._info(s, v, name, files=False)
        _notify("llmos_after_alias_moved", model=name, alias=alias, old_version=old, new_version=number)
        return info

    def remove_alias(self, name: str, alias: str) -> int:
        """Remove ``name@alias``. :returns: the version it pointed at."""
        check_name(name)
        with self.session(write=True) as s:
            model = self._lock_model(s, name)
            row = s.scalar(select(Alias).where(Alias.model_id == model.id, Alias.name == alias))
            if row is None:
                raise NotFoundError(f"model {name!r} has no alias {alias!r} (see: llmos model show {name})")
            old = s.scalar(select(ModelVersion.number).where(ModelVersion.id == row.version_id))
            s.delete(row)
            s.add(Event(kind="alias.removed", subject=f"{name}@{alias}", data={"old": old}))
        _notify("llmos_after_alias_moved", model=name, alias=alias, old_version=old, new_version=None)
        assert old is not None
        return old

    def set_tags(self, ref: str, tags: Mapping[str, Any], *, remove: Iterable[str] = ()) -> VersionInfo:
        """Set (or with ``remove``, delete) tags of a version."""
        values = _check_tags(tags)
        name = parse_ref(ref)[0]
        with self.session(write=True) as s:
            self._lock_model(s, name)
            v = self._find(s, ref)
            existing = {t.key: t for t in s.scalars(select(Tag).where(Tag.version_id == v.id)).all()}
            for key in remove:
                if key in existing:
                    s.delete(existing.pop(key))
            s.flush()
            for key, value in values.items():
                if key in existing:
                    existing[key].value = value
                else:
                    s.add(Tag(version_id=v.id, key=key, value=value))
            s.add(Event(kind="version.tagged", subject=f"{name}:{v.number}", data={"set": values, "removed": list(remove)}))
            s.flush()
            return self._info(s, v, name, files=False)

    def log_metrics(self, ref: str, metrics: Mapping[str, Any]) -> VersionInfo:
        """Record (or update) metrics of a version, e.g. after evaluating it."""
        values = _check_metrics(metrics)
        name = parse_ref(ref)[0]
        with self.session(write=True) as s:
            self._lock_model(s, name)
            v = self._find(s, ref)
            existing = {m.name: m for m in s.scalars(select(VersionMetric).where(VersionMetric.version_id == v.id))}
            for key, value in values.items():
                if key in existing:
                    existing[key].value = value
                    existing[key].logged_at = utcnow()
                else:
                    s.add(VersionMetric(version_id=v.id, name=key, value=value))
            s.flush()
            return self._info(s, v, name, files=False)

    def archive(self, ref: str) -> VersionInfo:
        """Mark a version archived: kept and loadable by number, but no longer ``latest``."""
        return self._set_status(ref, "archived")

    def restore(self, ref: str) -> VersionInfo:
        """Make an archived version ready again."""
        return self._set_status(ref, "ready")

    def _set_status(self, ref: str, status: str) -> VersionInfo:
        name = parse_ref(ref)[0]
        with self.session(write=True) as s:
            self._lock_model(s, name)
            v = self._find(s, ref)
            v.status = status
            s.add(Event(kind=f"version.{status}", subject=f"{name}:{v.number}", data={}))
            s.flush()
            return self._info(s, v, name, files=False)

    def delete(self, ref: str) -> VersionInfo:
        """Delete a version: its row stays as a tombstone (the number is never reused),
        its files and aliases go; ``gc`` later frees blobs nothing else uses."""
        name = parse_ref(ref)[0]
        with self.session(write=True) as s:
            self._lock_model(s, name)
            v = self._find(s, ref)
            info = self._info(s, v, name)
            removed = list(s.execute(select(Alias.name).where(Alias.version_id == v.id)).scalars())
            s.execute(delete(Alias).where(Alias.version_id == v.id))
            file_ids = select(VersionFile.id).where(VersionFile.version_id == v.id)
            s.execute(delete(FilePart).where(FilePart.file_id.in_(file_ids)))
            s.execute(delete(VersionFile).where(VersionFile.version_id == v.id))
            v.status = "deleted"
            v.deleted_at = utcnow()
            s.add(Event(kind="version.deleted", subject=f"{name}:{v.number}", data={"aliases": removed}))
        shutil.rmtree(self.checkouts / name / str(info.number), ignore_errors=True)
        for alias in removed:
            _notify("llmos_after_alias_moved", model=name, alias=alias, old_version=info.number, new_version=None)
        info.status = "deleted"
        return info

    # -- files out ------------------------------------------------------------------

    def checkout(self, ref: str) -> Path:
        """Materialise a version as a read-only directory
        ``$LLMOS_HOME/checkouts/<model>/<n>/`` (built in a temporary directory and
        renamed into place, so it is either complete or absent) and return it.

        An existing checkout is reused only if its files still have the sizes and
        mtimes recorded when it was built; one that was
        edited is materialised again (the record is ``<model>/.<n>.stamp.json``, beside
        it). ``fsck`` re-hashes checkouts fully.
        """
        with self.session() as s:
            v = self._find(s, ref)
            name = s.scalar(select(Model.name).where(Model.id == v.model_id))
            number = v.number
            dest = self.checkouts / str(name) / str(number)
            if dest.is_dir() and _stamp_intact(dest):
                return dest
            files, parts = self._file_rows(s, v.id)
        return self._materialise(f"{name}:{number}", dest, files, parts)

    @staticmethod
    def _file_rows(s: Session, version_id: int) -> tuple[list[Any], dict[int, list[tuple[str, int]]]]:
        files = s.execute(
            select(VersionFile.id, VersionFile.path, VersionFile.kind, VersionFile.sha256, VersionFile.size)
            .where(VersionFile.version_id == version_id)
            .order_by(VersionFile.path)
        ).all()
        parts: dict[int, list[tuple[str, int]]] = {}
        for fid, sha, size in s.execute(
            select(FilePart.file_id, FilePart.sha256, FilePart.size)
            .join(VersionFile, VersionFile.id == FilePart.file_id)
            .where(VersionFile.version_id == version_id)
            .order_by(FilePart.file_id, FilePart.seq)
        ).all():
            parts.setdefault(fid, []).append((sha, size))
        return list(files), parts

    def _materialise(self, ref: str, dest: Path, files: list[Any], parts: dict[int, list[tuple[str, int]]]) -> Path:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".tmp-{dest.name}-"))
        try:
            for fid, rel, kind, sha, size in files:
                if rel.startswith("/") or ".." in rel.split("/"):
                    raise LlmosError(f"{ref} lists an unsafe file path {rel!r}; the database was altered")
                out = tmp / rel
                out.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                try:
                    digests = [d for d, _ in parts.get(fid, [])] if kind == "safetensors" else [sha]
                    written = 0
                    for d in digests:
                        try:
                            written += self.blobs.copy_into(d, fd)
                        except FileNotFoundError:
                            raise LlmosError(
                                f"blob {d[:12]}… of {ref}/{rel} is missing from {self.blobs.base}; run: llmos model fsck"
                            ) from None
                    if written != size:
                        raise LlmosError(f"{ref}/{rel} reassembled to {written} bytes, expected {size}; run: llmos model fsck")
                finally:
                    os.close(fd)
                os.chmod(out, 0o444)
            _write_stamp(tmp, dest)  # before the rename: a crash in between only costs a rebuild
            old: Path | None = None
            if dest.is_dir():  # an edited checkout: swap the fresh one in
                old = dest.with_name(f".tmp-{dest.name}-old-{uuid.uuid4().hex[:8]}")
                try:
                    os.rename(dest, old)
                except FileNotFoundError:
                    old = None
            try:
                os.rename(tmp, dest)
            except OSError:
                if not dest.is_dir():
                    raise
                shutil.rmtree(tmp, ignore_errors=True)  # another process won the race
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return dest

    def verify_checkouts(self, *, repair: bool = False) -> list[dict[str, Any]]:
        """Re-hash every checkout against its version's digests. :returns: the bad ones,
        ``{"ref", "path", "modified", "missing", "extra", "repaired"}``; with ``repair``
        each is materialised again (checkouts of deleted versions are left to gc)."""
        bad: list[dict[str, Any]] = []
        if not self.checkouts.is_dir():
            return bad
        with self.session() as s:
            rows = s.execute(
                select(Model.name, ModelVersion.number, ModelVersion.id)
                .join(ModelVersion, ModelVersion.model_id == Model.id)
                .where(ModelVersion.status != "deleted")
            ).all()
            wanted = {(m, str(n)): vid for m, n, vid in rows}
            for mdir in sorted(p for p in self.checkouts.iterdir() if p.is_dir()):
                for vdir in sorted(p for p in mdir.iterdir() if p.is_dir() and not p.name.startswith(".")):
                    vid = wanted.get((mdir.name, vdir.name))
                    if vid is None:
                        continue
                    files, parts = self._file_rows(s, vid)
                    problems = _check_checkout(vdir, files, parts)
                    if problems:
                        bad.append({"ref": f"{mdir.name}:{vdir.name}", "path": str(vdir), **problems,
                                    "files": files, "parts": parts})
        for item in bad:
            files, parts = item.pop("files"), item.pop("parts")
            item["repaired"] = False
            if repair:
                self._materialise(item["ref"], Path(item["path"]), files, parts)
                item["repaired"] = True
        return bad

    def export(
        self, ref: str, dest: Path | str, *, format: str = "hf", settings: Mapping[str, Any] | None = None
    ) -> list[Path]:
        """Write a version to ``dest``: ``hf``/``safetensors`` copy its files (a Hugging
        Face layout directory); any other format ``X`` uses the component
        ``deployment.X`` (its ``export(version_dir, out_dir) -> list[Path]``)."""
        dest = Path(dest)
        if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
            raise ConflictError(f"{dest} already exists and is not an empty directory: choose a new destination")
        if format not in ("hf", "safetensors") and not re.fullmatch(r"[\w\-.]+", format):
            raise ValidationError(f"invalid export format {format!r}")
        if format not in ("hf", "safetensors"):
            from llmos.plugins import get_manager

            try:
                component = get_manager().get_component(f"deployment.{format}")
            except NotFoundError as exc:
                raise NotFoundError(
                    f"no exporter for format {format!r}: {exc.message}; use --format hf or install a plugin providing deployment.{format}"
                ) from exc
            exporter = component.create(dict(settings or {}))
            if not hasattr(exporter, "export"):
                raise LlmosError(f"component deployment.{format} cannot export (it has no export(version_dir, out_dir) method)")
        elif settings:
            raise ValidationError(f"format {format!r} takes no settings, got {sorted(settings)}")
        src = self.checkout(ref)
        if format not in ("hf", "safetensors"):
            dest.mkdir(parents=True, exist_ok=True)
            return [Path(p) for p in exporter.export(src, dest)]
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}-"))
        try:
            out: list[Path] = []
            for f in sorted(p for p in src.rglob("*") if p.is_file()):
                target = tmp / f.relative_to(src)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(f, target)
                out.append(dest / f.relative_to(src))
            if dest.exists():
                dest.rmdir()
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.rename(tmp, dest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return out

    # -- comparing and lineage ------------------------------------------------------------

    def diff(self, a: str, b: str) -> dict[str, Any]:
        """What changed from version ``a`` to ``b``: tensors changed/added/removed
        (safetensors), other files, sizes and metric deltas."""
        with self.session() as s:
            va, vb = self._find(s, a), self._find(s, b)
            ia, ib = self._info(s, va), self._info(s, vb)
            ta, tb = self._tensors(s, va), self._tensors(s, vb)
        changed, added, removed, same_bytes = [], [], [], 0
        for key in sorted(set(ta) | set(tb)):
            x, y = ta.get(key), tb.get(key)
            if x is None:
                added.append({"name": key, **_tensor_brief(y)})
            elif y is None:
                removed.append({"name": key, **_tensor_brief(x)})
            elif x["sha256"] != y["sha256"]:
                changed.append(
                    {"name": key, "a": _tensor_brief(x), "b": _tensor_brief(y)}
                )
            else:
                same_bytes += x["size"]
        fa = {f["path"]: f for f in ia.files}
        fb = {f["path"]: f for f in ib.files}
        files = {
            "added": sorted(set(fb) - set(fa)),
            "removed": sorted(set(fa) - set(fb)),
            "changed": sorted(p for p in set(fa) & set(fb) if fa[p]["sha256"] != fb[p]["sha256"]),
        }
        metrics = {}
        for key in sorted(set(ia.metrics) | set(ib.metrics)):
            x, y = ia.metrics.get(key), ib.metrics.get(key)
            metrics[key] = {"a": x, "b": y, "delta": (y - x) if x is not None and y is not None else None}
        return {
            "a": ia.ref,
            "b": ib.ref,
            "tensors": {
                "changed": changed,
                "added": added,
                "removed": removed,
                "unchanged": len([k for k in set(ta) & set(tb) if ta[k]["sha256"] == tb[k]["sha256"]]),
            },
            "files": files,
            "size": {"a": ia.size_bytes, "b": ib.size_bytes, "delta": ib.size_bytes - ia.size_bytes,
                     "shared_tensor_bytes": same_bytes},
            "metrics": metrics,
        }

    def lineage(self, ref: str, *, max_depth: int = 50) -> dict[str, Any]:
        """The version with its ancestors as a tree: ``{"ref", "status", "method",
        "run_id", "parents": [...same...], "children": [refs]}``."""
        with self.session() as s:
            root = self._find(s, ref, allow_deleted=True)

            def node(v: ModelVersion, depth: int, seen: frozenset[int]) -> dict[str, Any]:
                name = s.scalar(select(Model.name).where(Model.id == v.model_id))
                out = {
                    "ref": f"{name}:{v.number}",
                    "status": v.status,
                    "method": (v.lineage or {}).get("method"),
                    "run_id": v.run_id,
                    "metrics": dict(
                        s.execute(select(VersionMetric.name, VersionMetric.value).where(VersionMetric.version_id == v.id)).all()
                    ),
                    "parents": [],
                }
                if depth < max_depth:
                    parents = s.scalars(
                        select(ModelVersion)
                        .join(LineageEdge, LineageEdge.parent_id == ModelVersion.id)
                        .where(LineageEdge.child_id == v.id)
                        .order_by(ModelVersion.id)
                    ).all()
                    out["parents"] = [node(p, depth + 1, seen | {v.id}) for p in parents if p.id not in seen]
                return out

            tree = node(root, 0, frozenset())
            tree["children"] = [
                f"{m}:{n}"
                for m, n in s.execute(
                    select(Model.name, ModelVersion.number)
                    .join(ModelVersion, ModelVersion.model_id == Model.id)
                    .join(LineageEdge, LineageEdge.child_id == ModelVersion.id)
                    .where(LineageEdge.parent_id == root.id)
                    .order_by(Model.name, ModelVersion.number)
                ).all()
            ]
            return tree

    # -- store maintenance -------------------------------------------------------------

    def _referenced(self, s: Session) -> set[str]:
        """Digests of every blob some version uses."""
        whole = select(VersionFile.sha256).where(VersionFile.kind == "blob")
        parts = select(FilePart.sha256)
        return set(s.scalars(whole.union(parts)).all())

    def _users(self, s: Session, digests: Iterable[str], limit: int = 5) -> dict[str, list[str]]:
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

    def gc(self, grace_seconds: float = 3600.0, *, dry_run: bool = False) -> dict[str, Any]:
        """Remove blobs no version references, and left-over temporary files and
        checkouts of deleted versions. Blobs touched in the last ``grace_seconds`` are
        kept, and so, whatever the grace, is every blob touched since the oldest live
        pin (a register in progress) and since this gc started."""
        import time

        from llmos.registry import pins

        started = time.time()
        with self.session() as s:
            referenced = self._referenced(s)
            live = {
                (m, str(n))
                for m, n in s.execute(
                    select(Model.name, ModelVersion.number)
                    .join(ModelVersion, ModelVersion.model_id == Model.id)
                    .where(ModelVersion.status != "deleted")
                ).all()
            }
            live_pins, stale_pins = pins.live_pins(s, now=started)
        if stale_pins and not dry_run:
            with self.session(write=True) as s:
                pins.drop_pins(s, stale_pins)
        cutoff = started - grace_seconds
        # anything touched after this is (or may be) in use by a register in progress
        keep_since = min([p.created_ts for p in live_pins] + [started]) - pins.MTIME_SLACK_S
        removed = removed_bytes = kept_recent = kept_pinned = temps = 0
        for digest, path in self.blobs.iter_digests():
            if digest in referenced:
                continue
            try:
                st = path.stat()
            except FileNotFoundError:
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
                size = self.blobs.remove_unless_touched(path, st.st_mtime_ns)
            if size is None:
                kept_pinned += 1
                continue
            removed += 1
            removed_bytes += size
        for tmp in self.blobs.iter_temp():
            try:
                st = tmp.stat()
                # a gc's aside copy keeps the blob's mtime: its rename time (ctime) counts
                mtime = max(st.st_mtime, st.st_ctime) if tmp.name.startswith(".gc-") else st.st_mtime
                if mtime <= cutoff and mtime < keep_since:
                    temps += 1
                    if not dry_run:
                        tmp.unlink(missing_ok=True)
            except FileNotFoundError:
                pass
        stale_checkouts = 0
        if self.checkouts.is_dir():
            for mdir in self.checkouts.iterdir():
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
                    if stale and mtime <= cutoff and mtime < keep_since:
                        stale_checkouts += 1
                        if not dry_run:
                            shutil.rmtree(vdir, ignore_errors=True)
        if not dry_run and (removed or temps):
            with self.session(write=True) as s:
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

    def fsck(self, progress: Callable[[int], None] | None = None, *, repair: bool = False) -> dict[str, Any]:
        """Re-hash every blob and every checkout; report missing (referenced but absent)
        and corrupt (content does not match the name) blobs, and checkouts whose files
        differ from their version (``repair``: materialise those again). ``ok`` is true
        when nothing is wrong (or everything wrong was repaired)."""
        with self.session() as s:
            refs = self._referenced(s)
        bad, checked, total = [], 0, 0
        present = set()
        for digest, path in self.blobs.iter_digests():
            actual = self.blobs.hash_file(digest)
            present.add(digest)
            checked += 1
            size = path.stat().st_size if path.exists() else 0
            total += size
            if progress:
                progress(size)
            if actual is not None and actual != digest:
                bad.append((digest, actual))
        absent = sorted(refs - present)
        with self.session() as s:
            users = self._users(s, [d for d, _ in bad] + absent)
        corrupt = [{"sha256": d, "actual": a, "used_by": users.get(d, [])} for d, a in bad]
        missing = [{"sha256": d, "used_by": users.get(d, [])} for d in absent]
        checkouts = self.verify_checkouts(repair=repair and not corrupt and not missing)
        return {
            "ok": not corrupt and not missing and all(c["repaired"] for c in checkouts),
            "checkouts": checkouts,
            "checked_blobs": checked,
            "checked_bytes": total,
            "missing": missing,
            "corrupt": corrupt,
            "unreferenced": len(present - refs),
            "temp_files": len(list(self.blobs.iter_temp())),
        }

    # -- database -------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """URL (password hidden), schema revision, row counts, store size."""
        from llmos.registry import models as m

        counts = {}
        with self.session() as s:
            for cls in (m.Model, m.ModelVersion, m.VersionFile, m.Alias, m.Run, m.RunMetric, m.InstalledPlugin,
                        m.Contributor, m.Submission, m.Review, m.Event):
                counts[cls.__tablename__] = s.scalar(select(func.count()).select_from(cls))
        blobs = n = 0
        for _, path in self.blobs.iter_digests():
            n += 1
            try:
                blobs += path.stat().st_size
            except FileNotFoundError:
                pass
        return {
            "url": _db.redact(self.url),
            "dialect": self.engine.dialect.name,
            "revision": _db.current_revision(self.engine),
            "head": _db.head_revision(),
            "home": str(self.home),
            "counts": counts,
            "blobs": {"count": n, "bytes": blobs, "path": str(self.blobs.base)},
        }

    def record_event(self, kind: str, subject: str, data: Mapping[str, Any] | None = None) -> None:
        """Append an event to the log (one transaction)."""
        payload = _check_json(redact(dict(data or {})), "event data")
        with self.session(write=True) as s:
            s.add(Event(kind=kind, subject=subject, data=payload))

    def events(self, *, kind: str | None = None, subject: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """The newest events first."""
        with self.session() as s:
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

    # -- runs ---------------------------------------------------------------------------

    def create_run(
        self,
        pipeline: str,
        config: Mapping[str, Any] | None = None,
        plugins: Mapping[str, Any] | None = None,
        parent_run: str | None = None,
        *,
        workdir: Path | str | None = None,
        run_id: str | None = None,
    ) -> str:
        """Record a new run (status ``running``). :returns: its id."""
        from llmos.runs import new_run_id

        rid = run_id or new_run_id()
        cfg = _check_json(redact(dict(config or {})), "run config")
        plg = _check_json(redact(dict(plugins or {})), "run plugins")
        with self.session(write=True) as s:
            if parent_run is not None and s.get(Run, parent_run) is None:
                raise NotFoundError(f"parent run {parent_run!r} does not exist (see: llmos runs list)")
            if s.get(Run, rid) is not None:
                raise ConflictError(f"run {rid!r} already exists")
            now = utcnow()
            s.add(Run(id=rid, pipeline=pipeline, status="running", config=cfg, plugins=plg,
                      parent_run_id=parent_run, workdir=str(workdir) if workdir else None, started_at=now,
                      pid=os.getpid(), host=_liveness.this_host(), heartbeat_at=now))
            s.add(Event(kind="run.started", subject=rid, data={"pipeline": pipeline}))
        return rid

    def log_run_metrics(self, run_id: str, rows: Iterable[Sequence[Any] | Mapping[str, Any]]) -> int:
        """Append metric points ``(kind, step, name, value, timestamp)`` (or dicts with
        those keys) in one batched insert. :returns: rows written."""
        import time

        batch = []
        for row in rows:
            if isinstance(row, Mapping):
                kind, step, name, value, ts = (row.get("kind", "train"), row.get("step"), row["name"], row["value"],
                                               row.get("ts", row.get("timestamp")))
            else:
                kind, step, name, value, ts = row
            batch.append({"run_id": run_id, "kind": str(kind), "step": None if step is None else int(step),
                          "name": str(name), "value": float(value), "ts": float(ts if ts is not None else time.time())})
        if not batch:
            return 0
        with self.session(write=True) as s:
            if s.get(Run, run_id) is None:
                raise NotFoundError(f"run {run_id!r} does not exist (see: llmos runs list)")
            s.execute(insert(RunMetric), batch)
        return len(batch)

    def log_run_stage(
        self,
        run_id: str,
        stage_id: str,
        component: str,
        status: str,
        duration_s: float | None = None,
        result: Mapping[str, Any] | None = None,
    ) -> None:
        """Record how a stage of a run ended (``status``: completed, failed, skipped...)."""
        payload = _check_json(redact(dict(result or {})), "stage result")
        with self.session(write=True) as s:
            if s.get(Run, run_id) is None:
                raise NotFoundError(f"run {run_id!r} does not exist (see: llmos runs list)")
            s.add(RunStage(run_id=run_id, stage_id=stage_id, component=component, status=status,
                           duration_s=duration_s, result=payload))

    def finish_run(self, run_id: str, status: str = "completed", summary: Mapping[str, Any] | None = None) -> None:
        """Mark a run finished (``completed``, ``failed``, ``interrupted``...) with a summary."""
        payload = _check_json(redact(dict(summary or {})), "run summary")
        with self.session(write=True) as s:
            run = s.get(Run, run_id)
            if run is None:
                raise NotFoundError(f"run {run_id!r} does not exist (see: llmos runs list)")
            run.status = status
            run.finished_at = None if status == "running" else utcnow()  # "running": reopened to resume
            run.heartbeat_at = utcnow()
            if status == "running":  # this process runs it now
                run.pid, run.host = os.getpid(), _liveness.this_host()
            if payload:
                run.summary = {**(run.summary or {}), **payload}
            s.add(Event(kind=f"run.{status}", subject=run_id, data={}))

    def prune_run_metrics(self, before_ts: float, *, pipeline: str | None = None, run_id: str | None = None) -> int:
        """Delete metric points recorded before ``before_ts`` (a Unix time) of the runs of
        ``pipeline`` (or of one run): the retention of long-running servers' metrics.
        :returns: rows deleted."""
        if pipeline is None and run_id is None:
            raise ValidationError("prune_run_metrics needs a pipeline or a run id")
        with self.session(write=True) as s:
            q = delete(RunMetric).where(RunMetric.ts < float(before_ts))
            if run_id is not None:
                q = q.where(RunMetric.run_id == run_id)
            if pipeline is not None:
                q = q.where(RunMetric.run_id.in_(select(Run.id).where(Run.pipeline == pipeline)))
            deleted = s.execute(q.execution_options(synchronize_session=False)).rowcount or 0
            if deleted:
                s.add(Event(kind="run.metrics_pruned", subject=run_id or pipeline,
                            data={"before_ts": before_ts, "rows": deleted}))
        return deleted

    def heartbeat_runs(self, run_ids: Iterable[str]) -> None:
        """Refresh the heartbeat of these (running) runs: this process is alive."""
        ids = list(run_ids)
        if not ids:
            return
        from sqlalchemy import update

        with self.session(write=True) as s:
            s.execute(update(Run).where(Run.id.in_(ids), Run.status == "running").values(heartbeat_at=utcnow()))

    def _run_info(self, s: Session, run: Run, *, detail: bool = True) -> RunInfo:
        stages, versions = [], []
        if detail:
            stages = [
                {"stage_id": st.stage_id, "component": st.component, "status": st.status,
                 "duration_s": st.duration_s, "result": redact(st.result)}
                for st in s.scalars(select(RunStage).where(RunStage.run_id == run.id).order_by(RunStage.id)).all()
            ]
            versions = [
                f"{m}:{n}"
                for m, n in s.execute(
                    select(Model.name, ModelVersion.number)
                    .join(ModelVersion, ModelVersion.model_id == Model.id)
                    .where(ModelVersion.run_id == run.id)
                    .order_by(ModelVersion.id)
                ).all()
            ]
        return RunInfo(
            # redacted on the way out too: runs recorded before secrets were masked on write
            id=run.id, pipeline=run.pipeline, config=redact(run.config or {}),
            status=_liveness.effective_status(run.status, run.pid, run.host, _utc(run.heartbeat_at)),
            pid=run.pid, host=run.host, heartbeat_at=_utc(run.heartbeat_at),
            plugins=run.plugins or {}, parent_run_id=run.parent_run_id, workdir=run.workdir,
            started_at=_utc(run.started_at), finished_at=_utc(run.finished_at), summary=redact(run.summary or {}),
            stages=stages, versions=versions,
        )

    def get_run(self, run_id: str) -> RunInfo:
        """One run with its stages; ``run_id`` may be a unique prefix."""
        with self.session() as s:
            run = s.get(Run, run_id)
            if run is None:
                matches = s.scalars(select(Run).where(Run.id.startswith(run_id, autoescape=True)).limit(2)).all()
                if len(matches) == 1:
                    run = matches[0]
                elif len(matches) > 1:
                    raise ConflictError(f"run id prefix {run_id!r} is ambiguous: give more characters")
            if run is None:
                raise NotFoundError(f"run {run_id!r} does not exist (see: llmos runs list)")
            return self._run_info(s, run)

    def list_runs(
        self,
        *,
        pipeline: str | None = None,
        status: str | None = None,
        limit: int = 100,
        parent_run: str | None = None,
    ) -> list[RunInfo]:
        """Runs, newest first (``parent_run``: only the children of that run).

        ``status`` filters on the status shown: ``running`` excludes, and ``dead``/``lost``
        select, recorded-running runs whose process is gone.
        """
        live = status in ("running", _liveness.DEAD, _liveness.LOST)
        with self.session() as s:
            q = select(Run).order_by(Run.started_at.desc(), Run.id.desc())
            if not live:
                q = q.limit(limit)
            if pipeline:
                q = q.where(Run.pipeline == pipeline)
            if parent_run:
                q = q.where(Run.parent_run_id == parent_run)
            if status:
                q = q.where(Run.status == ("running" if live else status))
            infos = [self._run_info(s, r, detail=False) for r in s.scalars(q).all()]
            return [i for i in infos if i.status == status][:limit] if live else infos

    def run_metrics(self, run_id: str, name: str | None = None, *, kind: str | None = None) -> list[dict[str, Any]]:
        """Metric points of a run, in step/time order: ``{"kind", "step", "name", "value", "ts"}``."""
        with self.session() as s:
            q = select(RunMetric.kind, RunMetric.step, RunMetric.name, RunMetric.value, RunMetric.ts).where(
                RunMetric.run_id == run_id
            )
            if name:
                q = q.where(RunMetric.name == name)
            if kind:
                q = q.where(RunMetric.kind == kind)
            q = q.order_by(RunMetric.name, RunMetric.step, RunMetric.ts, RunMetric.id)
            return [{"kind": k, "step": st, "name": n, "value": v, "ts": t} for k, st, n, v, t in s.execute(q).all()]


# -- helpers ---------------------------------------------------------------------------


def _count(stats: BlobStats, size: int, written: bool) -> None:
    if written:
        stats.written_bytes += size
        stats.written_blobs += 1
    else:
        stats.reused_bytes += size
        stats.reused_blobs += 1


def _tensor_brief(t: dict[str, Any] | None) -> dict[str, Any]:
    assert t is not None
    return {"dtype": t["dtype"], "shape": t["shape"], "size": t["size"]}


def _version_number(name: str, version: int | str) -> int:
    if isinstance(version, bool):
        raise ValidationError(f"invalid version {version!r}")
    if isinstance(version, int):
        number = version
    else:
        text = str(version)
        if text.startswith(f"{name}:"):
            text = text[len(name) + 1 :]
        text = text.removeprefix("v")
        if not re.fullmatch(r"[0-9]{1,18}", text):
            raise ValidationError(f"invalid version {version!r}: give a version number such as 3")
        number = int(text)
    if number < 1:
        raise ValidationError(f"invalid version {version!r}: version numbers start at 1")
    return number


def _collect_files(path: Path) -> list[tuple[str, Path]]:
    """``(relative posix path, source)`` of the files to register, validated.

    Symbolic links are followed only inside the model directory: a link (to a file or
    a directory) that leads out of it, a broken link, a link loop and anything that is
    not a regular file or directory are refused, naming the entry. ``source`` is the
    resolved path, opened later with ``O_NOFOLLOW``.
    """
    if not path.exists() and not path.is_symlink():
        raise ValidationError(f"{path} does not exist: give a model directory (Hugging Face layout) or a .safetensors file")
    if path.is_file():
        _refuse_pickle(path)
        if path.suffix != ".safetensors":
            raise ValidationError(
                f"{path} is a single file but not .safetensors: register a directory (Hugging Face layout) or a .safetensors file"
            )
        return [(path.name, path.resolve())]
    if not path.is_dir():
        raise ValidationError(f"{path} is not a regular file or directory (or is a broken link)")
    root = path.resolve()
    found: list[tuple[str, Path]] = []

    def walk(real_dir: Path, rel_dir: str, ancestors: frozenset[Path] = frozenset()) -> None:
        if real_dir in ancestors:
            raise ValidationError(f"{path / rel_dir} is a symbolic link loop: remove the link and register again")
        ancestors = ancestors | {real_dir}
        try:
            entries = sorted(os.scandir(real_dir), key=lambda e: e.name)
        except OSError as exc:
            raise ValidationError(f"cannot read {path / rel_dir}: {exc.strerror}") from None
        for entry in entries:
            n = entry.name
            if n.startswith(".") or n == "__pycache__":
                continue
            rel = f"{rel_dir}/{n}" if rel_dir else n
            shown = path / rel
            real = Path(entry.path)
            if entry.is_symlink():
                target = Path(os.path.realpath(entry.path))
                if not target.is_relative_to(root):
                    raise ValidationError(
                        f"{shown} is a symbolic link to {os.readlink(entry.path)}, outside the model directory: "
                        "copy the file into the directory (or remove the link) and register again"
                    )
                if not target.exists():
                    raise ValidationError(f"{shown} is a broken symbolic link: fix or remove it and register again")
                real = target
            if real.is_dir():
                walk(real, rel, ancestors)
                continue
            _refuse_pickle(shown)
            if not real.is_file():
                raise ValidationError(f"{shown} is not a regular file (a socket, pipe or device): remove it and register again")
            found.append((rel, real))

    walk(root, "")
    if not found:
        raise ValidationError(f"{path} contains no files: nothing to register")
    return found


def _refuse_pickle(path: Path) -> None:
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise ValidationError(
            f"{path} is a pickle-based weight file, which llmos never loads (unpickling can run code): convert it "
            "to safetensors, e.g. safetensors.torch.save_file(torch.load(f, weights_only=True), 'model.safetensors'), "
            "or model.save_pretrained(dir, safe_serialization=True), and register that"
        )


def _stamp_path(checkout: Path) -> Path:
    """Beside a checkout ``<model>/<n>``: the size and mtime of each of its files when
    it was built (outside the directory, which holds exactly the version's files)."""
    return checkout.parent / f".{checkout.name}.stamp.json"


def _walk_files(root: Path) -> dict[str, Path]:
    return {p.relative_to(root).as_posix(): p for p in root.rglob("*") if p.is_file() or p.is_symlink()}


def _write_stamp(built: Path, dest: Path) -> None:
    import json

    stats = {rel: [p.lstat().st_size, p.lstat().st_mtime_ns] for rel, p in _walk_files(built).items()}
    tmp = dest.parent / f"{_stamp_path(dest).name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.write_text(json.dumps(stats, sort_keys=True))
    os.replace(tmp, _stamp_path(dest))


def _stamp_intact(root: Path) -> bool:
    """Do the checkout's files look as they were built (sizes, mtimes; no file added)?"""
    import json

    try:
        recorded = json.loads(_stamp_path(root).read_text())
        found = _walk_files(root)
        if set(found) != set(recorded):
            return False
        for rel, p in found.items():
            st = p.lstat()
            if [st.st_size, st.st_mtime_ns] != recorded[rel]:
                return False
    except (OSError, ValueError, TypeError):
        return False
    return True


def _check_checkout(root: Path, files: list[Any], parts: dict[int, list[tuple[str, int]]]) -> dict[str, list[str]]:
    """Files of the checkout at ``root`` that differ from the version (re-hashed:
    whole files against their digest, safetensors files part by part)."""
    import hashlib

    found = _walk_files(root)
    modified, missing = [], []
    for fid, rel, kind, sha, size in files:
        p = found.pop(rel, None)
        if p is None:
            missing.append(rel)
            continue
        try:
            if p.is_symlink() or p.stat().st_size != size:
                modified.append(rel)
                continue
            with open(p, "rb") as fh:
                if kind == "safetensors":
                    good = True
                    for digest, n in parts.get(fid, []):
                        h = hashlib.sha256()
                        left = n
                        while left:
                            chunk = fh.read(min(left, 8 << 20))
                            if not chunk:
                                break
                            h.update(chunk)
                            left -= len(chunk)
                        if left or h.hexdigest() != digest:
                            good = False
                            break
                else:
                    good = hashlib.file_digest(fh, "sha256").hexdigest() == sha
            if not good:
                modified.append(rel)
        except OSError:
            modified.append(rel)
    if not (modified or missing or found):
        return {}
    return {"modified": modified, "missing": missing, "extra": sorted(found)}


def _store_error(exc: OSError, where: Path) -> LlmosError:
    """A failed write to the blob store as one line (nothing was registered)."""
    import errno

    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return LlmosError(
            f"no space left on the device of {where} while storing blobs; nothing was registered and what this "
            "register wrote was removed: free space (llmos model gc removes unused blobs) and register again"
        )
    target = f" ({exc.filename})" if exc.filename else ""
    return LlmosError(f"cannot store blobs in {where}{target}: {exc.strerror or exc}; nothing was registered")


def _db_error(exc: OperationalError, url: str) -> LlmosError:
    detail = (str(exc.orig).strip().splitlines() or ["operational error"])[0]
    hint = "free space and register again" if "full" in detail.lower() else "check LLMOS_DATABASE_URL and register again"
    return LlmosError(f"the registry database {_db.redact(url)} failed: {detail}; nothing was registered: {hint}")


def _no_model(s: Session, name: str) -> None:
    """Raise the not-found error for ``name``, pointing at a model differing only in case."""
    from llmos.registry.models import name_key

    other = s.scalar(select(Model.name).where(Model.name_key == name_key(name)))
    hint = f"; did you mean {other!r}? (names are unique case-insensitively)" if other else " (see: llmos model list)"
    raise NotFoundError(f"no model named {name!r}{hint}")


def _notify(hook: str, **kwargs: Any) -> None:
    try:
        from llmos.plugins import get_manager

        get_manager().notify(hook, **kwargs)
    except LlmosError as exc:  # the write is committed; a hook problem must not undo it
        print(f"Warning: {hook} not delivered: {exc.message}", file=sys.stderr)


__all__ = ["Registry", "parse_ref", "check_name", "check_alias"]
