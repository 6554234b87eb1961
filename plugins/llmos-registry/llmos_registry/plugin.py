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
    from llmos_registry.cli.db import db
    from llmos_registry.cli.model import model
    from llmos_registry.cli.model_export import export

    model.add_command(export)
    cli.add_command(model)
    cli.add_command(db)
