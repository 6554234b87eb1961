"""Build throwaway plugin distributions with real dist-info metadata.

``make_dist`` writes a package and a ``<name>.dist-info`` directory (METADATA +
entry_points.txt) into a directory; putting that directory on ``PYTHONPATH``
makes ``importlib.metadata`` see a real installed distribution with a real
``llmos`` entry point — exactly what pip would produce for a wheel.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path


def make_dist(root: Path, dist: str, module: str, source: str, *, ep_name: str | None = None,
              version: str = "1.0", ep_value: str | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[llmos]\n{ep_name or dist} = {ep_value or module}\n")
    (info / "RECORD").write_text("")
    return root


def run_llmos(args: list[str], *, pythonpath: Path | None, home: Path, env: dict | None = None,
              check: bool = False) -> subprocess.CompletedProcess:
    e = dict(os.environ)
    e["LLMOS_HOME"] = str(home)
    e.pop("LLMOS_PLUGINS", None)
    if pythonpath is not None:
        e["PYTHONPATH"] = str(pythonpath)
    e.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "llmos", *args], capture_output=True, text=True, env=e, check=check, timeout=120
    )


import pytest


@pytest.fixture
def dists(tmp_path: Path):
    """Directory for throwaway distributions; ``dists.make(...)`` adds one."""

    class _D:
        path = tmp_path / "site"

        def make(self, dist: str, module: str, source: str, **kw) -> Path:
            return make_dist(self.path, dist, module, source, **kw)

    return _D()


@pytest.fixture
def llmos_cli(dists, llmos_home):
    """Run ``python -m llmos ...`` in a subprocess that sees the throwaway dists."""

    def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
        return run_llmos(list(args), pythonpath=dists.path, home=llmos_home, env=env)

    return run
