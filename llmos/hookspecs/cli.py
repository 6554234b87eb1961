"""Hook specs, group 4: the command line.

Part of the llmos plugin contract; read :mod:`llmos.hookspecs` first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmos import hookspec

if TYPE_CHECKING:  # pragma: no cover - typing only
    import click


@hookspec
def llmos_register_commands(cli: click.Group) -> None:
    """Add click commands to the ``llmos`` command line.

    Keep the command's module light: import heavy libraries inside the command
    function, so ``llmos --help`` stays fast. Better still, name it:
    ``cli.add_lazy_command(name, "module:attr", help)`` imports the module only when the
    command is used (``help`` is its one-line summary in ``llmos --help``); every
    standard plugin does this.

    :param cli: the root ``llmos`` click group; call ``cli.add_command(cmd)``.
        ``cli.core_group("plugin")`` (or ``"runs"``) returns a core group to add
        sub-commands to; never import ``llmos.cli`` modules. A plugin cannot replace
        an existing command (``llmos model`` and ``llmos db`` are llmos-registry's).
    :returns: nothing.

    Example::

        @hookimpl
        def llmos_register_commands(cli):
            @cli.command()
            def hello():
                "Say hello."
                click.echo("hello")

            cli.core_group("plugin").add_command(hello, "hello")  # llmos plugin hello
            cli.add_lazy_command("train-more", "my_plugin.commands:train_more",
                                 "Continue training a version.")  # imported when used
    """


@hookspec
def llmos_after_plugin_list(plugins: list[tuple[str, str | None]]) -> list[str]:
    """Called by ``llmos plugin list`` after it printed the table: warnings to show.

    :param plugins: ``[(distribution, version)]`` of the plugins listed.
    :returns: lines shown as ``Warning: <line>`` on stderr (e.g. a yanked release).

    Example::

        @hookimpl
        def llmos_after_plugin_list(plugins):
            return [f"{d} {v} is yanked" for d, v in plugins if is_yanked(d, v)]
    """


@hookspec
def llmos_after_plugin_info(info: dict[str, Any]) -> None:
    """Called by ``llmos plugin info NAME`` before it prints: add fields to ``info``.

    :param info: the plugin's description (``name``, ``dist``, ``version``, ``hooks``,
        ``components``...); add keys to it (``--json`` shows them all).
    :returns: nothing.

    Example::

        @hookimpl
        def llmos_after_plugin_info(info):
            info["index"] = lookup(info["dist"])
    """
