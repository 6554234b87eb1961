"""``llmos plugin ...``: see and manage installed plugins."""

from __future__ import annotations

import click

from llmos.cli import LazyGroup
from llmos.cli._output import echo_json, echo_table, json_option

@click.group(cls=LazyGroup)
def plugin() -> None:
    """Installed plugins: list, inspect, enable and disable them.

    \b
    Plugins are Python distributions with an entry point in the `llmos` group.
    LLMOS_PLUGINS=a,b loads only those plugins (empty: none); name llmos-registry
    among them for commands that use the registry (llmos run, runs, model).
    Plugins add sub-commands here: search, install, upgrade, uninstall, new and
    test come from the standard plugin llmos-community.
    """


@plugin.command("list")
@json_option
@click.option("--all", "show_all", is_flag=True, help="Also show plugins skipped by LLMOS_PLUGINS.")
def list_(as_json: bool, show_all: bool) -> None:
    """List plugins with their state (ok, broken, disabled, incompatible)."""
    from llmos.plugins import SKIPPED, get_manager

    manager = get_manager()
    manager.components()  # calling the provider hooks finds plugins that raise
    infos = [i for i in manager.plugins.values() if show_all or i.status != SKIPPED]
    infos.sort(key=lambda i: i.name)
    if as_json:
        echo_json([i.to_dict() for i in infos])
        return
    if not infos:
        click.echo("No plugins installed. Install one with: pip install <plugin> (or llmos plugin install NAME)")
        return
    counts = _component_counts(manager)
    rows = [(i.name, i.version or "-", i.status, counts.get(i.name, 0), len(i.hooks), i.error or "") for i in infos]
    echo_table(rows, ["name", "version", "status", "components", "hooks", "problem"])
    installed = [(i.dist or i.name, i.version) for i in infos]
    for _plugin, lines in manager.call_each("llmos_after_plugin_list", plugins=installed):
        for line in lines or []:
            click.echo(f"Warning: {line}", err=True)
    click.echo("(llmos plugin info NAME shows a plugin's hooks and components)")


def _component_counts(manager: object) -> dict[str, int]:
    counts: dict[str, int] = {}
    for c in manager.components():  # type: ignore[attr-defined]
        counts[c.plugin] = counts.get(c.plugin, 0) + 1
    return counts


@plugin.command("info")
@click.argument("name")
@json_option
def info(name: str, as_json: bool) -> None:
    """Show one plugin: where it comes from, its hooks, components and problems."""
    from llmos.plugins import get_manager

    manager = get_manager()
    comps = [c for c in manager.components() if c.plugin == name]
    data = manager.info(name).to_dict()
    data["components"] = [c.to_dict() for c in comps]
    manager.call_each("llmos_after_plugin_info", info=data)  # e.g. the index entry (llmos-community)
    if as_json:
        echo_json(data)
        return
    for key in ("name", "status", "version", "dist", "module", "source", "api_version", "error"):
        if data.get(key) is not None:
            click.echo(f"{key + ':':13} {data[key]}")
    click.echo(f"{'hooks:':13} {', '.join(data['hooks']) or '-'}")
    click.echo(f"{'components:':13} {', '.join(c.ref for c in comps) or '-'}")
    idx, rec = data.get("index"), data.get("installed_from")
    if idx:
        yanked = f", yanked: {', '.join(idx['yanked'])}" if idx["yanked"] else ""
        click.echo(f"{'index:':13} {idx['status']}, latest {idx['latest'] or '-'}, "
                   f"versions {', '.join(idx['versions'])}{yanked}")
    if rec:
        click.echo(f"{'installed:':13} {rec['version']} from {rec['source']} ({rec['artifact_url']}), "
                   f"sha256 {(rec['sha256'] or '-')[:16]}…, {rec['installed_at']}")


@plugin.command("enable")
@click.argument("name")
def enable(name: str) -> None:
    """Enable a disabled plugin (persisted in $LLMOS_HOME/settings.json)."""
    from llmos.plugins import get_manager

    get_manager().set_enabled(name, True)
    click.echo(f"Enabled {name}.")


@plugin.command("disable")
@click.argument("name")
def disable(name: str) -> None:
    """Disable a plugin: it is not even imported until enabled again."""
    from llmos.plugins import get_manager

    get_manager().set_enabled(name, False)
    click.echo(f"Disabled {name}.")
