"""Start-up work that must not be repeated: the entry-point scan is cached for the
``llmos`` script and for Python processes using the API at once (issue 17.6)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

LLMOS = str(Path(sys.executable).parent / "llmos")
API = "from llmos.plugins import get_manager; print(sorted(get_manager().plugins))"


def test_cli_and_api_processes_keep_each_others_entry_point_scan(tmp_path: Path) -> None:
    """The ``llmos`` script (``sys.path[0]`` = its bin directory) and ``python -c``
    (``sys.path[0]`` = ``''``) have different cache keys; taking turns, neither rescans."""
    env = dict(os.environ, LLMOS_HOME=str(tmp_path))
    env.pop("LLMOS_PLUGINS", None)
    env.pop("LLMOS_NO_EP_CACHE", None)

    def cli() -> set[str]:
        cp = subprocess.run([LLMOS, "plugin", "list", "--json"], env=env, capture_output=True, text=True, timeout=120)
        assert cp.returncode == 0, cp.stderr
        return {p["name"] for p in json.loads(cp.stdout)}

    def api() -> set[str]:
        cp = subprocess.run([sys.executable, "-c", API], env=env, capture_output=True, text=True, timeout=120,
                            cwd=tmp_path)
        assert cp.returncode == 0, cp.stderr
        return set(json.loads(cp.stdout.replace("'", '"')))

    first_cli, first_api = cli(), api()
    assert first_cli == first_api and first_cli  # the standard plugins, seen both ways
    cache = tmp_path / "cache" / "entry-points-llmos.json"
    assert len(json.loads(cache.read_text())["keys"]) == 2
    before = cache.stat()
    assert cli() == first_cli and api() == first_api
    after = cache.stat()
    # a rescan rewrites the file (a new inode through os.replace): none happened
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_entry_point_cache_keeps_the_newest_keys(tmp_path: Path, monkeypatch) -> None:
    from llmos import _entrypoints

    for i in range(_entrypoints.MAX_KEYS + 3):
        monkeypatch.setattr(_entrypoints, "_key", lambda i=i: f"key{i}")
        _entrypoints.entry_points("llmos", tmp_path)
    keys = list(json.loads((tmp_path / "entry-points-llmos.json").read_text())["keys"])
    assert keys == [f"key{i}" for i in range(3, _entrypoints.MAX_KEYS + 3)]


def test_old_cache_format_is_rescanned(tmp_path: Path) -> None:
    from llmos import _entrypoints

    (tmp_path / "entry-points-llmos.json").write_text(json.dumps({"key": _entrypoints._key(), "entries": []}))
    names = {r.name for r in _entrypoints.entry_points("llmos", tmp_path)}
    assert names == {r.name for r in _entrypoints._scan("llmos")}
