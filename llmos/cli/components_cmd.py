"""``llmos components``: everything the installed plugins provide."""

from __future__ import annotations

import click

from llmos.cli._output import echo_json, echo_table, json_option
from llmos.components import EXTENSION_KINDS, STAGES


@click.command()
@click.option("--stage", "-s", type=click.Choice(STAGES), help="Only this stage's steps.")
@click.option("--kind", "-k", type=click.Choice(EXTENSION_KINDS), help="Only this extension kind.")
@click.option("--verbose", "-v", is_flag=True, help="Show every component's config fields.")
@json_option
def components(stage: str | None, kind: str | None, verbose: bool, as_json: bool) -> None:
    """List components by stage, and extensions by kind, with the plugin providing each.

    \b
    Stage steps: pipelines name one as STAGE.NAME (e.g. model.llama), or
    PLUGIN:STAGE.NAME when two plugins provide the same name.
    Extensions (optimizers, lr_schedules, architectures, model_loaders, ...):
    a stage's setting names one (e.g. optimizer = "adamw"), or PLUGIN:NAME.
    """
    from llmos.plugins import get_manager

    manager = get_manager()
    comps = [] if kind else sorted(manager.components(stage),
                                   key=lambda c: (STAGES.index(c.stage), c.name, c.plugin))
    exts = [] if stage else sorted(manager.extensions(kind),
                                   key=lambda e: (EXTENSION_KINDS.index(e.kind), e.name, e.plugin))
    if as_json:
        if kind is None and stage is None:
            echo_json([c.to_dict() for c in comps] + [e.to_dict() for e in exts])
        else:
            echo_json([c.to_dict() for c in comps or exts])
        return
    if not comps and not exts:
        click.echo("No components. Install plugins (see llmos plugin list).")
        return
    names = [c.ref for c in comps]
    rows = []
    for c in comps:
        ref = c.qualified_ref if names.count(c.ref) > 1 else c.ref
        rows.append((ref, c.plugin, c.description))
        if verbose:
            rows.extend(_fields(c))
    if comps:
        echo_table(rows, ["component", "plugin", "description"])
    if exts:
        if comps:
            click.echo()
        ext_names = [(e.kind, e.name) for e in exts]
        rows = []
        for e in exts:
            name = e.qualified_ref if ext_names.count((e.kind, e.name)) > 1 else e.name
            presets = e.extra.get("presets")
            desc = e.description + (f" (presets: {', '.join(presets)})" if presets else "")
            rows.append((e.kind, name, e.plugin, desc))
            if verbose:
                rows.extend(("", *row) for row in _fields(e))
        echo_table(rows, ["extension kind", "name", "plugin", "description"])


def _fields(c: object) -> list[tuple[str, str, str]]:
    out = []
    for f in c.config_fields():  # type: ignore[attr-defined]
        default = "(required)" if f["required"] else repr(f["default"])
        out.append((f"  .{f['name']}", f["type"], f"{default}  {f['description']}".rstrip()))
    return out
