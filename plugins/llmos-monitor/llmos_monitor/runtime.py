"""What the monitor's lifecycle hooks do (imported on the first hook call).

- **Runs**: on ``llmos_before_run`` a :class:`~llmos_monitor.sampler.SystemSampler`
  starts for the run; its samples are persisted as ``kind="system"`` metrics of the
  run (batched) and passed to metric sinks through ``llmos_after_metrics`` with
  ``source="system:<run id>"``. ``llmos_after_run`` stops the sampler and
  flushes. Stage durations are in the run's stages (written by the runner) and
  exported to Prometheus. Training and evaluation metrics are *not* written here: the pipeline
  runner already persists them (``RunContext.log_metrics``).
- **Serving**: the first ``llmos_after_request`` (or ``llmos_after_metrics`` with a
  ``serve`` source) in a process creates a run with ``pipeline="serve"`` for that
  server process. Requests are aggregated per interval and (version, endpoint) into
  ``kind="request"`` rows (:mod:`llmos_monitor.serving`: counts, sums, quantiles; old
  rows pruned after a retention window),
  server metrics ``kind="serve"``, and system samples ``kind="system"``, written in
  batches by a background flusher. The run is finished at exit (or by
  :func:`stop_serve_monitor`).

Settings (environment): ``LLMOS_MONITOR_INTERVAL`` seconds between system samples
(default 1), ``LLMOS_MONITOR_SYSTEM=0`` turns the sampler off,
``LLMOS_PROMETHEUS_PORT`` starts a Prometheus exporter at run start.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
import time
from typing import Any

from llmos.sdk import Heartbeat, MetricBuffer, redact_argv

from llmos_monitor import prometheus, serving
from llmos_monitor.sampler import SystemSampler
from llmos_monitor.store import open_registry

log = logging.getLogger("llmos.monitor")

_lock = threading.RLock()
_runs: dict[str, RunMonitor] = {}
_serve: ServeMonitor | None = None
# serving hook calls in progress: at exit we wait for them (the first one opens the
# registry, which can take seconds) before finishing the serve run
_inflight = 0
_inflight_cv = threading.Condition()
_exiting = False


def sample_interval() -> float:
    raw = os.environ.get("LLMOS_MONITOR_INTERVAL", "1.0")
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        from llmos.sdk import ValidationError

        raise ValidationError(f"LLMOS_MONITOR_INTERVAL must be a number of seconds > 0, got {raw!r}")
    return value


def system_sampling_enabled() -> bool:
    return os.environ.get("LLMOS_MONITOR_SYSTEM", "1").lower() not in ("0", "false", "no", "off")


def _maybe_start_exporter() -> None:
    port = os.environ.get("LLMOS_PROMETHEUS_PORT")
    if port and prometheus.active() is None:
        prometheus.start_exporter(int(port))


def _notify(manager: Any, source: str, step: int | None, metrics: dict[str, float]) -> None:
    if manager is None:
        from llmos.sdk import get_manager

        manager = get_manager()
    manager.notify("llmos_after_metrics", source=source, step=step, metrics=metrics)


# ---------------------------------------------------------------------------
# pipeline runs
# ---------------------------------------------------------------------------


class RunMonitor:
    """Samples the system during one pipeline run and persists the samples."""

    def __init__(self, run_id: str, manager: Any = None, interval_s: float | None = None,
                 registry: Any = None) -> None:
        self.run_id = run_id
        self.manager = manager
        self.reg = registry if registry is not None else open_registry()
        self.buffer = MetricBuffer(self.reg, run_id, max_rows=1000, max_age_s=5.0)
        self.sampler: SystemSampler | None = None
        if system_sampling_enabled():
            self.sampler = SystemSampler(interval_s or sample_interval(), self._on_sample)

    def _on_sample(self, seq: int, metrics: dict[str, float]) -> None:
        self.buffer.add("system", seq, metrics)
        m = prometheus.active()
        if m is not None:
            for name, value in metrics.items():
                m.system.labels(f"run:{self.run_id}", name).set(value)
        _notify(self.manager, f"system:{self.run_id}", seq, metrics)

    def start(self) -> None:
        if self.sampler is not None:
            self.sampler.start()

    def stage_done(self, stage_id: str, duration_s: float) -> None:
        # the runner records stage durations in the run's stages table; export only
        m = prometheus.active()
        if m is not None:
            m.stage.labels(self.run_id, stage_id).set(duration_s)

    def stop(self) -> None:
        if self.sampler is not None:
            self.sampler.stop()
        try:
            self.buffer.flush()
        except Exception as exc:  # noqa: BLE001 - losing samples must not disable the monitor
            log.warning("run %s: cannot write system samples: %s", self.run_id, exc)


def on_run_start(ctx: Any) -> None:
    _maybe_start_exporter()
    if ctx.run_id is None:  # an unrecorded run: nothing to persist to
        return
    # write where the runner writes: its metric writer knows the run's registry
    registry = getattr(getattr(ctx, "_metric_writer", None), "reg", None)
    mon = RunMonitor(str(ctx.run_id), getattr(ctx, "manager", None), registry=registry)
    with _lock:
        _runs[str(ctx.run_id)] = mon
    mon.start()


def after_stage(ctx: Any, stage: Any, duration_s: float) -> None:
    mon = _runs.get(str(ctx.run_id))
    if mon is not None:
        mon.stage_done(str(getattr(stage, "id", stage)), duration_s)


def on_run_end(ctx: Any) -> None:
    with _lock:
        mon = _runs.pop(str(ctx.run_id), None)
    if mon is not None:
        mon.stop()


def on_train_step(ctx: Any, step: int, metrics: dict[str, float]) -> None:
    m = prometheus.active()
    if m is not None:
        run = str(ctx.run_id)
        m.step.labels(run).set(step)
        for name, value in metrics.items():
            m.train.labels(run, name).set(value)


def on_evaluate(ctx: Any, metrics: dict[str, float]) -> None:
    m = prometheus.active()
    if m is not None:
        for name, value in metrics.items():
            m.eval.labels(str(ctx.run_id), name).set(value)


# ---------------------------------------------------------------------------
# serving
# ---------------------------------------------------------------------------


class ServeMonitor:
    """Persists one server process's request and system metrics as a ``serve`` run."""

    def __init__(self, *, model: str | None = None, flush_interval_s: float = 2.0,
                 interval_s: float | None = None) -> None:
        self.reg = open_registry()
        plugins = {d: v for d in ("llmos", "llmos-serve", "llmos-monitor") if (v := _dist_version(d))}
        self.run_id = str(
            self.reg.create_run(
                pipeline="serve",
                # the command line without its secrets (--admin-token, --api-key, URL passwords)
                config={"pid": os.getpid(), "argv": redact_argv(sys.argv[:64]), "model": model,
                        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
                plugins=plugins,
            )
        )
        self.buffer = MetricBuffer(self.reg, self.run_id, max_rows=2000, max_age_s=flush_interval_s)
        # requests are aggregated per interval, and old rows pruned: bounded growth (llmos_monitor.serving)
        self.aggregator = serving.RequestAggregator()
        self._next_prune = 0.0
        self._prune()
        self.heartbeat = Heartbeat(self.reg, self.run_id).start()
        self.requests = 0
        self._seq: dict[str, int] = {}
        self._count_lock = threading.Lock()
        self._stop = threading.Event()
        self._flusher = threading.Thread(target=self._flush_loop, args=(flush_interval_s,),
                                         name="llmos-serve-metrics", daemon=True)
        self._flusher.start()
        self.sampler: SystemSampler | None = None
        if system_sampling_enabled():
            # a server runs for days: sample as often as requests are aggregated, unless told otherwise
            every = interval_s or (sample_interval() if os.environ.get("LLMOS_MONITOR_INTERVAL")
                                   else self.aggregator.width_s)
            self.sampler = SystemSampler(every, self._on_sample).start()
        self.closed = False

    def _prune(self) -> None:
        if time.monotonic() < self._next_prune:
            return
        self._next_prune = time.monotonic() + 3600
        try:
            deleted = serving.prune(self.reg)
            if deleted:
                log.info("pruned %d serving metric rows older than %g days", deleted, serving.retention_days())
        except Exception as exc:  # noqa: BLE001 - keep serving
            log.warning("cannot prune old serving metrics: %s", exc)

    def _flush_loop(self, every: float) -> None:
        while not self._stop.wait(every):
            try:
                self.buffer.add_rows(self.aggregator.drain())
                self.buffer.flush()
                self._prune()
            except Exception as exc:  # noqa: BLE001 - keep serving; report once per failure
                log.warning("cannot write serving metrics: %s", exc)

    def _on_sample(self, seq: int, metrics: dict[str, float]) -> None:
        self.buffer.add("system", seq, metrics)
        m = prometheus.active()
        if m is not None:
            for name, value in metrics.items():
                m.system.labels("serve", name).set(value)
        _notify(None, f"system:{self.run_id}", seq, metrics)

    def request(self, request: dict[str, Any], metrics: dict[str, float]) -> None:
        with self._count_lock:
            self.requests += 1
            seq = self.requests
        values = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}
        status = request.get("status")
        self.aggregator.add(request, values)
        m = prometheus.active()
        if m is not None:
            model = str(request.get("model", ""))
            m.requests.labels(model, str(request.get("endpoint", "")), str(status)).inc()
            if "latency_s" in values:
                m.latency.labels(model).observe(values["latency_s"])
            if "completion_tokens" in values:
                m.tokens.labels(model).inc(values["completion_tokens"])

    def metrics(self, source: str, step: int | None, metrics: dict[str, float]) -> None:
        if step is None:
            with self._count_lock:
                step = self._seq[source] = self._seq.get(source, -1) + 1
        self.buffer.add("serve", step, {k: float(v) for k, v in metrics.items()})

    def close(self, status: str = "completed") -> None:
        if self.closed:
            return
        self.closed = True
        self._stop.set()
        if self.sampler is not None:
            self.sampler.stop()
        self._flusher.join(timeout=5)
        self.heartbeat.stop()
        self.buffer.add_rows(self.aggregator.drain(everything=True))
        self.buffer.flush()
        self.reg.finish_run(self.run_id, status=status, summary={"requests": self.requests})


def _dist_version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def serve_monitor(model: str | None = None) -> ServeMonitor | None:
    """This process's serving monitor (started on first use, finished at exit;
    ``None`` once the process is exiting)."""
    global _serve
    with _lock:
        if _exiting:
            return None
        if _serve is None or _serve.closed:
            _serve = ServeMonitor(model=model)
        return _serve


class _InFlight:
    def __enter__(self) -> None:
        global _inflight
        with _inflight_cv:
            _inflight += 1

    def __exit__(self, *exc: Any) -> None:
        global _inflight
        with _inflight_cv:
            _inflight -= 1
            _inflight_cv.notify_all()


def _at_exit(timeout_s: float = 30.0) -> None:
    global _exiting
    with _inflight_cv:
        _inflight_cv.wait_for(lambda: _inflight == 0, timeout=timeout_s)
    with _lock:
        _exiting = True  # events still arriving now must not start a second serve run
    try:
        stop_serve_monitor()
    except Exception as exc:  # noqa: BLE001 - the process is ending: report, do not raise
        log.warning("cannot finish the serve run: %s", exc)


atexit.register(_at_exit)


def stop_serve_monitor(status: str = "completed") -> str | None:
    """Finish this process's ``serve`` run now (a server calls this on shutdown).

    :returns: the run id, or ``None`` if nothing was served.
    """
    global _serve
    with _lock:
        mon, _serve = _serve, None
    if mon is None:
        return None
    mon.close(status)
    return mon.run_id


def on_request_served(request: dict[str, Any], metrics: dict[str, float]) -> None:
    with _InFlight():
        mon = serve_monitor(str(request.get("model") or "") or None)
        if mon is not None:
            mon.request(request, metrics)


def on_metrics(source: str, step: int | None, metrics: dict[str, float]) -> None:
    m = prometheus.active()
    if m is not None and not source.startswith("system:"):
        for name, value in metrics.items():
            m.other.labels(source, name).set(value)
    # system samples and run metrics are persisted by whoever produced them
    if source == "serve" or source.startswith("serve:"):
        with _InFlight():
            mon = serve_monitor()
            if mon is not None:
                mon.metrics(source, step, metrics)
