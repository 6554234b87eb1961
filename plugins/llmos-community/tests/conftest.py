"""Fixtures of the community-workflow tests.

All keys made here are TEST keys, generated inside the tests into temporary
``$LLMOS_HOME/keys`` directories; none is ever written to the repository.

- ``approved`` (session): a temporary git repository whose ``registry/`` has three
  index maintainers (bob, carol, dave) and one plugin, ``llmos-hello``, scaffolded by
  alice with ``llmos plugin new``, built, submitted and approved by bob and carol —
  committed, so ``--base`` has something to compare with. Built once per session.
- ``world``: a private copy of it for one test (mutate freely), with ``$LLMOS_HOME``
  set to a fresh home holding the TEST keys.
- ``make_venv``: a throwaway virtual environment that sees our .venv's packages
  (``--system-site-packages`` is not enough for a venv made from a venv, so a .pth
  file adds the parent's site-packages), so installs go there and never into .venv.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from community_helpers import HANDLES, World, commit_project, env, git, make_isolated_venv, write_maintainers  # noqa: E402

@pytest.fixture(autouse=True)
def _isolated_home(llmos_home: Path) -> Path:
    """Every community test (and the llmos subprocesses it starts) uses a fresh $LLMOS_HOME."""
    return llmos_home


@pytest.fixture(scope="session")
def approved(tmp_path_factory: pytest.TempPathFactory) -> World:
    from llmos_community import contrib, signing
    from llmos_community.scaffold import scaffold

    base = tmp_path_factory.mktemp("approved")
    home, root = base / "home", base / "repo"
    with env(LLMOS_HOME=str(home)):
        pubs = {h: signing.generate_key(h) for h in HANDLES}
        git(base, "init", "-q", str(root))
        write_maintainers(root / "registry", pubs)
        w = World(root, root / "registry", home, base / "wheelhouse", base / "work" / "llmos-hello", pubs)
        w.commit("index with three maintainers")
        scaffold("llmos-hello", "data", base / "work", author="Alice", email="alice@example.org",
                 source_url="https://example.org/alice/llmos-hello")
        commit_project(w.project)
        contrib.submit(w.project, "alice", w.index, wheelhouse=w.wheelhouse)
        contrib.review("llmos-hello", "bob", "approve", w.index)
        contrib.review("llmos-hello", "carol", "approve", w.index)
        w.commit("add llmos-hello")
    return w


@pytest.fixture
def world(approved: World, tmp_path: Path, llmos_home: Path) -> World:
    root = tmp_path / "repo"
    shutil.copytree(approved.root, root, symlinks=True)
    shutil.copytree(approved.home / "keys", llmos_home / "keys")
    wh = tmp_path / "wheelhouse"
    shutil.copytree(approved.wheelhouse, wh)
    return World(root, root / "registry", llmos_home, wh, approved.project, approved.pubs)


@pytest.fixture
def make_venv(tmp_path: Path):
    """``make_venv(hide=("llmos-jsonl-sink",))`` -> the python of a fresh venv that sees
    our .venv's packages (symlinked into its site-packages) except the hidden
    distributions, so an install there is a real install and never touches .venv."""

    def make(name: str = "venv", hide: tuple[str, ...] = ()) -> Path:
        return make_isolated_venv(tmp_path / name, hide)

    return make
