"""Notifications to plugins (monitoring), delivered from a thread off the event loop."""

from __future__ import annotations

import queue
import threading
import time
from typing import Any


class Notifier:
    """Calls ``llmos_after_request`` / ``llmos_after_metrics`` from a thread."""

    def __init__(self, metrics: Any, pool: Any, interval: float = 10.0) -> None:
        self.q: queue.Queue[tuple[dict[str, Any], dict[str, float]] | None] = queue.Queue(maxsize=10000)
        self.metrics, self.pool, self.interval = metrics, pool, interval
        self._thread = threading.Thread(target=self._run, name="llmos-serve-notify", daemon=True)
        self._step = 0
        self._served = False

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Deliver what is queued (bounded by ``timeout``), then end the thread."""
        try:
            self.q.put(None, timeout=timeout)
        except queue.Full:
            return
        if self._thread.is_alive():
            self._thread.join(timeout)

    def request_served(self, request: dict[str, Any], metrics: dict[str, float]) -> None:
        try:
            self.q.put_nowait((request, metrics))
        except queue.Full:  # monitoring must never slow serving down
            pass

    def _manager(self) -> Any:
        try:
            from llmos.sdk import get_manager

            return get_manager()
        except Exception:  # noqa: BLE001
            return None

    def _run(self) -> None:
        next_metrics = time.monotonic() + self.interval
        while True:
            try:
                item = self.q.get(timeout=max(0.05, next_metrics - time.monotonic()))
            except queue.Empty:
                item = ()  # type: ignore[assignment]
            manager = self._manager()
            if item is None:  # stopping: a last sample, so a short-lived server still reports its throughput
                if manager is not None and self._served:
                    self._sample(manager)
                return
            if item and manager is not None:
                self._served = True
                manager.notify("llmos_after_request", request=item[0], metrics=item[1])
            if time.monotonic() >= next_metrics:
                next_metrics = time.monotonic() + self.interval
                if manager is not None:
                    self._sample(manager)

    def _sample(self, manager: Any) -> None:
        self._step += 1
        engines = self.pool.engines()
        manager.notify(
            "llmos_after_metrics",
            source="serve",
            step=self._step,
            metrics={
                "requests_running": float(sum(e.num_running for e in engines)),
                "requests_waiting": float(sum(e.num_waiting for e in engines)),
                "generation_tokens_per_s": self.metrics.tokens_per_second(),
            },
        )
