"""Prometheus metrics of a server (vLLM's metric set, Prometheus naming).

Names follow Prometheus's conventions: an ``llmos_`` prefix (no colon: colons
are reserved for recording rules), base units (seconds), ``_total`` on
counters. Labels ``model_name`` and ``version`` (``name:N``).

Each app has its own ``CollectorRegistry`` (several servers can live in one
process, e.g. in tests). The app's middleware and the engines' observers feed
the same :class:`ServeMetrics`.

With ``--workers N`` the server runs prometheus_client's *multiprocess mode*:
``llmos serve`` gives its workers a temporary ``$PROMETHEUS_MULTIPROC_DIR``
(removed when it stops), every worker writes its samples there, and the worker
answering ``/metrics`` reports the totals of all of them. The gauges (running
and waiting sequences, tokens per second) are then summed over live workers,
refreshed twice a second.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from typing import Any

_LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 20.0, 60.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
_LABELS = ["model_name", "version"]

#: the environment variable prometheus_client's multiprocess mode reads
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

_GAUGES = {
    "running": ("llmos_num_requests_running", "Sequences in the running batch."),
    "waiting": ("llmos_num_requests_waiting", "Sequences waiting for a batch slot (queue depth)."),
}
_TPS = ("llmos_generation_tokens_per_second", "Tokens generated per second over the last 10 s.")


def multiprocess_dir() -> str | None:
    """The multiprocess directory this process writes metrics to, if any."""
    return os.environ.get(MULTIPROC_ENV) or None


class ServeMetrics:
    """All metrics of one server."""

    def __init__(self, pool: Any) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

        disable_created_metrics()  # no *_created series: they only add noise to scrapes

        self.pool = pool
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.ttft = Histogram(
            "llmos_time_to_first_token_seconds", "Time from arrival to the first generated token.",
            _LABELS, buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.itl = Histogram(
            "llmos_inter_token_latency_seconds", "Time between two generated tokens of a request.",
            _LABELS, buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.e2e = Histogram(
            "llmos_e2e_request_latency_seconds", "Time from arrival to the last token.",
            _LABELS, buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.batch = Histogram(
            "llmos_batch_size", "Sequences decoded together in one forward pass.",
            _LABELS, buckets=_BATCH_BUCKETS, registry=r,
        )
        self.success = Counter(
            "llmos_request_success", "Finished sequences by reason.", _LABELS + ["finished_reason"], registry=r
        )
        self.prompt_tokens = Counter("llmos_prompt_tokens", "Prompt tokens processed.", _LABELS, registry=r)
        self.generation_tokens = Counter("llmos_generation_tokens", "Tokens generated.", _LABELS, registry=r)
        self.http = Counter(
            "llmos_http_requests", "HTTP requests by endpoint and status code.", ["endpoint", "status"], registry=r
        )
        self.errors = Counter(
            "llmos_request_errors", "Requests answered with an error, by status code.", ["status"], registry=r
        )
        self._recent: deque[tuple[float, int]] = deque()
        self._lock = threading.Lock()
        self.multiprocess = multiprocess_dir()
        if self.multiprocess:
            self._gauges = {
                k: Gauge(name, doc, _LABELS, multiprocess_mode="livesum", registry=r) for k, (name, doc) in _GAUGES.items()
            }
            self._tps = Gauge(*_TPS, multiprocess_mode="livesum", registry=r)
            self._seen: set[tuple[str, str]] = set()
            threading.Thread(target=self._refresh_loop, name="llmos-serve-gauges", daemon=True).start()
        else:
            r.register(_LiveCollector(self))

    def observer(self, loaded: Any) -> EngineObserver:
        return EngineObserver(self, loaded.name, loaded.ref)

    def note_tokens(self, n: int) -> None:
        now = time.monotonic()
        with self._lock:
            self._recent.append((now, n))
            while self._recent and now - self._recent[0][0] > 10.0:
                self._recent.popleft()

    def tokens_per_second(self) -> float:
        now = time.monotonic()
        with self._lock:
            while self._recent and now - self._recent[0][0] > 10.0:
                self._recent.popleft()
            total = sum(n for _, n in self._recent)
        return total / 10.0

    def live(self) -> list[tuple[str, str, int, int]]:
        """``(model name, version, running, waiting)`` per engine of this process."""
        return [(e.label.split(":")[0], e.label, e.num_running, e.num_waiting) for e in self.pool.engines()]

    def _refresh(self) -> None:
        now = set()
        for name, label, running, waiting in self.live():
            self._gauges["running"].labels(name, label).set(running)
            self._gauges["waiting"].labels(name, label).set(waiting)
            now.add((name, label))
        for gone in self._seen - now:  # a retired version: nothing runs there any more
            self._gauges["running"].labels(*gone).set(0)
            self._gauges["waiting"].labels(*gone).set(0)
        self._seen = now | self._seen
        self._tps.set(self.tokens_per_second())

    def _refresh_loop(self) -> None:
        while True:
            time.sleep(0.5)
            try:
                self._refresh()
            except Exception:  # noqa: BLE001 - metrics must never stop a server
                pass

    def render(self) -> bytes:
        from prometheus_client import CollectorRegistry, generate_latest

        if not self.multiprocess:
            return generate_latest(self.registry)
        from prometheus_client import multiprocess

        self._refresh()
        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged, path=self.multiprocess)
        return generate_latest(merged)


class EngineObserver:
    """Receives one engine's events (called from the engine thread)."""

    def __init__(self, metrics: ServeMetrics, model: str, version: str) -> None:
        self.m = metrics
        lv = (model, version)
        self._ttft = metrics.ttft.labels(*lv)
        self._itl = metrics.itl.labels(*lv)
        self._e2e = metrics.e2e.labels(*lv)
        self._batch = metrics.batch.labels(*lv)
        self._gen = metrics.generation_tokens.labels(*lv)
        self._prompt = metrics.prompt_tokens.labels(*lv)
        self._lv = lv

    def on_batch(self, size: int) -> None:
        self._batch.observe(size)
        self.m.note_tokens(size)

    def on_token(self, seq: Any, first: bool, interval: float) -> None:
        (self._ttft if first else self._itl).observe(interval)

    def on_finish(self, seq: Any) -> None:
        if seq.finish_reason in ("stop", "length"):
            self.m.success.labels(*self._lv, seq.finish_reason).inc()
        self._gen.inc(len(seq.generated))
        self._prompt.inc(len(seq.prompt_ids))
        if seq.t_end is not None and seq.t_submit:
            self._e2e.observe(seq.t_end - seq.t_submit)


class _LiveCollector:
    """Gauges read at scrape time (one process): running/waiting sequences, throughput."""

    def __init__(self, metrics: ServeMetrics) -> None:
        self.m = metrics

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Any:
        from prometheus_client.core import GaugeMetricFamily

        running = GaugeMetricFamily(*_GAUGES["running"], labels=_LABELS)
        waiting = GaugeMetricFamily(*_GAUGES["waiting"], labels=_LABELS)
        for name, label, r, w in self.m.live():
            running.add_metric([name, label], r)
            waiting.add_metric([name, label], w)
        yield running
        yield waiting
        tps = GaugeMetricFamily(*_TPS)
        tps.add_metric([], self.m.tokens_per_second())
        yield tps
