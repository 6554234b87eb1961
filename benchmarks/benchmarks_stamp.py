"""The line each benchmark section starts with: when and on what it was measured."""

from __future__ import annotations

import datetime as dt
import os
import platform


def stamp() -> str:
    return (
        f"_Measured {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC on {platform.machine()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}._"
    )
