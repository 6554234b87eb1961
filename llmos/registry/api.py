"""The registry API: :class:`Registry`, a thin facade over the registry's modules.

See DESIGN.md §3 and §7 ("Registry API"). The work is done in small modules, each a set
of functions over the :class:`~llmos.registry.store.Store`:

- :mod:`~llmos.registry.refs` — names, aliases, references, tags and metrics validated;
- :mod:`~llmos.registry.versions` — resolve, list, aliases, tags, metrics, status, delete;
- :mod:`~llmos.registry.ingest` — register a version (blobs under a pin, then one commit);
- :mod:`~llmos.registry.files` — checkouts (verified) and HF-layout exports;
- :mod:`~llmos.registry.compare` — diff and lineage;
- :mod:`~llmos.registry.maintenance` — gc, fsck, info;
- :mod:`~llmos.registry.events` — the event log;
- :mod:`~llmos.registry.runs` — pipeline runs, stages, metric points;
- :mod:`~llmos.registry.search` — filter versions with a small query language.

Every write is one transaction; blobs are written before the rows that reference them
are committed, so a crash leaves no partial version.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from llmos.registry import compare, events, files, ingest, maintenance, runs, search, versions
from llmos.registry.refs import check_alias, check_name, parse_ref
from llmos.registry.store import Store
from llmos.registry.types import (
    CheckoutProblem,
    DiffReport,
    EventRecord,
    FsckReport,
    GcReport,
    MetricPoint,
    ModelSummary,
    RunInfo,
    VersionInfo,
)


class Registry(Store):
    """Model versions, aliases, tags, metrics, lineage and runs in one database.

    Use :func:`open_registry`. ``url``: any SQLAlchemy URL (default
    ``$LLMOS_DATABASE_URL`` or SQLite in the home); ``home``: where blobs and
    checkouts live (default ``$LLMOS_HOME``); ``notify``: ``notify(hook, **kwargs)``
    called after commits (default: the process-wide plugin manager's).
    """

    # -- versions ------------------------------------------------------------------------

    def resolve(self, ref: str) -> VersionInfo:
        """The version a reference names: ``name`` (latest ready), ``name:3``, ``name@alias``."""
        return versions.resolve(self, ref)

    def get_version(self, ref: str) -> VersionInfo:
        """The same as :meth:`resolve`."""
        return versions.resolve(self, ref)

    def list_models(self) -> list[ModelSummary]:
        """Every model: name, description, version counts, latest ready version, aliases."""
        return versions.list_models(self)

    def list_versions(self, name: str, *, include_deleted: bool = False) -> list[VersionInfo]:
        """The versions of a model, oldest first (deleted tombstones only if asked)."""
        return versions.list_versions(self, name, include_deleted=include_deleted)

    def tensors(self, ref: str) -> dict[str, dict[str, Any]]:
        """Tensors of a version: ``name → {"file", "dtype", "shape", "size", "sha256"}``; files that are not
        safetensors appear as ``{"file": path, ...}`` under their path.
        """
        return versions.tensors(self, ref)

    def set_alias(self, name: str, alias: str, version: int | str) -> VersionInfo:
        """Point ``name@alias`` at version ``version`` (moves it atomically if it exists)."""
        return versions.set_alias(self, name, alias, version)

    def remove_alias(self, name: str, alias: str) -> int:
        """Remove ``name@alias``. :returns: the version it pointed at."""
        return versions.remove_alias(self, name, alias)

    def set_tags(self, ref: str, tags: Mapping[str, Any], *, remove: Iterable[str] = ()) -> VersionInfo:
        """Set (or with ``remove``, delete) tags of a version."""
        return versions.set_tags(self, ref, tags, remove=remove)

    def log_metrics(self, ref: str, metrics: Mapping[str, Any]) -> VersionInfo:
        """Record (or update) metrics of a version, e.g. after evaluating it."""
        return versions.log_metrics(self, ref, metrics)

    def archive(self, ref: str) -> VersionInfo:
        """Mark a version archived: kept and loadable by number, but no longer ``latest``."""
        return versions.archive(self, ref)

    def restore(self, ref: str) -> VersionInfo:
        """Make an archived version ready again."""
        return versions.restore(self, ref)

    def delete(self, ref: str) -> VersionInfo:
        """Delete a version: its row stays as a tombstone (the number is never reused), its files and aliases
        go; ``gc`` later frees blobs nothing else uses.
        """
        return versions.delete(self, ref)

    def search(self, query: str, *, limit: int = 100, include_deleted: bool = False) -> list[VersionInfo]:
        """Versions matching a filter such as ``"metrics.val_ppl < 50 and tags.team = 'nlp'"``,
        newest first (grammar and fields: :mod:`llmos.registry.search`)."""
        return search.search(self, query, limit=limit, include_deleted=include_deleted)

    # -- ingest --------------------------------------------------------------------------

    def register_version(self,
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
        """Register the files at ``path`` (a Hugging Face layout directory or a single ``.safetensors`` file)
        as the next version of model ``name``.
        """
        return ingest.register_version(
            self, name, path, description=description, tags=tags, metrics=metrics, parents=parents, lineage=lineage, aliases=aliases, run_id=run_id, progress=progress
        )

    # -- files ---------------------------------------------------------------------------

    def checkout(self, ref: str) -> Path:
        """Materialise a version as a read-only directory ``$LLMOS_HOME/checkouts/<model>/<n>/`` (built in a
        temporary directory and renamed into place, so it is either complete or absent) and return
        it.
        """
        return files.checkout(self, ref)

    def verify_checkouts(self, *, repair: bool = False) -> list[CheckoutProblem]:
        """Re-hash every checkout against its version's digests. :returns: the bad ones, ``{"ref", "path",
        "modified", "missing", "extra", "repaired"}``; with ``repair`` each is materialised again
        (checkouts of deleted versions are left to gc).
        """
        return files.verify_checkouts(self, repair=repair)

    def export(self, ref: str, dest: Path | str, *, format: str = "hf") -> list[Path]:
        """Write a version to ``dest`` (new or empty) as a Hugging Face layout directory (``format`` ``hf`` or
        ``safetensors``: the version's files, bit-identical).
        """
        return files.export(self, ref, dest, format=format)

    # -- compare -------------------------------------------------------------------------

    def diff(self, a: str, b: str) -> DiffReport:
        """What changed from version ``a`` to ``b``: tensors changed/added/removed (safetensors), other files,
        sizes and metric deltas.
        """
        return compare.diff(self, a, b)

    def lineage(self, ref: str, *, max_depth: int = 50) -> dict[str, Any]:
        """The version with its ancestors as a tree: ``{"ref", "status", "method", "run_id", "parents":
        [...same...], "children": [refs]}``.
        """
        return compare.lineage(self, ref, max_depth=max_depth)

    # -- maintenance ---------------------------------------------------------------------

    def gc(self, grace_seconds: float = 3600.0, *, dry_run: bool = False) -> GcReport:
        """Remove blobs no version references, and left-over temporary files and checkouts of deleted versions.
        Blobs touched in the last ``grace_seconds`` are kept, and so, whatever the grace, is every
        blob touched since the oldest live pin (a register in progress) and since this gc started.
        """
        return maintenance.gc(self, grace_seconds, dry_run=dry_run)

    def fsck(self, progress: Callable[[int], None] | None = None, *, repair: bool = False) -> FsckReport:
        """Re-hash every blob and every checkout; report missing (referenced but absent) and corrupt (content
        does not match the name) blobs, and checkouts whose files differ from their version
        (``repair``: materialise those again). ``ok`` is true when nothing is wrong (or everything
        wrong was repaired).
        """
        return maintenance.fsck(self, progress, repair=repair)

    def info(self) -> dict[str, Any]:
        """URL (password hidden), schema revision, row counts, store size."""
        return maintenance.info(self)

    # -- events --------------------------------------------------------------------------

    def record_event(self, kind: str, subject: str, data: Mapping[str, Any] | None = None) -> None:
        """Append an event to the log (one transaction)."""
        return events.record_event(self, kind, subject, data)

    def events(self, *, kind: str | None = None, subject: str | None = None, limit: int = 100) -> list[EventRecord]:
        """The newest events first."""
        return events.events(self, kind=kind, subject=subject, limit=limit)

    # -- runs ----------------------------------------------------------------------------

    def create_run(self,
        pipeline: str,
        config: Mapping[str, Any] | None = None,
        plugins: Mapping[str, Any] | None = None,
        parent_run: str | None = None,
        *,
        workdir: Path | str | None = None,
        run_id: str | None = None,
    ) -> str:
        """Record a new run (status ``running``). :returns: its id."""
        return runs.create_run(self, pipeline, config, plugins, parent_run, workdir=workdir, run_id=run_id)

    def log_run_metrics(self, run_id: str, rows: Iterable[Sequence[Any] | Mapping[str, Any]]) -> int:
        """Append metric points ``(kind, step, name, value, timestamp)`` (or dicts with those keys) in one
        batched insert. :returns: rows written.
        """
        return runs.log_run_metrics(self, run_id, rows)

    def log_run_stage(self,
        run_id: str,
        stage_id: str,
        component: str,
        status: str,
        duration_s: float | None = None,
        result: Mapping[str, Any] | None = None,
    ) -> None:
        """Record how a stage of a run ended (``status``: completed, failed, skipped...)."""
        return runs.log_run_stage(self, run_id, stage_id, component, status, duration_s, result)

    def finish_run(self, run_id: str, status: str = "completed", summary: Mapping[str, Any] | None = None) -> None:
        """Mark a run finished (``completed``, ``failed``, ``interrupted``...) with a summary."""
        return runs.finish_run(self, run_id, status, summary)

    def prune_run_metrics(self, before_ts: float, *, pipeline: str | None = None, run_id: str | None = None) -> int:
        """Delete metric points recorded before ``before_ts`` (a Unix time) of the runs of ``pipeline`` (or of
        one run): the retention of long-running servers' metrics. :returns: rows deleted.
        """
        return runs.prune_run_metrics(self, before_ts, pipeline=pipeline, run_id=run_id)

    def heartbeat_runs(self, run_ids: Iterable[str]) -> None:
        """Refresh the heartbeat of these (running) runs: this process is alive."""
        return runs.heartbeat_runs(self, run_ids)

    def get_run(self, run_id: str) -> RunInfo:
        """One run with its stages; ``run_id`` may be a unique prefix."""
        return runs.get_run(self, run_id)

    def list_runs(self,
        *,
        pipeline: str | None = None,
        status: str | None = None,
        limit: int = 100,
        parent_run: str | None = None,
    ) -> list[RunInfo]:
        """Runs, newest first (``parent_run``: only the children of that run)."""
        return runs.list_runs(self, pipeline=pipeline, status=status, limit=limit, parent_run=parent_run)

    def run_metrics(self, run_id: str, name: str | None = None, *, kind: str | None = None) -> list[MetricPoint]:
        """Metric points of a run, in step/time order: ``{"kind", "step", "name", "value", "ts"}``."""
        return runs.run_metrics(self, run_id, name, kind=kind)


__all__ = ["Registry", "parse_ref", "check_name", "check_alias"]
