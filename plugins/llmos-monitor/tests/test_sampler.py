"""SystemSampler: real samples of this process and its children."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest


def test_sampler_produces_samples_at_its_interval() -> None:
    from llmos_monitor.sampler import SystemSampler

    got: list[tuple[int, dict[str, float]]] = []
    with SystemSampler(interval_s=0.05, callback=lambda seq, m: got.append((seq, m))):
        t0 = time.monotonic()
        # some CPU work to measure, until 4 samples came (bounded: a loaded machine is slow)
        while len(got) < 4 and time.monotonic() - t0 < 20:
            sum(i * i for i in range(20000))
    assert len(got) >= 4
    assert [seq for seq, _ in got] == list(range(len(got)))
    keys = {"cpu_percent", "mem_percent", "proc_cpu_percent", "proc_rss_bytes", "proc_threads", "proc_children"}
    for _, m in got:
        assert keys <= set(m)
        assert m["proc_rss_bytes"] > 1e6 and 0 <= m["mem_percent"] <= 100
    assert max(m["proc_cpu_percent"] for _, m in got) > 0  # the busy loop shows up
    assert not [t for t in threading.enumerate() if t.name == "llmos-system-sampler"]


def test_child_processes_are_sampled_one_by_one() -> None:
    from llmos_monitor.sampler import SystemSampler

    child = subprocess.Popen([sys.executable, "-c", "import time; x = bytearray(30_000_000); time.sleep(30)"])
    try:
        sampler = SystemSampler(interval_s=0.05)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            m = sampler.sample()
            if m.get(f"pid{child.pid}_rss_bytes", 0) > 30e6:
                break
            time.sleep(0.1)
        assert m["proc_children"] >= 1
        assert m[f"pid{child.pid}_rss_bytes"] > 30e6  # the child's 30 MB buffer
        assert m["proc_rss_bytes"] > m[f"pid{child.pid}_rss_bytes"]  # the tree total includes it
    finally:
        child.kill()
        child.wait()


def test_bad_interval_is_refused() -> None:
    from llmos.errors import ValidationError
    from llmos_monitor.sampler import SystemSampler

    with pytest.raises(ValidationError, match="interval must be > 0"):
        SystemSampler(interval_s=0)


def test_a_failing_callback_never_stops_the_sampler() -> None:
    from llmos_monitor.sampler import SystemSampler

    calls = []

    def bad(seq: int, m: dict[str, float]) -> None:
        calls.append(seq)
        raise RuntimeError("sink down")

    with SystemSampler(interval_s=0.03, callback=bad) as s:
        time.sleep(0.3)
    assert len(calls) >= 3 and s.errors == len(calls)
