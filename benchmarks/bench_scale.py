"""Scale out: a load test of three `llmos serve` replicas behind haproxy.

Three `llmos serve tiny@production` processes on loopback (one PostgreSQL registry
started here, one shared blob store), haproxy in front with `/ready` health checks
(`llmos_serve.scaleout`). 2,000 greedy completions (max_tokens 4) from 16 concurrent
clients through haproxy while `tiny@production` is moved 10 times between versions 1
and 2 (in the registry, as `llmos deploy promote` does; each move waits until every
live replica reports the new version) and replica r0 is killed (SIGKILL) half-way.

Figures: 5xx and connection failures apart from the requests in flight when r0 died
(target 0), those in-flight failures, version mismatches (a response whose
`X-Llmos-Model-Version` was not the alias target at some moment of its request;
target 0), the spread over replicas, and the time from each alias move to the last
replica switching (poll interval 0.5 s).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOTAL, CLIENTS, MOVES, POLL = 2000, 16, 10, 0.5


def _say(msg: str) -> None:
    print(f"[bench_scale] {msg}", file=sys.stderr, flush=True)


def main() -> str:
    sys.path.insert(0, str(ROOT / "plugins" / "llmos-serve" / "tests"))
    from benchmarks_stamp import stamp, write_section  # type: ignore[import-not-found]
    from conftest import build_tiny_model  # type: ignore[import-not-found]

    from llmos_testing_postgres import PostgresServer
    from llmos_serve.scaleout import Cluster, Load, in_flight_at, promote_and_wait, version_mismatches

    work = Path(tempfile.mkdtemp(prefix="llmos-bench-scale-"))
    pg = PostgresServer().start()
    try:
        url = pg.create_database()
        home = work / "shared-home"
        env = {**os.environ, "LLMOS_DATABASE_URL": url, "LLMOS_HOME": str(home), "LLMOS_PLUGINS": "llmos-serve,llmos-registry"}
        os.environ.update(LLMOS_DATABASE_URL=url, LLMOS_HOME=str(home))
        from llmos.registry import open_registry

        reg = open_registry()
        for seed in (0, 1):
            reg.register_version("tiny", build_tiny_model(work / f"tiny{seed}", seed=seed))
        reg.set_alias("tiny", "production", 1)
        _say("starting haproxy and 3 replicas")
        with Cluster("tiny@production", env, n=3, poll_interval=POLL, workdir=work / "cluster") as cluster:
            load = Load(cluster.url, "tiny", total=TOTAL, clients=CLIENTS).start()
            t0 = time.monotonic()
            moves, lags = [], []
            current = 1
            killed_at = None
            for k in range(MOVES):
                load.wait_for((k + 1) * TOTAL // (MOVES + 1))
                if killed_at is None and load.done >= TOTAL // 2:
                    _say("killing replica r0")
                    killed_at = cluster.kill("r0")
                new = 2 if current == 1 else 1
                a, moved, switched = promote_and_wait(cluster, f"tiny:{new}", f"tiny:{new}", via_cli=(k == 0),
                                                      registry=reg)
                moves.append((a, switched, f"tiny:{current}", f"tiny:{new}"))
                lags.append(switched - moved)
                current = new
                _say(f"move {k + 1}: every replica on tiny:{new} {switched - moved:.2f} s after the alias moved")
            load.join(1200)
            elapsed = time.monotonic() - t0
            states = cluster.server_states()
    finally:
        pg.stop()
    records = load.records
    assert killed_at is not None
    in_flight = [r for r in records if in_flight_at(r, killed_at)]
    failed = [r for r in records if r.status != 200]
    excused = [r for r in failed if in_flight_at(r, killed_at) and r.status in (0, 502, 503)]
    other = len(failed) - len(excused)
    mismatched = version_mismatches(records, moves, "tiny:1")
    spread = Counter(r.replica for r in records if r.status == 200)
    after_kill = Counter(r.replica for r in records if r.status == 200 and r.start > killed_at[1] + 1.0)
    ok = other == 0 and mismatched == 0 and len(records) == TOTAL
    load_avg = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    lines = [
        "## Scale out (`llmos serve` × 3 behind haproxy)",
        "",
        stamp(),
        "",
        f"Machine load: the load average was {load_avg} (1, 5, 15 min) at the end of the run, on "
        f"{os.cpu_count()} CPUs shared with other work — high this session, so throughput is low; the figures "
        "that matter here are counts, not speeds.",
        "",
        f"Three `llmos serve tiny@production --threads 1 --poll-interval {POLL}` processes on 127.0.0.1, one "
        "PostgreSQL registry, one shared `LLMOS_HOME` (blob store), haproxy "
        "(`llmos_serve.scaleout.haproxy_config`: leastconn, `GET /ready` checks every 250 ms, "
        "`retry-on conn-failure empty-response`, `option redispatch`). Model: the tests' ~60k-parameter Llama.",
        "",
        "| measure | result | target | |",
        "|---|---|---|---|",
        f"| {TOTAL} completions from {CLIENTS} clients, {MOVES} alias moves, r0 killed half-way ({elapsed:.0f} s) "
        f"| answered {sum(1 for r in records if r.status == 200)}, 5xx/cut outside r0's in-flight requests "
        f"**{other}** | 0 | {'✅' if other == 0 else '❌'} |",
        f"| requests in flight when r0 died / failed of them | {len(in_flight)} / {len(excused)} "
        "(haproxy re-sent the others) | only those | ✅ |",
        f"| version mismatches | **{mismatched}** | 0 | {'✅' if mismatched == 0 else '❌'} |",
        f"| alias move → every live replica switched | median {statistics.median(lags):.2f} s, "
        f"max {max(lags):.2f} s | ≤ poll interval + load | |",
        f"| spread (answered per replica) | {dict(sorted(spread.items()))}; after the kill "
        f"{dict(sorted(after_kill.items()))}; haproxy's view at the end {states} | all replicas | |",
        "",
        "The first move runs `llmos deploy promote` in its own process; the others move the alias in the "
        "registry the same way. A response's version must be the alias target at some moment between the "
        "request's start and end, where a move counts as in progress from its start until every live replica "
        "reports the new version on `/ready`.",
        "",
    ]
    if not ok:
        lines.append(f"Failed requests: {[(r.status, r.replica) for r in failed][:20]}")
        lines.append("")
    return write_section("scale", "\n".join(lines))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    print(main())
