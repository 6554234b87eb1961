"""Shared output helpers: tables for people, JSON for scripts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts) instead of a table.")


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))


def make_console(**kwargs: Any) -> Any:
    """A rich console; when output is not a terminal (logs, pipes, CI) lines are not
    wrapped at rich's default 80 columns."""
    import sys

    from rich.console import Console

    if "width" not in kwargs and "file" not in kwargs and not sys.stdout.isatty():
        import os

        kwargs["width"] = int(os.environ.get("COLUMNS", 0)) or 160
    return Console(**kwargs)


def echo_table(rows: Sequence[Sequence[Any]], headers: Sequence[str], *, title: str | None = None) -> None:
    """Print rows as an aligned table (rich), or a hint when there are none."""
    from rich.table import Table

    table = Table(*headers, title=title, box=None, header_style="bold", pad_edge=False)
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    make_console(soft_wrap=False).print(table)
