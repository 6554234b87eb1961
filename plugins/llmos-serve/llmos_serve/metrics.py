"""Prometheus metrics (vLLM-style names under the ``llmos:`` prefix).

Each app has its own ``CollectorRegistry`` (several servers can live in one
process, e.g. in tests). Per-engine observers feed token timings; queue depth
and running requests are read from the engines at scrape time.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

_LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 20.0, 60.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class ServeMetrics:
    """All metrics of one server."""

    def __init__(self, pool: Any) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics

        disable_created_metrics()  # no *_created series: they only add noise to scrapes

        self.pool = pool
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        labels = ["model_name", "version"]
        self.ttft = Histogram(
            "llmos:time_to_first_token_seconds", "Time from arrival to the first generated token.",
            labels, buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.itl = Histogram(
            "llmos:inter_token_latency_seconds", "Time between two generated tokens of a request.",
            labels, buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.e2e = Histogram(
            "llmos:e2e_request_latency_seconds", "Time from arrival to the last token.",
            labels, buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.batch = Histogram(
            "llmos:batch_size", "Sequences decoded together in one forward pass.",
            labels, buckets=_BATCH_BUCKETS, registry=r,
        )
        self.success = Counter(
            "llmos:request_success", "Finished sequences by reason.", labels + ["finished_reason"], registry=r
        )
        self.prompt_tokens = Counter("llmos:prompt_tokens", "Prompt tokens processed.", labels, registry=r)
        self.generation_tokens = Counter("llmos:generation_tokens", "Tokens generated.", labels, registry=r)
        self.http = Counter(
            "llmos:http_requests", "HTTP requests by endpoint and status code.", ["endpoint", "status"], registry=r
        )
        self.errors = Counter(
            "llmos:request_errors", "Requests answered with an error, by status code.", ["status"], registry=r
        )
        self._recent: deque[tuple[float, int]] = deque()
        self._lock = threading.Lock()
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

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


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
    """Gauges read at scrape time: running/waiting requests, throughput."""

    def __init__(self, metrics: ServeMetrics) -> None:
        self.m = metrics

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Any:
        from prometheus_client.core import GaugeMetricFamily

        running = GaugeMetricFamily(
            "llmos:num_requests_running", "Sequences in the running batch.", labels=["model_name", "version"]
        )
        waiting = GaugeMetricFamily(
            "llmos:num_requests_waiting", "Sequences waiting for a batch slot (queue depth).",
            labels=["model_name", "version"],
        )
        for engine in self.m.pool.engines():
            name = engine.label.split(":")[0]
            running.add_metric([name, engine.label], engine.num_running)
            waiting.add_metric([name, engine.label], engine.num_waiting)
        yield running
        yield waiting
        tps = GaugeMetricFamily(
            "llmos:generation_tokens_per_second", "Tokens generated per second over the last 10 s."
        )
        tps.add_metric([], self.m.tokens_per_second())
        yield tps
