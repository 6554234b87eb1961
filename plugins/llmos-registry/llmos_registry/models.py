"""ORM models of the registry (SQLAlchemy 2, typed).

Every table is created by the initial Alembic migration
(``llmos/registry/migrations/versions/0001_initial.py``); change a model only
together with a new migration. Other core modules query these classes through
:meth:`llmos_registry.Registry.session`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timestamp that always comes back timezone-aware in UTC — on PostgreSQL
    (``timestamptz``) and on SQLite (which stores no zone: values are stored in UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        value = value.astimezone(dt.timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc)


def name_key(name: str) -> str:
    """The form of a model name that must be unique: names differing only in case clash."""
    return name.lower()


def name_key_default(context: Any) -> str:
    return name_key(context.get_current_parameters()["name"])


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON, dt.datetime: UTCDateTime()}


# -- models ------------------------------------------------------------------------


class Model(Base):
    """A named model; its versions are numbered 1, 2, ... and never reused."""

    __tablename__ = "models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    #: ``name.lower()``: names are unique case-insensitively (as on PyPI and the HF Hub)
    name_key: Mapped[str] = mapped_column(String(128), unique=True, default=name_key_default)
    description: Mapped[str] = mapped_column(Text, default="")
    #: the highest version number ever allocated (deleted ones included)
    last_version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    versions: Mapped[list[ModelVersion]] = relationship(back_populates="model", order_by="ModelVersion.number")


class ModelVersion(Base):
    """One immutable version. ``status``: ``ready``, ``archived`` or ``deleted``
    (a tombstone: the row stays so its number is never reused)."""

    __tablename__ = "model_versions"
    __table_args__ = (
        UniqueConstraint("model_id", "number", name="uq_model_versions_model_number"),
        Index("ix_model_versions_model_status_number", "model_id", "status", "number"),
        Index("ix_model_versions_created_at", "created_at"),  # search results, newest first
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="ready")
    description: Mapped[str] = mapped_column(Text, default="")
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    lineage: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    run_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)

    model: Mapped[Model] = relationship(back_populates="versions")
    files: Mapped[list[VersionFile]] = relationship(
        back_populates="version", order_by="VersionFile.path", cascade="all, delete-orphan"
    )


class VersionFile(Base):
    """A file of a version. ``kind`` is ``blob`` (the file is one blob, ``sha256``)
    or ``safetensors`` (the file is the concatenation of its :class:`FilePart` blobs
    in ``seq`` order; ``sha256`` is then the digest of the parts' digests)."""

    __tablename__ = "version_files"
    __table_args__ = (UniqueConstraint("version_id", "path", name="uq_version_files_version_path"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(String(1024))
    kind: Mapped[str] = mapped_column(String(16), default="blob")
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(BigInteger)

    version: Mapped[ModelVersion] = relationship(back_populates="files")
    parts: Mapped[list[FilePart]] = relationship(
        back_populates="file", order_by="FilePart.seq", cascade="all, delete-orphan"
    )


class FilePart(Base):
    """One piece of a safetensors file: the header (``name`` = ``__header__``) or one
    tensor's raw bytes, in file offset order."""

    __tablename__ = "version_file_parts"
    __table_args__ = (UniqueConstraint("file_id", "seq", name="uq_version_file_parts_file_seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    file_id: Mapped[int] = mapped_column(ForeignKey("version_files.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(1024))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    dtype: Mapped[str | None] = mapped_column(String(16), nullable=True)
    shape: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)

    file: Mapped[VersionFile] = relationship(back_populates="parts")


class Alias(Base):
    __tablename__ = "aliases"
    __table_args__ = (
        UniqueConstraint("model_id", "name", name="uq_aliases_model_name"),
        Index("ix_aliases_name", "name"),  # search: aliases = 'production'
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(128))
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"), index=True)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Tag(Base):
    __tablename__ = "tags"
    __table_args__ = (
        UniqueConstraint("version_id", "key", name="uq_tags_version_key"),
        # search: tags.<key> = 'v' reads only this index (values are capped: refs.MAX_TAG_VALUE)
        Index("ix_tags_key_value", "key", "value", "version_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(128))
    value: Mapped[str] = mapped_column(Text, default="")


class VersionMetric(Base):
    __tablename__ = "version_metrics"
    __table_args__ = (
        UniqueConstraint("version_id", "name", name="uq_version_metrics_version_name"),
        Index("ix_version_metrics_name_value", "name", "value", "version_id"),  # search: metrics.<name> < x
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(128))
    value: Mapped[float] = mapped_column(Float)
    logged_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class LineageEdge(Base):
    """``child`` was derived from ``parent`` (both versions)."""

    __tablename__ = "lineage_edges"
    __table_args__ = (UniqueConstraint("child_id", "parent_id", name="uq_lineage_edges_child_parent"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    child_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"))
    parent_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"), index=True)


class BlobPin(Base):
    """Blobs an operation in progress (a ``register``) is writing or reusing: ``gc``
    keeps every unreferenced blob touched since the oldest live pin was taken, whatever
    its grace period. Times are the writer's clock (``time.time()``), comparable with
    blob mtimes. A pin whose process is gone (same host, pid dead) or whose
    ``expires_ts`` passed is stale: gc ignores and removes it."""

    __tablename__ = "blob_pins"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner: Mapped[str] = mapped_column(String(256))
    host: Mapped[str] = mapped_column(String(256))
    pid: Mapped[int] = mapped_column(Integer)
    created_ts: Mapped[float] = mapped_column(Float)
    expires_ts: Mapped[float] = mapped_column(Float)


# -- runs --------------------------------------------------------------------------


class Run(Base):
    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    pipeline: Mapped[str] = mapped_column(String(256), index=True)
    status: Mapped[str] = mapped_column(String(32), default="running")
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    plugins: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    parent_run_id: Mapped[str | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"), nullable=True)
    workdir: Mapped[str | None] = mapped_column(Text, nullable=True)
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: the process running it (migration 0004): a run whose process is gone shows as ``dead``
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    host: Mapped[str | None] = mapped_column(String(256), nullable=True)
    #: refreshed by the running process; stale on another host: ``lost``
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)


class RunStage(Base):
    __tablename__ = "run_stages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    stage_id: Mapped[str] = mapped_column(String(128))
    component: Mapped[str] = mapped_column(String(256))
    status: Mapped[str] = mapped_column(String(32))
    duration_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class RunMetric(Base):
    __tablename__ = "run_metrics"
    __table_args__ = (Index("ix_run_metrics_run_name_step", "run_id", "name", "step"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    step: Mapped[int | None] = mapped_column(Integer, nullable=True)
    name: Mapped[str] = mapped_column(String(128))
    value: Mapped[float] = mapped_column(Float)
    ts: Mapped[float] = mapped_column(Float)


# -- plugins and the community workflow --------------------------------------------


class InstalledPlugin(Base):
    __tablename__ = "installed_plugins"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), index=True)
    version: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(16))  # 'index' | 'pip' | 'local'
    artifact_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    installed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    uninstalled_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)


class Contributor(Base):
    __tablename__ = "contributors"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    handle: Mapped[str] = mapped_column(String(128), unique=True)
    name: Mapped[str] = mapped_column(String(256), default="")
    public_key: Mapped[str | None] = mapped_column(Text, nullable=True)
    roles: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Submission(Base):
    __tablename__ = "submissions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    plugin_name: Mapped[str] = mapped_column(String(128), index=True)
    version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    kind: Mapped[str] = mapped_column(String(16))  # 'new-plugin' | 'new-version' | 'update'
    author: Mapped[str] = mapped_column(String(128))
    manifest_digest: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), default="open")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Review(Base):
    __tablename__ = "reviews"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id", ondelete="CASCADE"), index=True)
    reviewer: Mapped[str] = mapped_column(String(128))
    decision: Mapped[str] = mapped_column(String(32))  # approve | request-changes | block | comment
    digest: Mapped[str] = mapped_column(String(128))
    signature: Mapped[str | None] = mapped_column(Text, nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Event(Base):
    """Append-only log of everything that changed."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ts: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    kind: Mapped[str] = mapped_column(String(64), index=True)
    subject: Mapped[str] = mapped_column(String(256))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
