"""The ``postgres_url`` fixture: a real server, and no silent skip under CI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_postgres_url_is_a_real_server(postgres_url: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("select version()")).scalar().startswith("PostgreSQL")
    finally:
        engine.dispose()


def test_without_postgres_skips_locally_and_fails_under_ci(tmp_path: Path) -> None:
    (tmp_path / "test_pg.py").write_text("def test_needs_pg(postgres_url):\n    assert postgres_url\n")
    import llmos_testing_postgres

    harness = str(Path(llmos_testing_postgres.__file__).parent)  # installed, or the checkout's tests/postgres
    env = dict(os.environ, LLMOS_POSTGRES_BINDIR=str(tmp_path / "no-such-bin"),
               PYTHONPATH=os.pathsep.join(p for p in (harness, os.environ.get("PYTHONPATH")) if p))
    env.pop("CI", None)
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
            "-p", "llmos_testing_postgres", str(tmp_path)]
    local = subprocess.run(args, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert local.returncode == 0 and "1 skipped" in local.stdout, local.stdout[-1500:]
    ci = subprocess.run(args, capture_output=True, text=True, env=dict(env, CI="true"), cwd=tmp_path, timeout=120)
    assert ci.returncode != 0 and "1 error" in ci.stdout, ci.stdout[-1500:]
    assert "CI is set: PostgreSQL tests must run" in ci.stdout
