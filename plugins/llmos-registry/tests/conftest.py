"""Fixtures of the registry tests: a registry on SQLite or on a real PostgreSQL."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llmos_registry.db import dispose_engines

sys.path.insert(0, str(Path(__file__).resolve().parent))  # registry_testtools


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated, empty SQLite database file, copied into each test's home (running the
    migrations costs ~1 s per test on a busy machine; they have their own tests)."""
    from llmos_registry.db import ensure_schema, get_engine

    path = tmp_path_factory.mktemp("sqlite-template") / "llmos.db"
    url = f"sqlite:///{path}"
    ensure_schema(get_engine(url), url)
    dispose_engines()
    return path


@pytest.fixture(scope="session")
def pg_template(postgres_server: Any) -> str:
    """A migrated database on the session's PostgreSQL server, emptied before each test."""
    from llmos_registry.db import ensure_schema, get_engine

    url = postgres_server.create_database("llmos_registry_tests")
    ensure_schema(get_engine(url), url)
    dispose_engines()
    return url


def _fresh_pg(url: str) -> str:
    from sqlalchemy import text

    from llmos_registry.db import get_engine
    from llmos_registry.models import Base

    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with get_engine(url).begin() as conn:
        conn.execute(text(f"TRUNCATE TABLE {tables} RESTART IDENTITY CASCADE"))
    return url


def _fresh_sqlite(template: Path, home: Path) -> str:
    import shutil

    shutil.copyfile(template, home / "llmos.db")
    return f"sqlite:///{home / 'llmos.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, llmos_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The registry database URL: an empty, migrated SQLite file in the test's home, or
    the emptied PostgreSQL test database."""
    if request.param == "sqlite":
        url = _fresh_sqlite(request.getfixturevalue("sqlite_template"), llmos_home)
    else:
        url = _fresh_pg(request.getfixturevalue("pg_template"))
    monkeypatch.setenv("LLMOS_DATABASE_URL", url)
    monkeypatch.setenv("LLMOS_PLUGINS", "llmos-registry")
    yield url
    dispose_engines()


@pytest.fixture
def reg(db_url: str, plugin_manager: Any) -> Any:
    from llmos_registry import open_registry

    return open_registry()


@pytest.fixture
def sqlite_reg(llmos_home: Path, sqlite_template: Path, plugin_manager: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from llmos_registry import open_registry

    monkeypatch.setenv("LLMOS_DATABASE_URL", _fresh_sqlite(sqlite_template, llmos_home))
    monkeypatch.setenv("LLMOS_PLUGINS", "llmos-registry")
    yield open_registry()
    dispose_engines()


@pytest.fixture
def pg_reg(pg_template: str, llmos_home: Path, plugin_manager: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from llmos_registry import open_registry

    monkeypatch.setenv("LLMOS_DATABASE_URL", _fresh_pg(pg_template))
    monkeypatch.setenv("LLMOS_PLUGINS", "llmos-registry")
    yield open_registry()
    dispose_engines()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the tests that run on PostgreSQL (``-m postgres`` / ``-m "not postgres"``)."""
    here = Path(__file__).resolve().parent
    for item in items:
        if not Path(str(item.path)).resolve().is_relative_to(here):
            continue
        if "postgres" in item.name or "pg_reg" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgres)
