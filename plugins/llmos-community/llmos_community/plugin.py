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

#: ``llmos plugin <name>``: the first line of each command's help
PLUGIN_SUBCOMMANDS = {
    "search": "Search the plugin index by name, summary, keyword or component.",
    "install": "Install a plugin from the index: hash-verified wheel, never a source build.",
    "upgrade": "Upgrade an installed plugin to the highest allowed release in the index.",
    "uninstall": "Uninstall a plugin distribution (recorded in the registry).",
    "new": "Create a plugin project with a working component and passing tests.",
    "test": "Run the llmos plugin contract checks on a plugin project directory.",
}


@hookimpl
def llmos_register_commands(cli: Any) -> None:
    # imported when used: ``llmos --help`` shows these lines without importing the modules
    cli.add_lazy_command("index", "llmos_community.cli.index:index",
                         "The community plugin index (registry/ in the llmos repository).")
    cli.add_lazy_command("contrib", "llmos_community.cli.contrib:contrib",
                         "Publish plugins to the community index and review them (signed with ed25519).")
    group = cli.core_group("plugin")
    for name, help in PLUGIN_SUBCOMMANDS.items():
        group.add_lazy_command(name, f"llmos_community.cli.plugin:{name}", help)


@hookimpl
def llmos_after_plugin_list(plugins: list[tuple[str, str | None]]) -> list[str]:
    from llmos_community.cli.plugin import index_notices

    return index_notices(plugins)


@hookimpl
def llmos_after_plugin_info(info: dict[str, Any]) -> None:
    from llmos_community.cli.plugin import index_info

    info.update(index_info(info.get("dist") or info["name"]))
