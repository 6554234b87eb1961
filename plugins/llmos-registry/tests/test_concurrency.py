"""Real processes at once: 8 × 25 registrations of one model, and writers killed with
SIGKILL at random points — on SQLite and on PostgreSQL."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

WORKER = str(Path(__file__).resolve().parent / "registry_worker.py")


def _env(db_url: str, home: Path) -> dict[str, str]:
    env = dict(os.environ, LLMOS_DATABASE_URL=db_url, LLMOS_HOME=str(home), LLMOS_PLUGINS="llmos-registry")
    env.pop("COVERAGE_PROCESS_START", None)
    return env


@pytest.mark.slow
def test_8_processes_x_25_registrations(reg: Any, db_url: str, llmos_home: Path, tmp_path: Path) -> None:
    go = tmp_path / "go"
    procs = [
        subprocess.Popen([sys.executable, WORKER, "register", "race", "25", str(w), str(go)],
                         env=_env(db_url, llmos_home), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for w in range(8)
    ]
    for p in procs:  # all imported and connected: now start together
        assert p.stdout is not None
        assert p.stdout.readline().strip() == "ready", p.communicate()[1][-2000:]
    go.touch()
    results = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
        assert "locked" not in err
        results.append(json.loads(out.strip().splitlines()[-1]))
    errors = [e for r in results for e in r["errors"]]
    assert errors == []
    numbers = sorted(n for r in results for n in r["numbers"])
    assert numbers == list(range(1, 201))
    for r in results:
        assert r["numbers"] == sorted(r["numbers"])  # each process sees its numbers grow
    versions = reg.list_versions("race")
    assert [v.number for v in versions] == list(range(1, 201))
    assert len({v.description for v in versions}) == 200
    # every version is complete and bit-identical to its source
    from registry_testtools import tree_bytes

    for v in random.Random(0).sample(versions, 10):
        w, i = v.description[1:].split("-")
        assert tree_bytes(reg.checkout(v.ref)) == tree_bytes(llmos_home / f"src-{w}" / i)
    assert reg.fsck()["ok"]


def _check_store(reg: Any) -> int:
    """Every visible version is complete and bit-identical to what the writer registered."""
    versions = reg.list_versions("crash")
    for v in versions:
        expected = json.loads(v.description)
        out = reg.checkout(v.ref)
        got = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in out.iterdir()}
        assert got == expected, f"{v.ref} differs from what was registered"
    report = reg.fsck()
    assert report["ok"], report
    if versions:
        assert reg.resolve("crash@newest").number == versions[-1].number
    return len(versions)


@pytest.mark.slow
def test_sigkill_at_random_points(reg: Any, db_url: str, llmos_home: Path, tmp_path: Path) -> None:
    rounds = 6 if db_url.startswith("sqlite") else 3
    rnd = random.Random(int(os.environ.get("LLMOS_TEST_SEED", "1234")))
    seen_numbers: set[int] = set()
    for r in range(rounds):
        p = subprocess.Popen([sys.executable, WORKER, "loop", "crash", str(tmp_path / f"r{r}")],
                             env=_env(db_url, llmos_home), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert p.stdout is not None
        line = p.stdout.readline()
        assert line.strip() == "ready", p.stderr.read() if p.stderr else ""
        time.sleep(rnd.uniform(0.05, 0.8))
        p.send_signal(signal.SIGKILL)
        p.wait(30)
        p.stdout.close()
        p.stderr.close()  # type: ignore[union-attr]
        _check_store(reg)
        numbers = {v.number for v in reg.list_versions("crash", include_deleted=True)}
        assert seen_numbers <= numbers
        seen_numbers = numbers
    # a retry after all the kills succeeds and gets the next number
    from registry_testtools import make_model

    src = make_model(tmp_path / "retry", [1, 2])
    digests = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in src.iterdir()}
    v = reg.register_version("crash", src, description=json.dumps(digests, sort_keys=True), aliases=["newest"])
    assert v.number == max(seen_numbers | {0}) + 1
    assert _check_store(reg) == len(seen_numbers) + 1
    # what the killed writers left behind is garbage only: gc clears it, fsck stays clean
    reg.gc(grace_seconds=0)
    assert not list(reg.blobs.iter_temp())
    assert _check_store(reg) == len(seen_numbers) + 1
