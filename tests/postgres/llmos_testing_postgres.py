"""A real PostgreSQL server for tests (pytest fixtures, also usable from plugins).

Opt-in (not loaded by the ``llmos.testing`` pytest11 plugin): ``pytest -p
llmos_testing_postgres``, or ``pytest_plugins = ["llmos_testing_postgres"]`` in a root conftest.py
(as this repository's does)::

    def test_on_postgres(postgres_database, monkeypatch):
        monkeypatch.setenv("LLMOS_DATABASE_URL", postgres_database)   # a fresh, empty database
        ...

- ``postgres_url`` (session): the URL of a server started for the test session
  (``postgresql+psycopg://postgres@127.0.0.1:<port>/postgres``). The server runs from
  ``postgres`` on ``PATH`` or ``/usr/lib/postgresql/*/bin``, on a temporary data
  directory (``initdb``), a free loopback port and a socket directory inside the
  temporary directory; as the ``postgres`` system user when the tests run as root.
  It is stopped and its directory removed at the end of the session.
- ``postgres_database`` (function): a new empty database on that server, dropped after.

When no server can be started the tests using these fixtures are skipped — except
when ``CI`` is set to a true value, where they fail: CI must test PostgreSQL.
``LLMOS_POSTGRES_BINDIR`` picks the server's ``bin`` directory.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server could be started here (the message says why)."""


def find_bindir() -> Path | None:
    """The directory holding ``postgres`` and ``initdb`` (``$LLMOS_POSTGRES_BINDIR`` if set)."""
    forced = os.environ.get("LLMOS_POSTGRES_BINDIR")
    if forced:
        cand = Path(forced)
        return cand if (cand / "postgres").is_file() and (cand / "initdb").is_file() else None
    candidates = []
    found = shutil.which("postgres")
    if found:
        candidates.append(Path(found).resolve().parent)
        candidates.append(Path(found).parent)
    for path in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: _version_key(p), reverse=True):
        candidates.append(Path(path))
    for cand in candidates:
        if (cand / "postgres").is_file() and (cand / "initdb").is_file():
            return cand
    return None


def _version_key(path: str) -> tuple[int, ...]:
    part = Path(path).parent.name
    return tuple(int(x) for x in part.split(".") if x.isdigit()) or (0,)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """A throw-away PostgreSQL server: ``start()``, ``url``, ``create_database()``, ``stop()``."""

    def __init__(self, bindir: Path | None = None) -> None:
        self.bindir = bindir or find_bindir()
        self.base: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.port: int | None = None
        self._user: dict[str, int] = {}

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def database_url(self, name: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def _run_as(self) -> dict[str, int]:
        if os.geteuid() != 0:
            return {}
        import pwd

        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            if shutil.which("useradd") is None:
                raise PostgresUnavailable("running as root and there is no 'postgres' user to run the server as")
            subprocess.run(
                ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "postgres"],
                check=True, capture_output=True,
            )
            pw = pwd.getpwnam("postgres")
        return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}

    def start(self, timeout: float = 60.0) -> PostgresServer:
        if self.bindir is None:
            raise PostgresUnavailable(
                "no postgres found on PATH or in /usr/lib/postgresql/*/bin (install it: apt-get install postgresql)"
            )
        self._user = self._run_as()
        self.base = Path(tempfile.mkdtemp(prefix="llmos-pg-"))
        data, sock = self.base / "data", self.base / "sock"
        sock.mkdir()
        if self._user:
            for p in (self.base, sock):
                os.chown(p, self._user["user"], self._user["group"])
        os.chmod(self.base, 0o700)
        env = dict(os.environ, LC_ALL="C", LANG="C")
        env.pop("PGDATA", None)
        init = subprocess.run(
            [str(self.bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
             "--no-sync", "--no-instructions"],
            capture_output=True, env=env, cwd=self.base, **self._user,  # type: ignore[arg-type]
        )
        if init.returncode != 0:
            raise PostgresUnavailable(f"initdb failed: {init.stderr.decode(errors='replace').strip()[-500:]}")
        last_error = ""
        for _ in range(3):  # a port taken between probing and binding: try another
            self.port = _free_port()
            log = open(self.base / "postgres.log", "wb")
            self.proc = subprocess.Popen(
                [str(self.bindir / "postgres"), "-D", str(data), "-p", str(self.port), "-k", str(sock),
                 "-h", "127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
                 "-c", "full_page_writes=off", "-c", "max_connections=200", "-c", "shared_buffers=32MB"],
                stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.base, start_new_session=True,
                **self._user,  # type: ignore[arg-type]
            )
            log.close()
            try:
                self._wait_ready(timeout)
                return self
            except PostgresUnavailable as exc:
                last_error = str(exc)
                self._kill()
        self.stop()
        raise PostgresUnavailable(last_error)

    def _wait_ready(self, timeout: float) -> None:
        import psycopg

        assert self.proc is not None and self.base is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = (self.base / "postgres.log").read_text(errors="replace")[-800:]
                raise PostgresUnavailable(f"postgres exited with status {self.proc.returncode}: {tail.strip()}")
            try:
                with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                                     connect_timeout=2):
                    return
            except psycopg.OperationalError:
                time.sleep(0.1)
        raise PostgresUnavailable(f"postgres did not accept connections within {timeout:.0f} s")

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database; :returns: its SQLAlchemy URL."""
        import psycopg

        name = name or f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        return self.database_url(name)

    def drop_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # "fast" shutdown
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def stop(self) -> None:
        self._kill()
        if self.base is not None:
            shutil.rmtree(self.base, ignore_errors=True)
            self.base = None


def _ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the whole test session (see module docs)."""
    try:
        server = PostgresServer().start()
    except (PostgresUnavailable, OSError, subprocess.SubprocessError) as exc:
        message = f"cannot start PostgreSQL: {exc}"
        if _ci():
            pytest.fail(message + " (CI is set: PostgreSQL tests must run; see .ci/sysdeps.sh)")
        pytest.skip(message)
    import atexit

    atexit.register(server.stop)  # also when the session ends abnormally
    try:
        yield server
    finally:
        server.stop()
        atexit.unregister(server.stop)


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """URL of the session's PostgreSQL server (database ``postgres``)."""
    return postgres_server.url


@pytest.fixture
def postgres_database(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty database on the session's server, dropped after the test."""
    url = postgres_server.create_database()
    try:
        yield url
    finally:
        try:
            postgres_server.drop_database(url.rsplit("/", 1)[1])
        except Exception:  # noqa: BLE001 - the server is removed at the end anyway
            pass
