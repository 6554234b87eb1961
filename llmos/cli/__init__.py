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


class LazyGroup(click.Group):
    """A click group whose sub-commands are imported on first use.

    :param lazy: ``{command name: "module:attribute"}``.
    """

    def __init__(self, *args: Any, lazy: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self.lazy))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy and name not in self.commands:
            from llmos.components import import_object

            self.add_command(import_object(self.lazy[name]), name)
        return super().get_command(ctx, name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LlmosError as exc:
            raise CliError(exc.message, exc.exit_code) from exc


class RootGroup(LazyGroup):
    """The root group: also collects plugin commands (once, guarded)."""

    _plugins_loaded = False
    _adding_plugin_commands = False

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        name = name or cmd.name
        if self._adding_plugin_commands and (name in self.lazy or name in self.commands):
            click.echo(f"Warning: a plugin tried to replace the command {name!r}; ignored", err=True)
            return
        super().add_command(cmd, name)

    def _load_plugin_commands(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        from llmos.plugins import get_manager

        try:
            manager = get_manager()
        except LlmosError as exc:  # e.g. unreadable settings: keep the CLI usable
            click.echo(f"Warning: plugins not loaded: {exc.message}", err=True)
            return
        self._adding_plugin_commands = True
        try:
            manager.call_each("llmos_register_commands", cli=self)
        finally:
            self._adding_plugin_commands = False

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load_plugin_commands()
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.lazy:
            self._load_plugin_commands()
        return super().get_command(ctx, name)


CORE_COMMANDS = {
    "plugin": "llmos.cli.plugin_cmds:plugin",
    "components": "llmos.cli.components_cmd:components",
    "index": "llmos.cli.index:index",
    "contrib": "llmos.cli.contrib:contrib",
    "run": "llmos.cli.run:run",
    "runs": "llmos.cli.run:runs",
    "model": "llmos.cli.model:model",
    "db": "llmos.cli.db:db",
}


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

    State lives in $LLMOS_HOME (models, runs, settings); the registry database
    is $LLMOS_DATABASE_URL (default: SQLite in $LLMOS_HOME).
    """


def run() -> None:  # console-script entry point
    sys.exit(main(prog_name="llmos"))
