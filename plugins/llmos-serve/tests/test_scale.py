"""Scale out: three ``llmos serve`` processes on loopback (one PostgreSQL registry, one
shared blob store) behind a real haproxy whose health checks are ``/ready``. Requests
spread over the replicas; killing one mid-load costs at most its in-flight requests;
``llmos deploy promote`` moves every replica within the poll interval, with no version
mismatches. The long form (2,000 requests, 10 moves) is benchmarks/bench_scale.py."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import httpx

from llmos_serve.scaleout import Cluster, Load, in_flight_at, promote_and_wait, version_mismatches

POLL = 0.5


def test_replicas_behind_haproxy(postgres_database: str, tiny_models: list[Path], tmp_path: Path, monkeypatch):
    import os

    from llmos.registry import open_registry

    shared = tmp_path / "shared-home"  # the blob store every replica reads
    env = {**os.environ, "LLMOS_DATABASE_URL": postgres_database, "LLMOS_HOME": str(shared),
           "LLMOS_PLUGINS": "llmos-serve,llmos-registry"}
    monkeypatch.setenv("LLMOS_DATABASE_URL", postgres_database)
    monkeypatch.setenv("LLMOS_HOME", str(shared))
    reg = open_registry()
    for path in tiny_models:
        reg.register_version("tiny", path)
    reg.set_alias("tiny", "production", 1)

    with Cluster("tiny@production", env, n=3, poll_interval=POLL, workdir=tmp_path / "cluster") as cluster:
        # /ready drives haproxy's checks: every replica is UP once loaded
        assert cluster.server_states() == {"r0": "UP", "r1": "UP", "r2": "UP"}
        assert httpx.get(cluster.url + "/health", timeout=10).status_code == 200

        load = Load(cluster.url, "tiny", total=None, clients=6).start()  # until stopped
        load.wait_for(40)
        a, moved, switched = promote_and_wait(cluster, "tiny:2", "tiny:2")
        moves = [(a, switched, "tiny:1", "tiny:2")]
        # every replica's watcher polls every POLL s, then loads the version beside the old one
        assert switched - moved < POLL + 5, switched - moved

        load.wait_for(load.done + 30)
        killed = cluster.kill("r0")
        deadline = time.monotonic() + 10
        while cluster.server_states().get("r0") == "UP" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert cluster.server_states() == {"r0": "DOWN", "r1": "UP", "r2": "UP"}
        load.wait_for(load.done + 30)
        load.stop()
        load.join(120)

    records = load.records
    assert len(records) >= 100 and any(r.start > killed[1] for r in records)
    spread = Counter(r.replica for r in records if r.status == 200)
    assert set(spread) == {"r0", "r1", "r2"} and min(spread.values()) >= 10, spread
    # only requests in flight on the killed replica may fail, and only with 502/503 or a cut
    failed = [r for r in records if r.status != 200]
    assert all(in_flight_at(r, killed) and r.status in (0, 502, 503) for r in failed), failed
    assert len(failed) <= 6  # at most one per client
    assert not any(r.replica == "r0" and r.start > killed[1] for r in records)
    assert version_mismatches(records, moves, "tiny:1") == 0
    after = [r for r in records if r.start > switched and r.status == 200]
    assert after and {r.version for r in after} == {"tiny:2"}
    assert {r.version for r in records if r.end < a and r.status == 200} == {"tiny:1"}
