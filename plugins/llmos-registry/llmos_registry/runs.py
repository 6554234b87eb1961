"""Pipeline runs: their stages, metric points and liveness (heartbeats).

Functions take the :class:`~llmos_registry.store.Store` (the :class:`~llmos_registry.Registry`)
as their first argument; the ``Registry`` facade exposes them as methods.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from llmos import liveness as _liveness
from llmos.sdk import ConflictError, NotFoundError, ValidationError
from llmos.sdk import redact
from llmos_registry.models import (
    Event,
    Model,
    ModelVersion,
    Run,
    RunMetric,
    RunStage,
    utcnow,
)
from llmos_registry.refs import (
    _check_json,
    _utc,
)
from llmos_registry.types import MetricPoint, RunInfo

if TYPE_CHECKING:
    from llmos_registry.store import Store


def create_run(store: Store,
    pipeline: str,
    config: Mapping[str, Any] | None = None,
    plugins: Mapping[str, Any] | None = None,
    parent_run: str | None = None,
    *,
    workdir: Path | str | None = None,
    run_id: str | None = None,
) -> str:
    """Record a new run (status ``running``). :returns: its id."""
    from llmos.sdk import new_run_id

    rid = run_id or new_run_id()
    cfg = _check_json(redact(dict(config or {})), "run config")
    plg = _check_json(redact(dict(plugins or {})), "run plugins")
    with store.session(write=True) as s:
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


def log_run_metrics(store: Store, run_id: str, rows: Iterable[Sequence[Any] | Mapping[str, Any]]) -> int:
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
    with store.session(write=True) as s:
        if s.get(Run, run_id) is None:
            raise NotFoundError(f"run {run_id!r} does not exist (see: llmos runs list)")
        s.execute(insert(RunMetric), batch)
    return len(batch)


def log_run_stage(store: Store,
    run_id: str,
    stage_id: str,
    component: str,
    status: str,
    duration_s: float | None = None,
    result: Mapping[str, Any] | None = None,
) -> None:
    """Record how a stage of a run ended (``status``: completed, failed, skipped...)."""
    payload = _check_json(redact(dict(result or {})), "stage result")
    with store.session(write=True) as s:
        if s.get(Run, run_id) is None:
            raise NotFoundError(f"run {run_id!r} does not exist (see: llmos runs list)")
        s.add(RunStage(run_id=run_id, stage_id=stage_id, component=component, status=status,
                       duration_s=duration_s, result=payload))


def finish_run(store: Store, run_id: str, status: str = "completed", summary: Mapping[str, Any] | None = None) -> None:
    """Mark a run finished (``completed``, ``failed``, ``interrupted``...) with a summary."""
    payload = _check_json(redact(dict(summary or {})), "run summary")
    with store.session(write=True) as s:
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


def prune_run_metrics(store: Store, before_ts: float, *, pipeline: str | None = None, run_id: str | None = None) -> int:
    """Delete metric points recorded before ``before_ts`` (a Unix time) of the runs of
    ``pipeline`` (or of one run): the retention of long-running servers' metrics.
    :returns: rows deleted."""
    if pipeline is None and run_id is None:
        raise ValidationError("prune_run_metrics needs a pipeline or a run id")
    with store.session(write=True) as s:
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


def heartbeat_runs(store: Store, run_ids: Iterable[str]) -> None:
    """Refresh the heartbeat of these (running) runs: this process is alive."""
    ids = list(run_ids)
    if not ids:
        return
    from sqlalchemy import update

    with store.session(write=True) as s:
        s.execute(update(Run).where(Run.id.in_(ids), Run.status == "running").values(heartbeat_at=utcnow()))


def _run_info(store: Store, s: Session, run: Run, *, detail: bool = True) -> RunInfo:
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


def get_run(store: Store, run_id: str) -> RunInfo:
    """One run with its stages; ``run_id`` may be a unique prefix."""
    with store.session() as s:
        run = s.get(Run, run_id)
        if run is None:
            matches = s.scalars(select(Run).where(Run.id.startswith(run_id, autoescape=True)).limit(2)).all()
            if len(matches) == 1:
                run = matches[0]
            elif len(matches) > 1:
                raise ConflictError(f"run id prefix {run_id!r} is ambiguous: give more characters")
        if run is None:
            raise NotFoundError(f"run {run_id!r} does not exist (see: llmos runs list)")
        return _run_info(store, s, run)


def list_runs(store: Store,
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
    with store.session() as s:
        q = select(Run).order_by(Run.started_at.desc(), Run.id.desc())
        if not live:
            q = q.limit(limit)
        if pipeline:
            q = q.where(Run.pipeline == pipeline)
        if parent_run:
            q = q.where(Run.parent_run_id == parent_run)
        if status:
            q = q.where(Run.status == ("running" if live else status))
        infos = [_run_info(store, s, r, detail=False) for r in s.scalars(q).all()]
        return [i for i in infos if i.status == status][:limit] if live else infos


def run_metrics(store: Store, run_id: str, name: str | None = None, *, kind: str | None = None) -> list[MetricPoint]:
    """Metric points of a run, in step/time order: ``{"kind", "step", "name", "value", "ts"}``."""
    with store.session() as s:
        q = select(RunMetric.kind, RunMetric.step, RunMetric.name, RunMetric.value, RunMetric.ts).where(
            RunMetric.run_id == run_id
        )
        if name:
            q = q.where(RunMetric.name == name)
        if kind:
            q = q.where(RunMetric.kind == kind)
        q = q.order_by(RunMetric.name, RunMetric.step, RunMetric.ts, RunMetric.id)
        return [{"kind": k, "step": st, "name": n, "value": v, "ts": t} for k, st, n, v, t in s.execute(q).all()]

