"""The ``llmos`` command line.

Sub-commands live in their own modules and are imported only when invoked
(``LazyGroup``), and plugins add commands through ``llmos_register_commands``,
so ``llmos --help`` imports click, pluggy and the plugins' light hook modules —
never torch.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from llmos import __version__
from llmos.errors import LlmosError


class CliError(click.ClickException):
    """An :class:`LlmosError` shown as ``Error: <one line>`` with its exit code."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code

    def show(self, file: Any = None) -> None:
        click.echo(f"Error: {self.format_message()}", err=True)


class _PluginLoading:
    """Commands added by plugins (to the root or any lazy group), so they can be
    replaced when the plugin manager changes."""

    active = False
    added: list[tuple[click.Group, str]] = []


_plugin_loading = _PluginLoading()


class LazyGroup(click.Group):
    """A click group whose sub-commands are imported on first use.

    :param lazy: ``{command name: "module:attribute"}``.
    """

    def __init__(self, *args: Any, lazy: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})
        self.core_names = frozenset(self.lazy)
        self.lazy_help = dict(type(self).lazy_help)

    #: ``{command name: one-line help}`` shown by ``--help`` without importing the module
    lazy_help: dict[str, str] = {}

    def add_lazy_command(self, name: str, target: str, help: str) -> None:
        """Add the command ``name``, imported from ``target`` (``"module:attr"``) only when
        it is used; ``llmos --help`` shows ``help``, its one-line summary, without importing
        the module. This keeps a plugin's command modules out of every ``llmos`` start-up.
        Like :meth:`add_command`, it cannot replace an existing command (a warning is shown)."""
        if self._plugin_may_add(name):
            self.lazy[name] = target
            self.lazy_help[name] = help

    def _plugin_may_add(self, name: str) -> bool:
        """While plugins add commands: refuse (with a warning) one that would replace an
        existing command, and record the others so a change of plugin manager removes them."""
        if not _plugin_loading.active:
            return True
        if name in self.lazy or name in self.commands:
            click.echo(f"Warning: a plugin tried to replace the command {name!r}; ignored", err=True)
            return False
        _plugin_loading.added.append((self, name))
        return True

    def list_commands(self, ctx: click.Context) -> list[str]:
        if not isinstance(self, RootGroup):
            _load_plugins_into(ctx)
        return sorted(set(super().list_commands(ctx)) | set(self.lazy))

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            if name in self.lazy and name not in self.commands and name in self.lazy_help:
                rows.append((name, self.lazy_help[name]))
                continue
            cmd = self.get_command(ctx, name)
            if cmd is not None and not cmd.hidden:
                rows.append((name, cmd.get_short_help_str(formatter.width - 6 - len(name))))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if not isinstance(self, RootGroup):
            root = ctx.find_root().command if ctx is not None else None
            if isinstance(root, RootGroup) and (
                    root._loaded_for is not None or (name not in self.commands and name not in self.core_names)):
                # plugins' sub-commands of this core group: added, or (after a change of
                # plugin manager) replaced; a core command needs no plugin at all
                root._load_plugin_commands()
        if name in self.lazy and name not in self.commands:
            from llmos.components import import_object

            # a core module imported while plugins add commands (cli.core_group) defines
            # core commands: they are not recorded as the plugin's
            active, _plugin_loading.active = _plugin_loading.active, False
            try:
                click.Group.add_command(self, import_object(self.lazy[name]), name)
            finally:
                _plugin_loading.active = active
        return super().get_command(ctx, name)

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        name = name or cmd.name
        if self._plugin_may_add(name):
            super().add_command(cmd, name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LlmosError as exc:
            raise CliError(exc.message, exc.exit_code) from exc


def _load_plugins_into(ctx: click.Context | None) -> None:
    """Let plugins add their commands (to the root or to core groups) before a core
    group looks a sub-command up."""
    root = ctx.find_root().command if ctx is not None else None
    if isinstance(root, RootGroup):
        root._load_plugin_commands()


class RootGroup(LazyGroup):
    """The root group: also collects plugin commands (once, guarded)."""

    _loaded_for: object = None

    def core_group(self, name: str) -> click.Group:
        """The core command group ``name`` (``plugin``, ``runs``), for a
        plugin's ``llmos_register_commands`` to add sub-commands to with
        ``.add_command(cmd)``. This is the documented way: plugins never import
        ``llmos.cli`` modules. Existing commands cannot be replaced (a warning is shown)."""
        if name not in self.core_names:
            raise LlmosError(f"no core command group {name!r}: core groups are "
                             f"{', '.join(sorted(self.core_names))}")
        group = super().get_command(None, name)  # type: ignore[arg-type]
        if not isinstance(group, click.Group):
            raise LlmosError(f"llmos {name} is a command, not a group: add a command of your own instead")
        return group

    def _load_plugin_commands(self) -> None:
        """Let every plugin add its commands — once per plugin manager, so a process
        that swaps managers (tests, embedding) sees the commands of the current one."""
        from llmos.plugins import get_manager

        try:
            manager = get_manager()
        except LlmosError as exc:  # e.g. unreadable settings: keep the CLI usable
            click.echo(f"Warning: plugins not loaded: {exc.message}", err=True)
            return
        if self._loaded_for is manager:
            return
        for group, name in _plugin_loading.added:  # commands of the previous manager's plugins
            group.commands.pop(name, None)
            group.lazy.pop(name, None)
            group.lazy_help.pop(name, None)
        _plugin_loading.added.clear()
        self._loaded_for = manager
        _plugin_loading.active = True
        try:
            manager.call_each("llmos_register_commands", cli=self)
        finally:
            _plugin_loading.active = False

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load_plugin_commands()
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.core_names:
            self._load_plugin_commands()
        return super().get_command(ctx, name)


CORE_COMMANDS = {
    "plugin": "llmos.cli.plugin_cmds:plugin",
    "components": "llmos.cli.components_cmd:components",
    "run": "llmos.cli.run:run",
    "runs": "llmos.cli.run:runs",
}


#: one-line help of the core commands, so ``llmos --help`` imports none of their modules
CORE_HELP = {
    "components": "Components by stage, with the plugin of each.",
    "plugin": "Plugins: list, info, enable/disable, and what plugins add.",
    "run": "Run a pipeline file (stages in order, recorded).",
    "runs": "Recorded pipeline runs: list, show, compare.",
}
RootGroup.lazy_help = CORE_HELP


@click.group(
    cls=RootGroup,
    lazy=CORE_COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, "--version", "-V", prog_name="llmos")
def main() -> None:
    """llmos — an operating system for language models.

    Train, evaluate, compress, register, export and serve language models;
    every stage is a plugin.

    \b
    Start here:
      llmos components                 what every installed plugin provides
      llmos plugin list                installed plugins and their state
      llmos run pipelines/quickstart.toml   train a small model end to end

    State lives in $LLMOS_HOME (models, runs, settings); the registry (the
    llmos-registry plugin: llmos model, llmos db) is $LLMOS_DATABASE_URL
    (default: SQLite in $LLMOS_HOME).
    """


def run() -> None:  # console-script entry point
    sys.exit(main(prog_name="llmos"))
