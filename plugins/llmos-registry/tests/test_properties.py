"""Property tests: any sequence of register / alias / archive / delete / gc keeps every
visible version's files readable and bit-identical to what was registered, numbers
never reused, aliases and ``latest`` where they should be."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from registry_testtools import make_model, tree_bytes

from llmos.sdk import NotFoundError

MODELS = 2
ALIASES = ("prod", "canary")

op = st.one_of(
    st.tuples(st.just("register"), st.integers(0, MODELS - 1), st.lists(st.integers(0, 4), min_size=1, max_size=3),
              st.booleans()),
    st.tuples(st.just("alias"), st.integers(0, MODELS - 1), st.sampled_from(ALIASES), st.integers(0, 20)),
    st.tuples(st.just("unalias"), st.integers(0, MODELS - 1), st.sampled_from(ALIASES)),
    st.tuples(st.just("archive"), st.integers(0, MODELS - 1), st.integers(0, 20)),
    st.tuples(st.just("delete"), st.integers(0, MODELS - 1), st.integers(0, 20)),
    st.tuples(st.just("gc"),),
)


class Model:
    """What the registry should contain, kept by the test."""

    def __init__(self) -> None:
        self.files: dict[tuple[str, int], dict[str, bytes]] = {}
        self.status: dict[tuple[str, int], str] = {}
        self.aliases: dict[tuple[str, str], int] = {}
        self.last: dict[str, int] = {}


def _run(reg: Any, ops: list[tuple[Any, ...]]) -> None:
    prefix = f"p{uuid.uuid4().hex[:8]}"
    names = [f"{prefix}-{i}" for i in range(MODELS)]
    want = Model()
    work = Path(tempfile.mkdtemp(prefix="llmos-prop-"))
    try:
        for step, (kind, *args) in enumerate(ops):
            if kind == "register":
                m, seeds, with_parent = args
                name = names[m]
                src = make_model(work / str(step), seeds, n=16)
                live = [k for k, s in want.status.items() if s != "deleted"]
                parents = [f"{live[-1][0]}:{live[-1][1]}"] if with_parent and live else []
                v = reg.register_version(name, src, parents=parents)
                assert v.number == want.last.get(name, 0) + 1  # never reused, no gaps
                want.last[name] = v.number
                want.files[(name, v.number)] = tree_bytes(src)
                want.status[(name, v.number)] = "ready"
            elif kind in ("alias", "archive", "delete"):
                m, pick = args[0], args[-1]
                name = names[m]
                mine = [n for (mn, n), s in want.status.items() if mn == name and s != "deleted"]
                if not mine:
                    continue
                number = mine[pick % len(mine)]
                if kind == "alias":
                    reg.set_alias(name, args[1], number)
                    want.aliases[(name, args[1])] = number
                elif kind == "archive":
                    reg.archive(f"{name}:{number}")
                    want.status[(name, number)] = "archived"
                else:
                    reg.delete(f"{name}:{number}")
                    want.status[(name, number)] = "deleted"
                    want.files.pop((name, number))
                    for key in [k for k, n in want.aliases.items() if k[0] == name and n == number]:
                        del want.aliases[key]
            elif kind == "unalias":
                name, alias = names[args[0]], args[1]
                if (name, alias) in want.aliases:
                    assert reg.remove_alias(name, alias) == want.aliases.pop((name, alias))
            else:
                reg.gc(grace_seconds=0)
            _check(reg, want, names)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _check(reg: Any, want: Model, names: list[str]) -> None:
    shutil.rmtree(reg.checkouts, ignore_errors=True)  # read from the blobs, not a cached checkout
    for (name, number), files in want.files.items():
        assert tree_bytes(reg.checkout(f"{name}:{number}")) == files
    for (name, alias), number in want.aliases.items():
        assert reg.resolve(f"{name}@{alias}").number == number
    for name in names:
        ready = [n for (mn, n), s in want.status.items() if mn == name and s == "ready"]
        if ready:
            assert reg.resolve(name).number == max(ready)
        elif name in want.last:
            try:
                reg.resolve(name)
                raise AssertionError(f"{name} has no ready version but resolved")
            except NotFoundError:
                pass
        for alias in ALIASES:
            if (name, alias) not in want.aliases and name in want.last:
                try:
                    reg.resolve(f"{name}@{alias}")
                    raise AssertionError(f"{name}@{alias} should not exist")
                except NotFoundError:
                    pass


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(op, min_size=1, max_size=12))
def test_sequences_keep_files_bit_identical_sqlite(sqlite_reg: Any, ops: list[tuple[Any, ...]]) -> None:
    _run(sqlite_reg, ops)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(op, min_size=1, max_size=10))
def test_sequences_keep_files_bit_identical_postgres(pg_reg: Any, ops: list[tuple[Any, ...]]) -> None:
    _run(pg_reg, ops)
