"""Concurrent promotes (issue 16.2): checking ``--require`` against ``current`` and moving
the alias are one atomic decision, so two promotes never both pass against the same
old current. On SQLite and PostgreSQL, through the API (threads held at the moment
between their check and their move, so the race is certain) and through two real
``llmos deploy promote`` processes."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

RULE = "val_ppl <= current.val_ppl"


def _registry(backend: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Any:
    from llmos.registry import open_registry
    from llmos_registry.db import dispose_engines

    if backend == "postgres":
        monkeypatch.setenv("LLMOS_DATABASE_URL", request.getfixturevalue("postgres_database"))
    request.getfixturevalue("standard_plugins")("llmos-serve")
    request.addfinalizer(dispose_engines)
    return open_registry()


def _version(reg: Any, tmp: Path, ppl: float) -> str:
    import numpy as np
    from safetensors.numpy import save_file

    d = tmp / f"m-{ppl}"
    d.mkdir()
    save_file({"w": np.full((2, 2), ppl, dtype=np.float32)}, str(d / "model.safetensors"))
    return reg.register_version("race", d, metrics={"val_ppl": ppl}).ref


def _decisions(reg: Any) -> list[dict[str, Any]]:
    """Every promote decision, oldest first."""
    events = reg.events(kind="deploy.promoted", limit=1000) + reg.events(kind="deploy.refused", limit=1000)
    return [e["data"] | {"kind": e["kind"]} for e in sorted(events, key=lambda e: e["id"])]


def _assert_one_decision_per_current(reg: Any, start: int) -> None:
    """Replaying the log from ``start``: each decision was taken against the version the
    alias pointed at when it was recorded, and each current was left by one promotion."""
    current = start
    promoted_from: list[int] = []
    for d in _decisions(reg):
        if d["previous"] is None:
            continue  # the first promotion, before the race
        assert d["previous"] == current, (d, current)
        if d["kind"] == "deploy.promoted":
            promoted_from.append(current)
            current = d["version"]
    assert len(promoted_from) == len(set(promoted_from)), promoted_from
    assert reg.resolve("race@production").number == current
    assert reg.resolve("race@production-previous").number == (promoted_from[-1] if promoted_from else None)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_two_promotes_held_between_check_and_move(backend: str, request: pytest.FixtureRequest,
                                                  monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Both promotes have checked the rule against production = v1 (ppl 100) before
    either moves the alias (a barrier in the registry's write calls). Exactly one moves
    it from v1; the other sees v1 is gone and decides again against the winner: ppl 95
    is refused against 90, or 90 is promoted over 95. Either way production ends at
    the better model, and v1 left production once."""
    from llmos_registry import Registry
    from llmos_serve.deploy import PromotionRefused, promote

    reg = _registry(backend, request, monkeypatch)
    start = reg.resolve(_version(reg, tmp_path, 100.0)).number
    promote(f"race:{start}", registry=reg)
    a, b = _version(reg, tmp_path, 90.0), _version(reg, tmp_path, 95.0)
    barrier = threading.Barrier(2, timeout=60)

    class HeldRegistry(Registry):
        """The real registry; its first decision waits until the other promote has checked too."""

        held = False

        def _hold(self) -> None:
            if not self.held:
                self.held = True
                barrier.wait()

        def set_alias(self, *args: Any, **kwargs: Any) -> Any:
            self._hold()
            return super().set_alias(*args, **kwargs)

        def record_event(self, *args: Any, **kwargs: Any) -> Any:
            self._hold()
            return super().record_event(*args, **kwargs)

    results: dict[str, Any] = {}

    def run(ref: str) -> None:
        mine = HeldRegistry(reg.url, reg.home)
        try:
            results[ref] = promote(ref, registry=mine, require=RULE)
        except PromotionRefused as exc:
            results[ref] = exc
        except BaseException as exc:  # noqa: BLE001 - reported below
            results[ref] = ("error", exc)

    threads = [threading.Thread(target=run, args=(ref,)) for ref in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(isinstance(r, tuple) for r in results.values()), results
    assert reg.resolve("race@production").ref == a  # never 95 over 90
    decisions = [d for d in _decisions(reg) if d["previous"] is not None]
    # one promotion from v1; one decision against the winner: refused (95 vs 90) or promoted (90 over 95)
    assert [d["previous"] for d in decisions].count(start) == 1, decisions
    assert len(decisions) == 2 and decisions[1]["previous"] == decisions[0]["version"], decisions
    # the loser's answer is about the winner: refused against race:2 (90), or promoted over race:3 (95)
    loser = results[b] if decisions[0]["version"] == 2 else results[a]
    assert (isinstance(loser, PromotionRefused) and "current race:2" in str(loser)) or loser["previous"] == 3, results
    _assert_one_decision_per_current(reg, start)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_concurrent_llmos_deploy_promote_processes(backend: str, request: pytest.FixtureRequest,
                                                   monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Three real ``llmos deploy promote --require`` processes at once, twice: whatever
    the interleaving, every decision is against the alias's current at that moment, no
    current is promoted away from twice, and production ends at the best candidate."""
    reg = _registry(backend, request, monkeypatch)
    start = reg.resolve(_version(reg, tmp_path, 100.0)).number
    reg.set_alias("race", "production", start)
    llmos = str(Path(sys.executable).with_name("llmos"))
    env = dict(os.environ)
    for round_ppls in ((90.0, 95.0, 93.0), (80.0, 85.0, 70.0)):
        refs = [_version(reg, tmp_path, p) for p in round_ppls]
        procs = [subprocess.Popen([llmos, "deploy", "promote", ref, "--require", RULE], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for ref in refs]
        outs = [p.communicate(timeout=300) for p in procs]
        for p, (out, err) in zip(procs, outs, strict=True):
            assert p.returncode in (0, 3), (out, err)  # promoted, or refused with both numbers
            if p.returncode == 3:
                assert "stays at version" in out + err, (out, err)
        best = refs[round_ppls.index(min(round_ppls))]
        assert reg.resolve("race@production").ref == best
    _assert_one_decision_per_current(reg, start)
