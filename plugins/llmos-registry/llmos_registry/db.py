"""Database engine and schema migrations.

- SQLite (default, ``<home>/llmos.db``): WAL journal, a 60 s busy timeout and
  ``PRAGMA foreign_keys=ON`` on every connection. Write transactions start with
  ``BEGIN IMMEDIATE`` (see :func:`write_engine`), so concurrent writers queue on
  the busy timeout instead of failing with "database is locked" on lock upgrade.
- PostgreSQL (``postgresql+psycopg://...``): plain transactions; writers lock the
  model row (``SELECT ... FOR UPDATE``).

Migrations (Alembic, scripts in ``llmos/registry/migrations``) run automatically the
first time a process opens a database whose schema is behind; concurrent first opens
are serialised by a file lock (SQLite) or an advisory lock (PostgreSQL).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url

from llmos.sdk import LlmosError, ValidationError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
BUSY_TIMEOUT_MS = 60_000
_PG_LOCK_KEY = 0x6C6C6D6F73  # "llmos"

_engines: dict[str, Engine] = {}
_migrated: set[str] = set()
_lock = threading.Lock()


def redact(url: str) -> str:
    """The URL with any password hidden (``postgresql://u:***@h/db``)."""
    from llmos.sdk import redact_text

    return redact_text(url)


def get_engine(url: str) -> Engine:
    """The (cached, per process) engine for ``url``."""
    with _lock:
        engine = _engines.get(url)
        if engine is None or engine.pool is None:
            engine = _create_engine(url)
            _engines[url] = engine
        return engine


def dispose_engines() -> None:
    """Close every cached engine (tests; after ``fork``)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
        _migrated.clear()


def _after_fork_in_child() -> None:
    # pooled connections belong to the parent: the child opens its own (SQLAlchemy's
    # recipe for multiprocessing), and a lock held by a parent thread is not inherited
    global _lock
    _lock = threading.Lock()
    for engine in _engines.values():
        engine.dispose(close=False)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _create_engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except Exception as exc:  # noqa: BLE001
        raise ValidationError(
            f"LLMOS_DATABASE_URL {url!r} is not a database URL: use e.g. sqlite:////path/llmos.db "
            "or postgresql+psycopg://user@host/db"
        ) from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        db = parsed.database
        if db and db != ":memory:":
            Path(db).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}
        )
        _sqlite_events(engine)
        return engine
    if backend == "postgresql":
        if parsed.drivername == "postgresql":  # default driver: psycopg 3 (installed), not psycopg2
            url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
        try:
            return create_engine(url, pool_pre_ping=True)
        except ModuleNotFoundError as exc:
            raise LlmosError(
                "PostgreSQL support needs psycopg 3: pip install 'llmos[postgres]'"
            ) from exc
    return create_engine(url)


def _sqlite_events(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # let SQLAlchemy (the "begin" listener below) issue BEGIN itself
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys=ON")
        mode = cur.execute("PRAGMA journal_mode").fetchone()[0]
        if str(mode).lower() != "wal":
            cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        write = conn.get_execution_options().get("llmos_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def write_engine(engine: Engine) -> Engine:
    """The same engine, whose transactions take the write lock up front on SQLite."""
    return engine.execution_options(llmos_write=True)


# -- migrations --------------------------------------------------------------------


def alembic_config(url: str | None = None) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


#: the newest migration's revision; a test checks it equals Alembic's head, so that
#: opening an up-to-date database never imports Alembic (~0.4 s)
HEAD_REVISION = "0006"


def current_revision(engine: Engine) -> str | None:
    """The schema revision stored in the database (``None``: empty database)."""
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            conn.rollback()
            return None
        try:
            rows = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        except DBAPIError:
            rows = []
        conn.rollback()
    return rows[0] if len(rows) == 1 else None


def ensure_schema(engine: Engine, url: str) -> None:
    """Bring the schema to the head revision unless this process already did."""
    if url in _migrated:
        return
    if current_revision(engine) != HEAD_REVISION:
        upgrade(engine)
    _migrated.add(url)


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Apply pending migrations under a cross-process lock.

    :returns: ``(revision before, revision after)``.
    """
    from alembic import command

    if engine.dialect.name == "sqlite":
        with _sqlite_file_lock(engine):
            return _upgrade_locked(engine, command)
    if engine.dialect.name == "postgresql":
        with engine.connect() as lock_conn:
            lock_conn.exec_driver_sql(f"SELECT pg_advisory_lock({_PG_LOCK_KEY})")
            try:
                return _upgrade_locked(engine, command)
            finally:
                lock_conn.exec_driver_sql(f"SELECT pg_advisory_unlock({_PG_LOCK_KEY})")
                lock_conn.commit()
    return _upgrade_locked(engine, command)


def _upgrade_locked(engine: Engine, command: Any) -> tuple[str | None, str]:
    before = current_revision(engine)
    head = head_revision()
    if before == head:
        return before, head
    if before is None:
        existing = set(inspect(engine).get_table_names())
        if "models" in existing:
            raise LlmosError(
                "the registry database has llmos tables but no schema revision: "
                "it was not created by llmos; point LLMOS_DATABASE_URL at another database"
            )
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    return before, head


class _sqlite_file_lock:
    def __init__(self, engine: Engine) -> None:
        db = engine.url.database
        self.path = None if not db or db == ":memory:" else Path(db).expanduser().with_suffix(".migrate.lock")
        self.fd: int | None = None

    def __enter__(self) -> None:
        if self.path is None:
            return
        import fcntl

        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: Any) -> None:
        if self.fd is not None:
            import fcntl

            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None
