"""Shared output helpers: tables for people, JSON for scripts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts) instead of a table.")


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))


def echo_table(rows: Sequence[Sequence[Any]], headers: Sequence[str], *, title: str | None = None) -> None:
    """Print rows as an aligned table (rich), or a hint when there are none."""
    from rich.console import Console
    from rich.table import Table

    table = Table(*headers, title=title, box=None, header_style="bold", pad_edge=False)
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    Console(soft_wrap=False).print(table)
