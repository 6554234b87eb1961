"""Recording runs: the one run-id format and the one metric buffer of llmos.

Used by the pipeline runner (``ctx.log_metrics``), llmos-monitor (system samples,
serving aggregates) and the registry (ids of runs created without one); plugins get
them through the SDK. Light: no SQLAlchemy, no third-party import.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from typing import Any

#: A metric row as written: ``(kind, step, name, value, timestamp)``.
Row = tuple[str, int | None, str, float, float]


def new_run_id() -> str:
    """``20261123-084501-1a2b3c``: UTC start time (sortable), then 6 random hex digits."""
    return f"{dt.datetime.now(dt.timezone.utc):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"


class MetricBuffer:
    """Collects metric rows of one run and writes them to the registry in batches
    (``reg.log_run_metrics``: one transaction per batch, never one per step).

    Rows are written when ``max_rows`` are waiting or ``max_age_s`` seconds have
    passed since the last write (checked on :meth:`add`), and on :meth:`flush`.
    Thread-safe: a training loop, a sampler thread and serving threads may add at
    once; writes are serialised, so rows reach the database in the order added.

    Calling the buffer (``buf(kind, step, metrics)``) is :meth:`add`: that is the
    signature of the runner's metric writer.
    """

    def __init__(self, reg: Any, run_id: str, *, max_rows: int = 512, max_age_s: float = 5.0) -> None:
        self.reg, self.run_id = reg, run_id
        self.max_rows, self.max_age_s = max_rows, max_age_s
        self.latest: dict[str, float] = {}  # "kind/name" -> last value added
        self.written = 0
        self._rows: list[Row] = []
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._last = time.monotonic()

    def add(self, kind: str, step: int | None, metrics: dict[str, float], timestamp: float | None = None) -> None:
        ts = time.time() if timestamp is None else timestamp
        rows = [(kind, step, str(k), float(v), ts) for k, v in metrics.items()]
        with self._lock:
            self._rows.extend(rows)
            for _, _, name, value, _ in rows:
                self.latest[f"{kind}/{name}"] = value
            due = len(self._rows) >= self.max_rows or time.monotonic() - self._last >= self.max_age_s
        if due:
            self.flush()

    __call__ = add

    def add_rows(self, rows: list[Row]) -> None:
        """Queue rows already in ``(kind, step, name, value, timestamp)`` form (written on the next flush)."""
        if rows:
            with self._lock:
                self._rows.extend(rows)

    def flush(self) -> None:
        with self._write_lock:
            with self._lock:
                rows, self._rows = self._rows, []
                self._last = time.monotonic()
            if rows:
                self.reg.log_run_metrics(self.run_id, rows)
                self.written += len(rows)

    close = flush


def flatten_config(d: Any, prefix: str = "") -> dict[str, Any]:
    """A run's settings as ``{"stages.train.config.lr": 0.001, ...}`` (stages keyed by id):
    what ``llmos runs compare`` and the dashboard diff."""
    out: dict[str, Any] = {}
    if isinstance(d, dict):
        for k, v in d.items():
            out.update(flatten_config(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(d, list) and d and all(isinstance(x, dict) for x in d):
        for i, v in enumerate(d):
            key = v.get("id") or v.get("use") or str(i)
            out.update(flatten_config({k: x for k, x in v.items() if k != "id"}, f"{prefix}.{key}"))
    else:
        out[prefix] = d
    return out
