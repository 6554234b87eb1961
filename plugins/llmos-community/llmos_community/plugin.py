"""Hook module of llmos-community (light: imports llmos only; the command modules
import click, and everything else is imported when a command runs).

Adds ``llmos index ...`` and ``llmos contrib ...`` to the root group, and
``search|install|upgrade|uninstall|new|test`` to the core ``llmos plugin`` group
(through ``cli.core_group("plugin")``, the documented way; no ``llmos.cli`` import),
and reports index notices on ``llmos plugin list`` / ``info``.
"""

from __future__ import annotations

from typing import Any

from llmos import hookimpl

LLMOS_API = 2

PLUGIN_SUBCOMMANDS = ("search", "install", "upgrade", "uninstall", "new", "test")


@hookimpl
def llmos_register_commands(cli: Any) -> None:
    from llmos_community.cli import contrib, index, plugin

    cli.add_command(index.index)
    cli.add_command(contrib.contrib)
    group = cli.core_group("plugin")
    for name in PLUGIN_SUBCOMMANDS:
        group.add_command(getattr(plugin, name))


@hookimpl
def llmos_after_plugin_list(plugins: list[tuple[str, str | None]]) -> list[str]:
    from llmos_community.cli.plugin import index_notices

    return index_notices(plugins)


@hookimpl
def llmos_after_plugin_info(info: dict[str, Any]) -> None:
    from llmos_community.cli.plugin import index_info

    info.update(index_info(info.get("dist") or info["name"]))
