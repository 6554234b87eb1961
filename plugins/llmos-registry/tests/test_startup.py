"""Opening the registry in a fresh process (what every ``llmos model ...`` command
does) imports Alembic only when the schema is behind (issue 17.6), on SQLite and
PostgreSQL; a stale database still migrates."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from registry_testtools import make_model

PROBE = """
import json, sys
from llmos_registry import db, open_registry
reg = open_registry()
print(json.dumps({"alembic": "alembic" in sys.modules, "revision": db.current_revision(reg.engine)}))
"""


def _url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'home' / 'llmos.db'}"
    return request.getfixturevalue("postgres_database")


def _open_in_fresh_process(url: str, home: Path) -> dict:
    env = dict(os.environ, LLMOS_HOME=str(home), LLMOS_DATABASE_URL=url, LLMOS_PLUGINS="llmos-registry")
    cp = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert cp.returncode == 0, cp.stderr
    return json.loads(cp.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_current_schema_opens_without_alembic_and_a_stale_one_migrates(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    from alembic import command
    from sqlalchemy import create_engine

    from llmos_registry import db

    url = _url(backend, tmp_path, request)
    home = tmp_path / "home"
    home.mkdir()
    # a database left at the previous revision by an older llmos
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    cfg = db.alembic_config()
    previous = str(int(db.HEAD_REVISION) - 1).zfill(4)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, previous)
    engine.dispose()

    stale = _open_in_fresh_process(url, home)
    assert stale == {"alembic": True, "revision": db.HEAD_REVISION}  # migrated, through Alembic
    current = _open_in_fresh_process(url, home)
    assert current == {"alembic": False, "revision": db.HEAD_REVISION}


def test_cli_register_of_a_safetensors_dir_imports_no_alembic_torch_or_numpy(tmp_path: Path) -> None:
    """``llmos model register`` of a safetensors directory needs SQLAlchemy and nothing
    heavier: no Alembic (schema current), no torch/numpy/transformers, no pydantic, and
    no rich when the output is not a terminal."""
    env = dict(os.environ, LLMOS_HOME=str(tmp_path / "home"))
    env.pop("LLMOS_PLUGINS", None)  # every installed plugin hears llmos_after_version_registered
    env.pop("LLMOS_DATABASE_URL", None)
    src = make_model(tmp_path / "m", [1, 2])
    first = subprocess.run([sys.executable, "-m", "llmos", "model", "list"], env=env, capture_output=True, text=True,
                           timeout=120)  # creates the database
    assert first.returncode == 0, first.stderr
    cp = subprocess.run([sys.executable, "-c", _register_probe(src)], env=env, capture_output=True, text=True,
                        timeout=120)
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.startswith("Registered tiny:1 ")
    assert json.loads(cp.stderr.strip().splitlines()[-1]) == []


def _register_probe(src: Path) -> str:
    # every model counts as large enough for a progress bar
    return (
        "import json, sys\nimport llmos_registry.cli.model\nllmos_registry.cli.model.PROGRESS_MIN_BYTES = 0\n"
        "from llmos.cli import main\n"
        f"try:\n    main(['model', 'register', 'tiny', {str(src)!r}], prog_name='llmos')\n"
        "except SystemExit as e:\n    assert not e.code, e.code\n"
        "heavy = ('alembic', 'torch', 'numpy', 'transformers', 'safetensors', 'pydantic', 'rich', 'fastapi')\n"
        "print(json.dumps(sorted(m for m in heavy if m in sys.modules)), file=sys.stderr)\n"
    )


def test_register_progress_bar_only_on_a_terminal(tmp_path: Path) -> None:
    """On a terminal a large model's registration shows rich's progress bar (the only
    case rich is imported); piped, as above, there is none."""
    import pty

    env = dict(os.environ, LLMOS_HOME=str(tmp_path / "home"), LLMOS_PLUGINS="llmos-registry", TERM="xterm")
    env.pop("LLMOS_DATABASE_URL", None)
    src = make_model(tmp_path / "m", [1, 2])
    leader, follower = pty.openpty()
    try:
        cp = subprocess.run([sys.executable, "-c", _register_probe(src)], env=env, stdout=follower,
                            stderr=subprocess.PIPE, text=True, timeout=120)
        os.close(follower)
        follower = -1
        out = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the terminal's other end is closed
                break
            if not chunk:
                break
            out += chunk
    finally:
        os.close(leader)
        if follower >= 0:
            os.close(follower)
    assert cp.returncode == 0, cp.stderr
    assert b"Registered tiny:1 " in out
    assert json.loads(cp.stderr.strip().splitlines()[-1]) == ["alembic", "rich"]  # a new database, and the bar
