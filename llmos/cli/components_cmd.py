"""``llmos components``: everything the installed plugins provide."""

from __future__ import annotations

import click

from llmos.cli._output import echo_json, echo_table, json_option
from llmos.components import STAGES


@click.command()
@click.option("--stage", "-s", type=click.Choice(STAGES), help="Only this stage.")
@click.option("--verbose", "-v", is_flag=True, help="Show every component's config fields.")
@json_option
def components(stage: str | None, verbose: bool, as_json: bool) -> None:
    """List components by stage, with the plugin providing each.

    Pipelines name a component as STAGE.NAME (e.g. model.llama), or
    PLUGIN:STAGE.NAME when two plugins provide the same name.
    """
    from llmos.plugins import get_manager

    comps = sorted(get_manager().components(stage), key=lambda c: (STAGES.index(c.stage), c.name, c.plugin))
    if as_json:
        echo_json([c.to_dict() for c in comps])
        return
    if not comps:
        click.echo("No components. Install plugins (see llmos plugin list).")
        return
    names = [c.ref for c in comps]
    rows = []
    for c in comps:
        ref = c.qualified_ref if names.count(c.ref) > 1 else c.ref
        rows.append((ref, c.plugin, c.description))
        if verbose:
            for f in c.config_fields():
                default = "(required)" if f["required"] else repr(f["default"])
                rows.append((f"  .{f['name']}", f["type"], f"{default}  {f['description']}".rstrip()))
    echo_table(rows, ["component", "plugin", "description"])
