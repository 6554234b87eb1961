"""Is a run's process still alive? One process per run.

- Every run records the ``pid`` and ``host`` of the process running it and a
  ``heartbeat_at`` that process refreshes (:class:`Heartbeat`, every
  ``$LLMOS_HEARTBEAT_S`` seconds, default 15).
- A run recorded as ``running`` is shown as ``dead`` when it ran on this host and
  its pid is gone (SIGKILL, OOM kill, crash), and as ``lost`` when it ran on
  another host and its heartbeat is older than ``$LLMOS_RUN_LOST_AFTER_S``
  (default 120 s; power loss, a host that went away). Both can be resumed.
- A process running a run holds an exclusive lock on ``<workdir>/.lock``
  (:class:`RunLock`, ``flock``: released by the OS when the process dies, so a
  crash never leaves a stale lock); a second process asked to resume the same run
  is refused with a clear error.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import threading
from pathlib import Path
from typing import Any

from llmos.errors import ConflictError

DEAD, LOST = "dead", "lost"


def this_host() -> str:
    return socket.gethostname()


def heartbeat_interval() -> float:
    try:
        return max(0.05, float(os.environ.get("LLMOS_HEARTBEAT_S", "15")))
    except ValueError:
        return 15.0


def lost_after() -> float:
    try:
        return max(1.0, float(os.environ.get("LLMOS_RUN_LOST_AFTER_S", "120")))
    except ValueError:
        return 120.0


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host and is not a zombie."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    except OSError:
        return False
    try:  # a killed child its parent has not reaped yet is a zombie: dead all the same
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def effective_status(status: str, pid: int | None, host: str | None, heartbeat_at: dt.datetime | None) -> str:
    """``status`` as recorded, except that a ``running`` run whose process is gone is
    ``dead`` (this host, pid gone) or ``lost`` (another host, heartbeat stale)."""
    if status != "running" or pid is None or host is None:
        return status  # finished, or recorded before liveness existed: nothing to tell
    if host == this_host():
        return status if pid_alive(pid) else DEAD
    if heartbeat_at is not None:
        age = (dt.datetime.now(dt.timezone.utc) - heartbeat_at).total_seconds()
        if age > lost_after():
            return LOST
    return status


class Heartbeat:
    """A daemon thread that refreshes the heartbeat of ``run_ids`` until :meth:`stop`."""

    def __init__(self, reg: Any, *run_ids: str, interval_s: float | None = None) -> None:
        self.reg, self.run_ids = reg, set(run_ids)
        self.interval_s = interval_s or heartbeat_interval()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="llmos-heartbeat", daemon=True)

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def add(self, run_id: str) -> None:
        with self._lock:
            self.run_ids.add(run_id)

    def discard(self, run_id: str) -> None:
        with self._lock:
            self.run_ids.discard(run_id)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            with self._lock:
                ids = sorted(self.run_ids)
            try:
                self.reg.heartbeat_runs(ids)
            except Exception:  # noqa: BLE001 - a busy database must not stop the run; next beat retries
                pass

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)


class RunLock:
    """An exclusive lock on ``<workdir>/.lock`` for as long as this process runs the run.

    :raises ConflictError: another process holds it (the run is still running).
    """

    def __init__(self, workdir: Path, run_id: str, info: Any = None) -> None:
        self.path = Path(workdir) / ".lock"
        self.run_id, self.info = run_id, info
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # no flock (Windows): the database heartbeat check still applies
            pass
        except OSError:
            holder = ""
            try:
                holder = os.read(fd, 200).decode(errors="replace").strip()
            except OSError:
                pass
            os.close(fd)
            who = f" (pid {holder})" if holder else ""
            raise ConflictError(
                f"run {self.run_id} is still running in another process{who}: stop it first "
                f"(Ctrl-C, or kill -TERM {holder.split('@')[0] if holder else 'PID'}), then resume it"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}@{this_host()}".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing releases the flock
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


def check_not_running_elsewhere(info: Any) -> None:
    """Refuse to resume a run that another host is still running (fresh heartbeat)."""
    status = getattr(info, "status", None)
    host = getattr(info, "host", None)
    if status == "running" and host and host != this_host():
        beat = getattr(info, "heartbeat_at", None)
        age = (dt.datetime.now(dt.timezone.utc) - beat).total_seconds() if beat else None
        raise ConflictError(
            f"run {info.id} is still running on host {host} (pid {getattr(info, 'pid', '?')}"
            + (f", last heartbeat {age:.0f}s ago" if age is not None else "")
            + f"): stop it there first; a run without a heartbeat for {lost_after():.0f}s shows as lost "
            "and can be resumed"
        )
