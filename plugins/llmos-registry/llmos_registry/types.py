"""Plain result types of the registry API (no SQLAlchemy: safe to import anywhere)."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any, TypedDict


@dataclass
class VersionInfo:
    """One model version as the API returns it.

    ``ref`` is ``"name:N"``; ``files`` is a list of ``{"path", "size", "sha256", "kind"}``
    (``kind`` ``"safetensors"`` files are stored per tensor); ``parents`` are refs.
    """

    model: str
    number: int
    ref: str
    files: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    parents: list[str] = field(default_factory=list)
    lineage: dict[str, Any] = field(default_factory=dict)
    status: str = "ready"
    created_at: dt.datetime | None = None
    size_bytes: int = 0
    description: str = ""
    aliases: list[str] = field(default_factory=list)
    run_id: str | None = None
    #: for a version just registered: bytes written to / reused from the blob store
    stored_bytes: int | None = None
    reused_bytes: int | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["created_at"] = self.created_at.isoformat() if self.created_at else None
        if self.stored_bytes is None:
            data.pop("stored_bytes")
            data.pop("reused_bytes")
        return data


@dataclass
class RunInfo:
    """A pipeline run (``stages``: ``[{"stage_id", "component", "status", "duration_s", "result"}]``)."""

    id: str
    pipeline: str
    status: str
    config: dict[str, Any] = field(default_factory=dict)
    plugins: dict[str, Any] = field(default_factory=dict)
    parent_run_id: str | None = None
    workdir: str | None = None
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    stages: list[dict[str, Any]] = field(default_factory=list)
    versions: list[str] = field(default_factory=list)
    #: the process that runs (or ran) it; ``status`` is ``dead``/``lost`` when it is gone
    pid: int | None = None
    host: str | None = None
    heartbeat_at: dt.datetime | None = None

    @property
    def duration_s(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("started_at", "finished_at", "heartbeat_at"):
            data[key] = data[key].isoformat() if data[key] else None
        data["duration_s"] = self.duration_s
        return data


# -- typed results (dicts, so ``result["key"]`` and JSON output work as before) ----------


class ModelSummary(TypedDict):
    """One row of :meth:`Registry.list_models`."""

    name: str
    description: str
    versions: int  # ready + archived
    ready: int
    deleted: int
    latest: int | None  # the newest ready version's number
    aliases: dict[str, int]
    created_at: str | None


class GcReport(TypedDict):
    """What :meth:`Registry.gc` removed and kept."""

    removed_blobs: int
    removed_bytes: int
    kept_recent: int  # younger than the grace period
    kept_pinned: int  # touched since the oldest live pin (a register in progress)
    live_pins: int
    removed_temp_files: int
    removed_checkouts: int
    dry_run: bool


class CheckoutProblem(TypedDict):
    """A checkout whose files differ from its version (:meth:`Registry.verify_checkouts`)."""

    ref: str
    path: str
    modified: list[str]
    missing: list[str]
    extra: list[str]
    repaired: bool


class FsckReport(TypedDict):
    """What :meth:`Registry.fsck` found (``ok``: nothing wrong, or all repaired)."""

    ok: bool
    checkouts: list[CheckoutProblem]
    checked_blobs: int
    checked_bytes: int
    missing: list[dict[str, Any]]  # {"sha256", "used_by"}
    corrupt: list[dict[str, Any]]  # {"sha256", "actual", "used_by"}
    unreferenced: int
    temp_files: int


class DiffReport(TypedDict):
    """:meth:`Registry.diff`: tensors changed/added/removed, files, sizes, metric deltas."""

    a: str
    b: str
    tensors: dict[str, Any]
    files: dict[str, list[str]]
    size: dict[str, int]
    metrics: dict[str, dict[str, float | None]]


class EventRecord(TypedDict):
    id: int
    ts: str
    kind: str
    subject: str
    data: dict[str, Any]


class MetricPoint(TypedDict):
    kind: str
    step: int | None
    name: str
    value: float
    ts: float
