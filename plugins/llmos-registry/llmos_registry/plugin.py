"""llmos-registry's hooks: the registry service, and the ``llmos model`` and ``llmos db`` commands.

Light on purpose: SQLAlchemy is imported when a registry is opened, not when plugins load.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from llmos import hookimpl

LLMOS_API = 2


@hookimpl
def llmos_open_registry(url: str | None, home: Path | None, notify: Callable[..., Any] | None) -> Any:
    from llmos_registry import open_registry

    return open_registry(url, home, notify=notify)  # any URL SQLAlchemy has a driver for


@hookimpl
def llmos_register_commands(cli: Any) -> None:
    # imported when used: ``llmos --help`` shows these lines without importing the modules
    cli.add_lazy_command("model", "llmos_registry.cli.commands:model",
                         "Model versions in the registry: register, list, alias, diff, export.")
    cli.add_lazy_command("db", "llmos_registry.cli.commands:db",
                         "The registry database ($LLMOS_DATABASE_URL, default SQLite in $LLMOS_HOME).")
