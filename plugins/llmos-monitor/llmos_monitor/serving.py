"""Serving metrics with bounded growth: per-interval aggregates and a retention window.

A server answering 10 requests/s would write 5 rows per request (4.3 million a day)
if every request were stored. Instead, requests are aggregated per
``$LLMOS_MONITOR_BUCKET_S`` seconds (default 10) and per (version, endpoint) into
``kind="request"`` rows of the serve run, one row per statistic:

- ``requests``, ``errors`` (status >= 400);
- ``latency_s.sum``, ``latency_s.p50``, ``latency_s.p95``, ``latency_s.max``;
- ``time_to_first_token_s.p50``/``.p95`` (streamed requests);
- ``prompt_tokens.sum``, ``completion_tokens.sum``;

named ``<statistic>[<version> <endpoint>]`` (``latency_s.p95[tiny:2 /v1/chat/completions]``),
with ``step`` = the bucket's number since the server started and ``ts`` = its start.
So the rows a day costs depend on the number of (version, endpoint) pairs that
served, not on the request rate (see the README for the figures).

Rows of ``serve`` runs older than ``$LLMOS_MONITOR_RETENTION_DAYS`` (default 14;
``0`` keeps everything) are deleted when a server starts and every hour while it
runs; ``llmos monitor prune`` does it on demand.
"""

from __future__ import annotations

import math
import os
import threading
import time
from typing import Any

from llmos.sdk import ValidationError

#: the statistics kept per bucket, in the order they are written
_SUMS = ("latency_s", "prompt_tokens", "completion_tokens")
_QUANTILES = {"latency_s": (50, 95), "time_to_first_token_s": (50, 95)}
_MAXES = ("latency_s",)


def _env_float(name: str, default: float, *, minimum: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not value >= minimum:
        raise ValidationError(f"{name} must be a number >= {minimum:g}, got {raw!r}")
    return value


def bucket_seconds() -> float:
    return _env_float("LLMOS_MONITOR_BUCKET_S", 10.0, minimum=0.01)


def retention_days() -> float:
    return _env_float("LLMOS_MONITOR_RETENTION_DAYS", 14.0, minimum=0.0)


def quantile(sorted_values: list[float], q: float) -> float:
    """The ``q``-th percentile (nearest rank) of already sorted values."""
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


class _Bucket:
    __slots__ = ("count", "errors", "sums", "values")

    def __init__(self) -> None:
        self.count = 0
        self.errors = 0
        self.sums: dict[str, float] = {}
        self.values: dict[str, list[float]] = {}


class RequestAggregator:
    """Aggregates served requests per time bucket and (version, endpoint). Thread-safe."""

    def __init__(self, width_s: float | None = None, start: float | None = None) -> None:
        self.width_s = width_s or bucket_seconds()
        self.start = time.time() if start is None else start
        self._buckets: dict[tuple[int, str, str], _Bucket] = {}
        self._lock = threading.Lock()

    def add(self, request: dict[str, Any], values: dict[str, float], ts: float | None = None) -> None:
        ts = time.time() if ts is None else ts
        n = max(0, int((ts - self.start) // self.width_s))
        version = str(request.get("version") or request.get("model") or "-")
        endpoint = str(request.get("endpoint") or "-")
        status = request.get("status", values.get("status"))
        with self._lock:
            b = self._buckets.get((n, version, endpoint))
            if b is None:
                b = self._buckets[(n, version, endpoint)] = _Bucket()
            b.count += 1
            if isinstance(status, (int, float)) and status >= 400:
                b.errors += 1
            for name in _SUMS:
                if name in values:
                    b.sums[name] = b.sums.get(name, 0.0) + values[name]
            for name in _QUANTILES:
                if name in values:
                    b.values.setdefault(name, []).append(values[name])

    def drain(self, now: float | None = None, *, everything: bool = False) -> list[tuple[str, int, str, float, float]]:
        """The rows of every bucket that has ended by ``now`` (or of all, at shutdown),
        which are then forgotten."""
        now = time.time() if now is None else now
        current = int((now - self.start) // self.width_s)
        with self._lock:
            done = sorted(k for k in self._buckets if everything or k[0] < current)
            buckets = [(k, self._buckets.pop(k)) for k in done]
        rows: list[tuple[str, int, str, float, float]] = []
        for (n, version, endpoint), b in buckets:
            ts = self.start + n * self.width_s
            label = f"[{version} {endpoint}]"
            stats: list[tuple[str, float]] = [("requests", float(b.count)), ("errors", float(b.errors))]
            stats += [(f"{name}.sum", b.sums[name]) for name in _SUMS if name in b.sums]
            for name, qs in _QUANTILES.items():
                vals = sorted(b.values.get(name) or [])
                if vals:
                    stats += [(f"{name}.p{q}", quantile(vals, q)) for q in qs]
                    if name in _MAXES:
                        stats.append((f"{name}.max", vals[-1]))
            rows += [("request", n, (stat + label)[:128], value, ts) for stat, value in stats]
        return rows


def prune(reg: Any, days: float | None = None) -> int:
    """Delete metric rows of ``serve`` runs older than ``days`` (default: the retention
    setting; ``0`` keeps everything). :returns: rows deleted."""
    days = retention_days() if days is None else days
    if days <= 0:
        return 0
    return int(reg.prune_run_metrics(time.time() - days * 86400, pipeline="serve"))
