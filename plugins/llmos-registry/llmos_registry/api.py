"""The registry API: :class:`Registry`, a thin facade over the registry's modules.

See DESIGN.md §3 and §7 ("Registry API"). The work is done in small modules, each a set
of functions over the :class:`~llmos_registry.store.Store`:

- :mod:`~llmos_registry.refs` — names, aliases, references, tags and metrics validated;
- :mod:`~llmos_registry.versions` — resolve, list, aliases, tags, metrics, status, delete;
- :mod:`~llmos_registry.ingest` — register a version (blobs under a pin, then one commit);
- :mod:`~llmos_registry.files` — checkouts (verified) and HF-layout exports;
- :mod:`~llmos_registry.compare` — diff and lineage;
- :mod:`~llmos_registry.maintenance` — gc, fsck, info;
- :mod:`~llmos_registry.events` — the event log;
- :mod:`~llmos_registry.runs` — pipeline runs, stages, metric points;
- :mod:`~llmos_registry.search` — filter versions with a small query language.

The methods of :class:`Registry` *are* those modules' functions (each takes the store as
its first argument), bound here by name: one signature and one docstring per operation.

Every write is one transaction; blobs are written before the rows that reference them
are committed, so a crash leaves no partial version.
"""

from __future__ import annotations

from llmos_registry import compare, files, ingest, maintenance, runs, search, versions
from llmos_registry import events as event_log
from llmos_registry.refs import check_alias, check_name, parse_ref
from llmos_registry.store import Store


class Registry(Store):
    """Model versions, aliases, tags, metrics, lineage and runs in one database.

    Use :func:`open_registry`. ``url``: any SQLAlchemy URL (default
    ``$LLMOS_DATABASE_URL`` or SQLite in the home); ``home``: where blobs and
    checkouts live (default ``$LLMOS_HOME``); ``notify``: ``notify(hook, **kwargs)``
    called after commits (default: the process-wide plugin manager's).
    """

    # versions: resolve a reference (``name``, ``name:3``, ``name@alias``), list, move aliases,
    # tags, metrics, status
    resolve = versions.resolve
    get_version = versions.resolve  # the same as resolve
    list_models = versions.list_models
    list_versions = versions.list_versions
    tensors = versions.tensors
    set_alias = versions.set_alias
    remove_alias = versions.remove_alias
    set_tags = versions.set_tags
    log_metrics = versions.log_metrics
    archive = versions.archive
    restore = versions.restore
    delete = versions.delete
    search = search.search

    # ingest and files: register a version; checkouts and exports
    register_version = ingest.register_version
    checkout = files.checkout
    verify_checkouts = files.verify_checkouts
    export = files.export

    # compare and maintenance
    diff = compare.diff
    lineage = compare.lineage
    gc = maintenance.gc
    fsck = maintenance.fsck
    info = maintenance.info

    # the event log and pipeline runs
    record_event = event_log.record_event
    events = event_log.events
    create_run = runs.create_run
    log_run_metrics = runs.log_run_metrics
    log_run_stage = runs.log_run_stage
    finish_run = runs.finish_run
    prune_run_metrics = runs.prune_run_metrics
    heartbeat_runs = runs.heartbeat_runs
    get_run = runs.get_run
    list_runs = runs.list_runs
    run_metrics = runs.run_metrics


__all__ = ["Registry", "parse_ref", "check_name", "check_alias"]
