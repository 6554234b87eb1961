"""Shared by the benchmark scripts: the line each section starts with (when and on what it
was measured), and writing the section to ``docs/benchmarks/<area>.md``."""

from __future__ import annotations

import datetime as dt
import os
import platform
from pathlib import Path

SECTIONS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks"


def stamp() -> str:
    return (
        f"_Measured {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC on {platform.machine()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}._"
    )


def write_section(area: str, text: str) -> str:
    """Write a benchmark's markdown section to ``docs/benchmarks/<area>.md``; return it."""
    SECTIONS.mkdir(parents=True, exist_ok=True)
    (SECTIONS / f"{area}.md").write_text(text)
    return text
