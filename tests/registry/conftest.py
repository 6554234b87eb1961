"""Fixtures of the registry tests: a registry on SQLite or on a real PostgreSQL."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llmos.registry.db import dispose_engines

sys.path.insert(0, str(Path(__file__).resolve().parent))  # registry_testtools


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, llmos_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The registry database URL: SQLite in the test's home, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        url = f"sqlite:///{llmos_home / 'llmos.db'}"
    else:
        url = request.getfixturevalue("postgres_database")
    monkeypatch.setenv("LLMOS_DATABASE_URL", url)
    monkeypatch.setenv("LLMOS_PLUGINS", "")
    yield url
    dispose_engines()


@pytest.fixture
def reg(db_url: str, plugin_manager: Any) -> Any:
    from llmos.registry import open_registry

    return open_registry()


@pytest.fixture
def sqlite_reg(llmos_home: Path, plugin_manager: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from llmos.registry import open_registry

    monkeypatch.setenv("LLMOS_PLUGINS", "")
    yield open_registry()
    dispose_engines()


@pytest.fixture
def pg_reg(postgres_database: str, llmos_home: Path, plugin_manager: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from llmos.registry import open_registry

    monkeypatch.setenv("LLMOS_DATABASE_URL", postgres_database)
    monkeypatch.setenv("LLMOS_PLUGINS", "")
    yield open_registry()
    dispose_engines()
