"""The pipeline runner: runs the stages of a validated :class:`~llmos.pipeline.spec.Pipeline`
and records everything in the registry.

What a run does, in order:

1. ``reg.create_run`` (config after overrides, plugin versions used) → ``run_id``;
   workdir ``$LLMOS_HOME/runs/<run_id>/``; ``llmos_before_run``.
2. For each stage: ``llmos_before_stage``; seed Python/NumPy/torch from
   ``(pipeline seed, stage id)``; ``component.create(config).run(ctx)``; record the
   stage (status, duration, result) and call ``llmos_after_stage`` or
   ``llmos_on_stage_error``.
3. ``reg.finish_run`` with status ``completed``, ``failed`` or ``interrupted`` and a
   summary (stages, metrics, versions); ``llmos_after_run``.

Metrics from ``ctx.log_metrics`` are buffered and written in batches (one
transaction per batch, never one per step). Ctrl-C sets ``ctx.stop_event``: steps
check ``ctx.should_stop``, checkpoint and return, and the run ends ``interrupted``;
a second Ctrl-C raises ``KeyboardInterrupt`` at once.

**Resume** (``resume=RUN_ID``): the same run id and workdir, ``ctx.resume = True``.
Every stage runs again: steps are expected to be cheap to repeat or to continue
from what they left in ``ctx.checkpoint_dir()`` (the data stage reuses its cache,
the model stage rebuilds the same weights from the same seed, the trainer loads
its latest checkpoint — a finished trainer its final one). Registering a model
version is idempotent across attempts: a stage that registered a version before
the interruption gets the same version back instead of a new one.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from llmos.artifacts import LINEAGE, METRICS, MODEL_VERSION
from llmos.components import jsonable as _jsonable
from llmos.context import RunContext
from llmos.errors import ConflictError, LlmosError, ValidationError
from llmos.errors import exc_line as _exc_line
from llmos.pipeline.display import Display
from llmos.pipeline.spec import Pipeline, Stage
from llmos.runs import MetricBuffer, new_run_id

__all__ = ["MetricBuffer", "RunResult", "Runner", "StageRecord", "new_run_id", "run_pipeline"]

COMPLETED, FAILED, INTERRUPTED, RUNNING = "completed", "failed", "interrupted", "running"


@dataclass
class StageRecord:
    id: str
    use: str
    plugin: str
    status: str
    duration_s: float
    result: Any = None
    error: str | None = None
    traceback: str | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "use": self.use, "plugin": self.plugin, "status": self.status,
            "duration_s": round(self.duration_s, 3), "result": _jsonable(self.result), "error": self.error,
        }


@dataclass
class RunResult:
    run_id: str
    pipeline: str
    status: str
    stages: list[StageRecord] = field(default_factory=list)
    versions: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    duration_s: float = 0.0
    workdir: Path | None = None
    error: BaseException | None = None
    artifacts: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id, "pipeline": self.pipeline, "status": self.status,
            "duration_s": round(self.duration_s, 3), "stages": [s.to_dict() for s in self.stages],
            "versions": self.versions, "metrics": _jsonable(self.metrics),
            "workdir": str(self.workdir) if self.workdir else None, "artifacts": self.artifacts,
            "error": _exc_line(self.error) if self.error else None,
        }


def _describe(value: Any) -> str:
    """One line about an artifact for the run's summary: strings as they are, objects by type."""
    if isinstance(value, (str, int, float)):
        return str(value)
    return f"{type(value).__module__}.{type(value).__qualname__}"



# ---------------------------------------------------------------------------
# the runner
# ---------------------------------------------------------------------------


def stage_seed(seed: int, stage_id: str) -> int:
    """The seed a stage starts with: stable across runs and resumes, distinct per stage."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{stage_id}".encode()).digest()[:4], "little") & 0x7FFFFFFF


def seed_everything(seed: int) -> None:
    """Seed Python's ``random`` and, when they are already imported, NumPy and torch
    (the core never imports them itself)."""
    random.seed(seed)
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed(seed)
    if "torch" in sys.modules:
        sys.modules["torch"].manual_seed(seed)


def plugin_versions(manager: Any, pipeline: Pipeline) -> dict[str, str]:
    """``{plugin: version}`` of the plugins the pipeline's stages come from."""
    out = {}
    for st in pipeline.stages:
        info = manager.plugins.get(st.plugin)
        out[st.plugin] = (info.version if info is not None and info.version else None) or (
            "code" if info is not None and info.source == "code" else "unknown"
        )
    from llmos import __version__

    out["llmos"] = __version__
    return out


class _State:
    """``run.json`` in the workdir: what survives between attempts of one run."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = {"attempts": 0, "registered": {}, "children": {}}
        if path.exists():
            self.data.update(json.loads(path.read_text()))

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1))
        os.replace(tmp, self.path)


class Runner:
    """Runs one pipeline once (or resumes one run). Use :func:`run_pipeline`."""

    def __init__(self, pipeline: Pipeline, *, manager: Any, registry: Any, display: Display, nproc: int = 1) -> None:
        self.pipeline, self.manager, self.reg, self.display = pipeline, manager, registry, display
        self.nproc = nproc
        self.versions: list[str] = []
        self._stage_error: BaseException | None = None

    # -- registry connections -----------------------------------------------------

    def _registrar(self, ctx_getter: Any, state: _State) -> Any:
        counters: dict[str, int] = {}

        def register(path: Path, **kwargs: Any) -> Any:
            ctx: RunContext = ctx_getter()
            sid = ctx.stage.id if ctx.stage is not None else "run"
            counters[sid] = counters.get(sid, 0) + 1
            key = f"{ctx.run_id}/{sid}#{counters[sid]}"
            if key in state.data["registered"]:  # registered by an earlier attempt of this run
                ref = state.data["registered"][key]
                if ref not in self.versions:
                    self.versions.append(ref)
                return self.reg.resolve(ref)
            model = kwargs.pop("model", None) or self.pipeline.name
            lineage = {"run_id": ctx.run_id, "pipeline": self.pipeline.name, "stage": sid,
                       **(LINEAGE.get(ctx) or {}), **(kwargs.pop("lineage", None) or {})}
            parents = kwargs.pop("parents", None)
            if parents is None and MODEL_VERSION.get(ctx):
                parents = [MODEL_VERSION.get(ctx)]
            kwargs.setdefault("run_id", ctx.run_id)
            version = self.reg.register_version(model, path, lineage=lineage, parents=parents or [], **kwargs)
            ref = getattr(version, "ref", None) or f"{version.model}:{version.number}"
            state.data["registered"][key] = ref
            state.save()
            self.versions.append(ref)
            return version

        return register

    @contextmanager
    def _child_factory(self, parent: RunContext, name: str, config: dict[str, Any], state: _State
                       ) -> Iterator[RunContext]:
        key = f"{parent.run_id}/{parent.stage.id if parent.stage is not None else 'run'}/{name}"
        child_id = state.data["children"].get(key)
        resume = False
        if child_id is not None and parent.resume:
            run = self.reg.get_run(child_id)
            resume = _field(run, "status") != COMPLETED
            self._reopen(child_id)
        else:
            child_id = new_run_id()
            self.reg.create_run(
                pipeline=self.pipeline.name, config=_jsonable(config),
                plugins=plugin_versions(self.manager, self.pipeline), parent_run=parent.run_id,
                run_id=child_id, workdir=str(parent.workdir / "children" / name),
            )
            state.data["children"][key] = child_id
            state.save()
        writer = MetricBuffer(self.reg, child_id)
        heartbeat = getattr(self, "_heartbeat", None)
        if heartbeat is not None:
            heartbeat.add(child_id)
        workdir = parent.workdir / "children" / name
        workdir.mkdir(parents=True, exist_ok=True)
        child = replace(parent, run_id=child_id, workdir=workdir, artifacts=dict(parent.artifacts),
                        _metric_writer=writer, resume=resume)
        status, error = COMPLETED, None
        t0 = time.perf_counter()
        try:
            yield child
        except KeyboardInterrupt as exc:
            status, error = INTERRUPTED, exc
            raise
        except BaseException as exc:
            status, error = FAILED, exc
            raise
        finally:
            if status == COMPLETED and parent.should_stop:
                status = INTERRUPTED
            writer.flush()
            if heartbeat is not None:
                heartbeat.discard(child_id)
            self.reg.finish_run(child_id, status=status, summary={
                "name": name, "metrics": _jsonable(METRICS.get(child) or {}),
                "duration_s": round(time.perf_counter() - t0, 3), "error": _exc_line(error) or None,
            })

    def _reopen(self, run_id: str) -> None:
        import datetime as dt

        self.reg.finish_run(run_id, status=RUNNING,
                            summary={"resumed_at": dt.datetime.now(dt.timezone.utc).isoformat()})

    def _log_stage(self, run_id: str, rec: StageRecord, attempt: int) -> None:
        result = {"plugin": rec.plugin, "attempt": attempt, "error": rec.error}
        if isinstance(rec.result, dict):
            result["result"] = _jsonable(rec.result)
        elif rec.result is not None:
            result["result"] = _jsonable(rec.result)
        self.reg.log_run_stage(run_id, rec.id, rec.use, rec.status, round(rec.duration_s, 3), result)

    # -- running --------------------------------------------------------------------

    def run(self, resume: str | None = None, handle_sigint: bool = True) -> RunResult:
        from llmos.config import home

        from llmos.liveness import Heartbeat, RunLock, check_not_running_elsewhere

        pipe, reg = self.pipeline, self.reg
        plugins = plugin_versions(self.manager, pipe)
        if resume:
            info = reg.get_run(resume)
            if _field(info, "pipeline") != pipe.name:
                raise ValidationError(
                    f"run {resume} belongs to pipeline {_field(info, 'pipeline')!r}, not {pipe.name!r}"
                )
            if _field(info, "status") == COMPLETED:
                raise ConflictError(f"run {resume} already completed: start a new run instead of resuming it")
            run_id = _field(info, "id") or resume
            check_not_running_elsewhere(info)
            # one process per run: the lock is held until this process ends the run (or dies)
            lock = RunLock(home() / "runs" / str(run_id), run_id).acquire()
            try:
                self._reopen(run_id)
            except BaseException:
                lock.release()
                raise
        else:
            run_id = new_run_id()
            lock = RunLock(home() / "runs" / run_id, run_id).acquire()
            try:
                reg.create_run(pipeline=pipe.name, config=_jsonable(pipe.data), plugins=plugins, run_id=run_id,
                               workdir=str(home() / "runs" / run_id))
            except BaseException:
                lock.release()
                raise
        heartbeat = Heartbeat(reg, run_id).start()
        try:
            return self._run_locked(run_id, resume, plugins, heartbeat, handle_sigint)
        finally:
            heartbeat.stop()
            lock.release()

    def _run_locked(self, run_id: str, resume: str | None, plugins: dict[str, str], heartbeat: Any,
                    handle_sigint: bool) -> RunResult:
        from llmos.config import home

        pipe, reg = self.pipeline, self.reg
        self._heartbeat = heartbeat
        workdir = home() / "runs" / str(run_id)
        workdir.mkdir(parents=True, exist_ok=True)
        state = _State(workdir / "run.json")
        state.data["attempts"] += 1
        state.save()
        writer = MetricBuffer(reg, run_id)
        ctx = RunContext(run_id=run_id, spec=pipe, workdir=workdir, seed=pipe.seed, resume=bool(resume),
                         manager=self.manager, nproc=self.nproc)
        ctx._metric_writer = writer
        ctx._progress_factory = self.display.task
        ctx._version_registrar = self._registrar(lambda: ctx_holder[0], state)
        ctx._child_factory = lambda parent, name, config: self._child_factory(parent, name, config, state)
        ctx_holder = [ctx]

        result = RunResult(run_id=run_id, pipeline=pipe.name, status=RUNNING, workdir=workdir)
        t_run = time.perf_counter()
        previous_handlers: dict[int, Any] = {}
        if handle_sigint and threading.current_thread() is threading.main_thread():
            def on_signal(signum: int, frame: Any) -> None:
                if ctx.stop_event.is_set():
                    raise KeyboardInterrupt
                ctx.stop_event.set()
                again = "press Ctrl-C" if signum == signal.SIGINT else "send SIGTERM"
                self.display.print(f"Stopping: saving a checkpoint ({again} again to abort now)")

            # SIGTERM (systemd, Docker, Kubernetes) stops a run as Ctrl-C does: checkpoint,
            # flush the buffered metrics, record it interrupted and resumable
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous_handlers[sig] = signal.signal(sig, on_signal)
        self.manager.notify("llmos_before_run", ctx=ctx)
        try:
            for stage in pipe.stages:
                if ctx.should_stop:
                    result.status = INTERRUPTED
                    break
                rec = self._run_stage(ctx, stage)
                result.stages.append(rec)
                self._log_stage(run_id, rec, state.data["attempts"])
                if rec.status != COMPLETED:
                    result.status = rec.status
                    result.error = self._stage_error
                    break
            else:
                result.status = COMPLETED
        except BaseException as exc:  # noqa: BLE001 - recorded, then re-raised by the caller
            result.status = INTERRUPTED if isinstance(exc, KeyboardInterrupt) else FAILED
            result.error = exc
        finally:
            for sig, handler in previous_handlers.items():
                signal.signal(sig, handler)
            heartbeat.stop()
            result.duration_s = time.perf_counter() - t_run
            result.versions = list(self.versions)
            result.metrics = dict(METRICS.get(ctx) or {})
            result.artifacts = {k: _describe(v) for k, v in sorted(ctx.artifacts.items())}
            try:
                writer.flush()
            finally:
                reg.finish_run(run_id, status=result.status, summary=self._summary(result, plugins, state))
                self.manager.notify("llmos_after_run", ctx=ctx, status=result.status, error=result.error)
        return result

    def _run_stage(self, ctx: RunContext, stage: Stage) -> StageRecord:
        ctx.stage = stage
        self.manager.notify("llmos_before_stage", ctx=ctx, stage=stage)
        seed_everything(stage_seed(ctx.seed, stage.id))
        t0 = time.perf_counter()
        rec = StageRecord(stage.id, stage.use, stage.plugin, RUNNING, 0.0)
        try:
            step = stage.component.create(stage.config)
            runner = getattr(step, "run", None) or step
            if not callable(runner):
                raise ValidationError(f"{stage.use} did not return a step (an object with run(ctx))")
            rec.result = runner(ctx)
        except KeyboardInterrupt as exc:
            rec.status, rec.error, rec.duration_s = INTERRUPTED, "interrupted (Ctrl-C)", time.perf_counter() - t0
            self._stage_error = exc
            self.manager.notify("llmos_on_stage_error", ctx=ctx, stage=stage, error=exc)
            return rec
        except Exception as exc:  # noqa: BLE001 - recorded and reported
            rec.status, rec.error, rec.duration_s = FAILED, _exc_line(exc), time.perf_counter() - t0
            rec.traceback = traceback.format_exc()
            self._stage_error = exc
            self.manager.notify("llmos_on_stage_error", ctx=ctx, stage=stage, error=exc)
            return rec
        rec.duration_s = time.perf_counter() - t0
        if ctx.should_stop:
            rec.status = INTERRUPTED
            self.manager.notify("llmos_on_stage_error", ctx=ctx, stage=stage, error=KeyboardInterrupt())
            return rec
        rec.status = COMPLETED
        self.manager.notify("llmos_after_stage", ctx=ctx, stage=stage, result=rec.result, duration_s=rec.duration_s)
        return rec

    def _summary(self, result: RunResult, plugins: dict[str, str], state: _State) -> dict[str, Any]:
        return {
            "pipeline": result.pipeline,
            "status": result.status,
            "duration_s": round(result.duration_s, 3),
            "stages": [s.to_dict() for s in result.stages],
            "versions": result.versions,
            "metrics": _jsonable(result.metrics),
            "artifacts": result.artifacts,
            "plugins": plugins,
            "attempts": state.data["attempts"],
            "workdir": str(result.workdir),
            "error": _exc_line(result.error) or None,
        }


def _field(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def run_pipeline(
    pipeline: Pipeline,
    *,
    resume: str | None = None,
    manager: Any = None,
    registry: Any = None,
    display: Display | None = None,
    nproc: int = 1,
    handle_sigint: bool = True,
) -> RunResult:
    """Run ``pipeline`` (or resume run ``resume`` of it) and return what happened.

    Failures inside a stage do not raise: the result has ``status`` ``failed`` or
    ``interrupted`` and ``error`` set (and the run is recorded so). Errors before the
    run starts (an unknown run to resume, a completed run) raise :class:`LlmosError`.
    """
    if manager is None:
        from llmos.plugins import get_manager

        manager = get_manager()
    if registry is None:
        from llmos.registry import open_registry

        registry = open_registry(notify=manager.notify)  # version and alias events reach this manager
    display = display or Display(quiet=True)
    runner = Runner(pipeline, manager=manager, registry=registry, display=display, nproc=nproc)
    with display:
        return runner.run(resume=resume, handle_sigint=handle_sigint)
