"""System sampler: CPU %, memory, and per-process CPU/RSS at a fixed interval.

A background (daemon) thread calls :func:`sample` every ``interval_s`` seconds
and hands the values to ``callback(seq, metrics)``. The monitor plugin starts
one per pipeline run (persisted as ``kind="system"`` metrics of the run) and one
per serving process; any long-running stage can start its own::

    from llmos_monitor.sampler import SystemSampler

    with SystemSampler(interval_s=1.0, callback=lambda seq, m: print(seq, m)):
        serve_forever()

Metric names:

- ``cpu_percent`` — whole machine, ``mem_percent`` — whole machine;
- ``proc_cpu_percent``, ``proc_rss_bytes``, ``proc_threads`` — this process and
  its children together; ``proc_children`` — number of child processes;
- ``pid<N>_cpu_percent``, ``pid<N>_rss_bytes`` — each child process on its own
  (DataLoader workers, torchrun ranks...).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from typing import Any

Callback = Callable[[int, dict[str, float]], None]


class SystemSampler:
    """Samples the machine and a process tree in a background thread.

    :param interval_s: seconds between samples (> 0).
    :param callback: ``callback(seq, metrics)`` for every sample (``seq`` counts from 0).
    :param pid: root of the process tree to watch (default: this process).
    :param per_child: also report each child process separately.
    :param children_every_s: how often to look for new child processes (scanning the
        process table is most of a sample's cost; known children are sampled every time).
    """

    def __init__(
        self,
        interval_s: float = 1.0,
        callback: Callback | None = None,
        *,
        pid: int | None = None,
        per_child: bool = True,
        children_every_s: float = 5.0,
    ) -> None:
        if not interval_s > 0:
            from llmos.sdk import ValidationError

            raise ValidationError(f"sampler interval must be > 0 seconds, got {interval_s!r}")
        import psutil

        self.interval_s = float(interval_s)
        self.callback = callback
        self.per_child = per_child
        self.proc = psutil.Process(pid or os.getpid())
        self.samples: list[dict[str, float]] = []  # kept only without a callback
        self._keep = callback is None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._children: dict[int, Any] = {}
        self.children_every_s = children_every_s
        self._scanned_at = float("-inf")
        self.seq = 0
        self.errors = 0
        # prime the cpu_percent counters (first call always returns 0.0)
        psutil.cpu_percent(None)
        self.proc.cpu_percent(None)

    # -- sampling ------------------------------------------------------------------

    def sample(self) -> dict[str, float]:
        """Take one sample now."""
        import psutil

        out: dict[str, float] = {
            "cpu_percent": float(psutil.cpu_percent(None)),
            "mem_percent": float(psutil.virtual_memory().percent),
        }
        try:
            with self.proc.oneshot():
                cpu = self.proc.cpu_percent(None)
                rss = self.proc.memory_info().rss
                threads = self.proc.num_threads()
            now = time.monotonic()
            if now - self._scanned_at >= self.children_every_s:
                self._scanned_at = now
                found = self.proc.children(recursive=True)
                for child in found:
                    if child.pid not in self._children:  # keep the Process: cpu_percent needs the previous call
                        self._children[child.pid] = child
                        with contextlib.suppress(psutil.Error):
                            child.cpu_percent(None)
                for gone in set(self._children) - {c.pid for c in found}:
                    del self._children[gone]
        except psutil.Error:
            return out
        seen = 0
        for pid, known in list(self._children.items()):
            try:
                with known.oneshot():
                    c_cpu = known.cpu_percent(None)
                    c_rss = known.memory_info().rss
                    c_thr = known.num_threads()
            except psutil.Error:  # exited since the last scan
                del self._children[pid]
                continue
            seen += 1
            cpu, rss, threads = cpu + c_cpu, rss + c_rss, threads + c_thr
            if self.per_child:
                out[f"pid{pid}_cpu_percent"] = float(c_cpu)
                out[f"pid{pid}_rss_bytes"] = float(c_rss)
        out.update(
            proc_cpu_percent=float(cpu),
            proc_rss_bytes=float(rss),
            proc_threads=float(threads),
            proc_children=float(seen),
        )
        return out

    def _loop(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            self._emit()
            next_at += self.interval_s
            delay = next_at - time.monotonic()
            if delay < 0:  # fell behind (suspended, overloaded): do not burst
                next_at, delay = time.monotonic(), 0
            if self._stop.wait(delay):
                break

    def _emit(self) -> None:
        try:
            metrics = self.sample()
            seq, self.seq = self.seq, self.seq + 1
            if self._keep:
                self.samples.append(metrics)
            if self.callback is not None:
                self.callback(seq, metrics)
        except Exception:  # noqa: BLE001 - a sampler must never take the run down
            self.errors += 1

    # -- lifecycle -----------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> SystemSampler:
        """Start the background thread (the first sample is taken one interval from now)."""
        if self.running:
            return self
        self._stop.clear()

        def delayed() -> None:
            if not self._stop.wait(self.interval_s):
                self._loop()

        self._thread = threading.Thread(target=delayed, name="llmos-system-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self, *, final_sample: bool = True) -> None:
        """Stop the thread; by default take one last sample so short runs get at least one."""
        thread, self._thread = self._thread, None
        self._stop.set()
        if thread is not None:
            thread.join(timeout=max(5.0, 2 * self.interval_s))
        if final_sample:
            self._emit()

    def __enter__(self) -> SystemSampler:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
