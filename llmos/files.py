"""File helpers shared by the core and plugins (re-exported by :mod:`llmos.sdk`)."""

from __future__ import annotations

import os
from pathlib import Path

#: Suffixes of pickle-based weight files: llmos never loads them (unpickling runs code).
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib")


def fsync_dir(path: Path | str) -> None:
    """fsync a directory, so a rename or a new file in it survives a power loss
    (a no-op where directories cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(str(path), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
