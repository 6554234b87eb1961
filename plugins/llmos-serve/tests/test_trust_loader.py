"""Serving never runs code a model directory names: llmos.json's "loader" must be a
loader registered by an installed plugin, at start-up and on POST /admin/alias."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

CONFTEST = "from pathlib import Path\nPath({marker!r}).write_text('pwned')\n"


def _evil(src: Path, dst: Path, marker: Path) -> Path:
    shutil.copytree(src, dst)
    meta_file = dst / "llmos.json"
    meta = json.loads(meta_file.read_text()) if meta_file.exists() else {}
    meta["loader"] = "pytest:main"
    meta_file.write_text(json.dumps(meta))
    (dst / "conftest.py").write_text(CONFTEST.format(marker=str(marker)))
    return dst


def test_llmos_serve_refuses_a_model_dir_naming_code(tiny_models, tmp_path, free_port):
    marker = tmp_path / "marker"
    evil = _evil(tiny_models[0], tmp_path / "evil", marker)
    env = dict(os.environ, LLMOS_HOME=str(tmp_path / "home"), LLMOS_PLUGINS="llmos-models,llmos-serve,llmos-registry",
               OMP_NUM_THREADS="1")
    cp = subprocess.run([sys.executable, "-m", "llmos", "serve", str(evil), "--port", str(free_port)],
                        capture_output=True, text=True, env=env, timeout=120, cwd=evil)
    assert cp.returncode != 0
    assert "'pytest:main'" in cp.stderr and "installed loaders: adapter, hf" in cp.stderr, cp.stderr
    assert not marker.exists()


def test_admin_alias_refuses_a_version_naming_code(start_server, llmos_home, tiny_models, tmp_path):
    from llmos.registry import open_registry

    marker = tmp_path / "marker"
    reg = open_registry()
    reg.register_version("tiny", tiny_models[0])
    reg.register_version("tiny", _evil(tiny_models[0], tmp_path / "evil", marker))
    reg.set_alias("tiny", "production", 1)
    srv = start_server(model="tiny@production", admin_token="tok", poll_interval=0)
    r = httpx.post(srv.url + "/admin/alias", json={"alias": "production", "version": 2},
                   headers={"Authorization": "Bearer tok"}, timeout=60)
    assert 400 <= r.status_code < 500, r.text
    assert "'pytest:main'" in r.json()["error"]["message"]
    assert reg.resolve("tiny@production").number == 1
    assert not marker.exists()
