"""Blob pins: what keeps ``gc`` away from the blobs of a register in progress.

A register takes a pin (one ``blob_pins`` row, committed) *before* it writes or reuses
any blob, and removes it once its version is committed or it failed. ``gc`` keeps
every unreferenced blob whose mtime is not older than the oldest live pin (reused blobs
are touched), whatever ``--grace-seconds`` says. A pin of a process that died (same
host, pid gone or reused) or past its expiry is stale: gc ignores and deletes it.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from llmos_registry.models import BlobPin

#: a pin of another host (whose pid cannot be checked) is honoured this long
PIN_TTL_S = 24 * 3600.0
#: file mtimes come from a coarse clock (a jiffy behind time.time()): compare with slack
MTIME_SLACK_S = 0.1

_HOST = socket.gethostname()[:256]


@contextmanager
def pinned(session: Callable[..., Any], owner: str) -> Iterator[str]:
    """Hold a pin (committed before the body runs) for the duration of the block."""
    pin_id = uuid.uuid4().hex
    now = time.time()
    with session(write=True) as s:
        s.add(BlobPin(id=pin_id, owner=owner[:256], host=_HOST, pid=os.getpid(), created_ts=now,
                      expires_ts=now + PIN_TTL_S))
    try:
        yield pin_id
    finally:
        try:
            with session(write=True) as s:
                s.execute(delete(BlobPin).where(BlobPin.id == pin_id))
        except Exception:  # noqa: BLE001 - the pin expires (and its pid is gone): gc clears it
            pass


def live_pins(s: Session, *, now: float | None = None) -> tuple[list[BlobPin], list[str]]:
    """``(live pins, ids of stale ones)``."""
    now = time.time() if now is None else now
    live, stale = [], []
    for pin in s.scalars(select(BlobPin)).all():
        if pin.expires_ts < now or (pin.host == _HOST and not _alive(pin.pid, pin.created_ts)):
            stale.append(pin.id)
        else:
            live.append(pin)
    return live, stale


def drop_pins(s: Session, ids: list[str]) -> None:
    if ids:
        s.execute(delete(BlobPin).where(BlobPin.id.in_(ids)))


def _alive(pid: int, since: float) -> bool:
    """Is ``pid`` the process that took a pin at ``since`` (not dead, not reused)?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    started = _start_time(pid)
    return started is None or started <= since + 1.0


def _start_time(pid: int) -> float | None:
    """When ``pid`` started (Linux ``/proc``), or ``None`` where that is unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
        ticks = int(fields[19])  # field 22 (starttime), counted after "pid (comm)"
        with open("/proc/stat", "rb") as fh:
            btime = next(int(line.split()[1]) for line in fh if line.startswith(b"btime"))
        return btime + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None
