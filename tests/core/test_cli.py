"""The command line: through click's runner and as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from click.testing import CliRunner

import llmos
from llmos.cli import main


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_version():
    r = invoke("--version")
    assert r.exit_code == 0 and r.output.strip() == f"llmos, version {llmos.__version__}"


def test_help_lists_core_commands(plugin_manager):
    r = invoke("--help")
    assert r.exit_code == 0
    for cmd in ("components", "plugin"):
        assert cmd in r.output


def test_unknown_stage_is_a_usage_error(plugin_manager):
    r = CliRunner().invoke(main, ["components", "--stage", "nonsense"])
    assert r.exit_code == 2 and "nonsense" in r.output


def test_plugin_info_unknown_is_one_line_error(plugin_manager):
    r = CliRunner().invoke(main, ["plugin", "info", "nope"])
    assert r.exit_code == 2
    from llmos.testing import registry_plugins

    installed = ", ".join(sorted(registry_plugins())) or "none"  # the fixture keeps the registry's plugin
    assert r.stderr.strip().splitlines() == [f"Error: no plugin named 'nope' (installed: {installed})"]


def test_hook_register_commands_adds_commands_that_cannot_shadow_core(plugin_manager):
    import click

    from llmos import hookimpl

    class Cmds:
        LLMOS_API = 2

        @staticmethod
        @hookimpl
        def llmos_register_commands(cli):
            @cli.command()
            def hello():
                """Say hello."""
                click.echo("hello from a plugin")

            @cli.command(name="plugin")
            def evil():
                """Shadow a core command."""

    plugin_manager.register(Cmds(), name="cmds")
    from llmos.cli import RootGroup

    root = RootGroup(name="llmos", lazy=dict(__import__("llmos.cli", fromlist=["CORE_COMMANDS"]).CORE_COMMANDS))
    r = CliRunner().invoke(root, ["hello"])
    assert r.exit_code == 0 and r.stdout == "hello from a plugin\n"
    assert "a plugin tried to replace the command 'plugin'; ignored" in r.stderr
    r = CliRunner().invoke(root, ["plugin", "--help"])
    assert "Installed plugins" in r.output


CORE_GROUP_PROBE = """
import click
from click.testing import CliRunner
from llmos import hookimpl
from llmos.cli import CORE_COMMANDS, RootGroup
from llmos.plugins import PluginManager, set_manager

class P:
    LLMOS_API = 2

    @staticmethod
    @hookimpl
    def llmos_register_commands(cli):
        @click.command()
        def hi():
            click.echo("hi from a plugin")
        cli.core_group("plugin").add_command(hi, "hi")

m = PluginManager(load_entrypoints=False)
m.register(P(), name="p")
set_manager(m)
root = RootGroup(name="llmos", lazy=dict(CORE_COMMANDS))
CliRunner().invoke(root, ["--help"])  # loads the plugins' commands first, as `llmos --help` does
print(CliRunner().invoke(root, ["plugin", "hi"]).output.strip())
set_manager(PluginManager(load_entrypoints=False))  # the plugin is gone: so is its command, not the core's
r = CliRunner().invoke(root, ["plugin", "hi"])
print(r.exit_code)
print(CliRunner().invoke(root, ["plugin", "info", "nope"]).output.strip().splitlines()[-1])
"""


def test_hook_register_commands_core_group_adds_subcommands(tmp_path):
    """A plugin's llmos_register_commands adds `llmos plugin hi` through
    cli.core_group("plugin"); when the plugin manager changes, its command goes and the
    core's own (`plugin info`, first imported while plugins were adding commands) stay."""
    env = dict(os.environ, LLMOS_HOME=str(tmp_path))
    cp = subprocess.run([sys.executable, "-c", CORE_GROUP_PROBE], capture_output=True, text=True, env=env,
                        timeout=120)
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.splitlines() == ["hi from a plugin", "2", "Error: no plugin named 'nope' (installed: none)"]


def test_subprocess_help_and_json(tmp_path):
    env = {"LLMOS_HOME": str(tmp_path), "LLMOS_PLUGINS": "", "PATH": "/usr/bin:/bin"}
    cp = subprocess.run([sys.executable, "-m", "llmos", "--help"], capture_output=True, text=True, env=env, timeout=60)
    assert cp.returncode == 0 and "Usage: llmos" in cp.stdout
    cp = subprocess.run([sys.executable, "-m", "llmos", "components", "--json"], capture_output=True, text=True,
                        env=env, timeout=60)
    assert cp.returncode == 0 and json.loads(cp.stdout) == []


def test_components_json_and_stage_filter(plugin_manager):
    from pydantic import BaseModel

    from llmos import hookimpl

    class Cfg(BaseModel):
        steps: int = 10

    class P:
        LLMOS_API = 2

        @staticmethod
        @hookimpl
        def llmos_register_optimizer_steps(register):
            register("loop", lambda cfg: cfg, config=Cfg, description="A loop.\nMore text.")

        @staticmethod
        @hookimpl
        def llmos_register_data_steps(register):
            register("text", lambda cfg: cfg, description="Text.")

    plugin_manager.register(P(), name="p")
    data = json.loads(invoke("components", "--json").output)
    assert [c["ref"] for c in data] == ["data.text", "optimizer.loop"]
    assert data[1]["description"] == "A loop."
    assert data[1]["config"] == [{"name": "steps", "type": "int", "required": False, "default": 10, "description": ""}]
    only = json.loads(invoke("components", "--stage", "data", "--json").output)
    assert [c["ref"] for c in only] == ["data.text"]
    table = invoke("components", "-v").output
    assert "optimizer.loop" in table and ".steps" in table


def test_every_core_command_has_its_help_line():
    from llmos.cli import CORE_COMMANDS, CORE_HELP

    assert set(CORE_HELP) == set(CORE_COMMANDS)
    assert all(len(h) <= 60 for h in CORE_HELP.values())  # one line in an 80-column terminal


def test_plugins_lazy_commands_import_to_what_their_help_says(tmp_path, monkeypatch):
    """Every installed plugin's lazy command (cli.add_lazy_command) names an importable
    click command whose help starts with the line `llmos --help` shows without importing it."""
    import inspect

    import click

    from llmos.cli import CORE_COMMANDS, RootGroup
    from llmos.components import import_object
    from llmos.plugins import PluginManager, set_manager

    monkeypatch.setenv("LLMOS_HOME", str(tmp_path))
    monkeypatch.delenv("LLMOS_PLUGINS", raising=False)
    previous = set_manager(PluginManager())
    try:
        root = RootGroup(name="llmos", lazy=dict(CORE_COMMANDS))
        root._load_plugin_commands()
        groups = [root, root.core_group("plugin")]
        lazy = [(g, n) for g in groups for n in g.lazy if n not in g.core_names]
        assert {n for _, n in lazy} >= {"model", "db", "serve", "index", "install"}  # the standard plugins'
        for group, name in lazy:
            cmd = import_object(group.lazy[name])
            assert isinstance(cmd, click.Command), name
            assert inspect.cleandoc(cmd.help or "").splitlines()[0] == group.lazy_help[name], name
    finally:
        set_manager(previous)


def test_help_does_not_import_plugin_command_modules(tmp_path):
    env = dict(os.environ, LLMOS_HOME=str(tmp_path))
    env.pop("LLMOS_PLUGINS", None)
    probe = ("import sys\nfrom llmos.cli import main\ntry:\n    main(['--help'], prog_name='llmos')\n"
             "except SystemExit:\n    pass\n"
             "print(sorted(m for m in sys.modules if m.startswith('llmos_') and '.cli' in m or "
             "m.endswith(('_cmd', '.commands'))), file=sys.stderr)")
    cp = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120)
    assert cp.returncode == 0, cp.stderr
    assert cp.stderr.strip() == "[]"
