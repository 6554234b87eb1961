"""``llmos model ...``: register, inspect, alias, compare, export and clean up model versions.

Only click and llmos are imported here; the registry (SQLAlchemy) is imported inside
each command. The plugin adds the group in ``llmos_register_commands``
(:mod:`llmos_registry.plugin`), with ``export`` from :mod:`llmos_registry.cli.model_export`.
"""

from __future__ import annotations

from typing import Any

import click

from llmos.sdk import echo_json, echo_table, json_option, make_console


def _registry() -> Any:
    from llmos_registry import open_registry

    return open_registry()


def _pairs(values: tuple[str, ...], what: str) -> dict[str, str]:
    from llmos.sdk import parse_key_values

    return parse_key_values(values, what=what, option=f"--{what}", example="stage=int8", typed=False)


def _human(n: int | float | None) -> str:
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(size) < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"


def _fmt_metrics(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:.4g}" for k, v in sorted(metrics.items())) or "-"


@click.group()
def model() -> None:
    """Model versions in the registry: register, list, alias, diff, export.

    \b
    References: NAME (latest ready version), NAME:3 (version 3), NAME@production (an alias).
    \b
    Example:
      llmos model register tiny ./out/model --metric val_ppl=41.2 --alias canary
      llmos model alias set tiny production 1
      llmos model diff tiny:1 tiny@canary
      llmos model export tiny@production ./export
    """


@model.command("register")
@click.argument("name")
@click.argument("path", type=click.Path(path_type=str))
@click.option("--description", "-d", default="", help="What this version is.")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="A tag (repeatable).")
@click.option("--metric", "metrics", multiple=True, metavar="NAME=NUMBER", help="A metric (repeatable).")
@click.option("--parent", "parents", multiple=True, metavar="REF", help="A parent version (repeatable).")
@click.option("--alias", "aliases", multiple=True, metavar="ALIAS", help="Point this alias at the new version.")
@json_option
def register(
    name: str,
    path: str,
    description: str,
    tags: tuple[str, ...],
    metrics: tuple[str, ...],
    parents: tuple[str, ...],
    aliases: tuple[str, ...],
    as_json: bool,
) -> None:
    """Register PATH (a Hugging Face layout directory or a .safetensors file) as the
    next version of model NAME.

    Weights are stored per tensor, so a version that changes a few tensors only
    stores those again. Pickle files (.bin, .pt, .pkl, .ckpt) are refused.

    \b
    Example:
      llmos model register tiny ./out/model --tag stage=fp32 --metric val_ppl=41.2 --parent tiny:1
    """
    import sys
    from pathlib import Path

    from llmos.sdk import ValidationError

    tag_values = _pairs(tags, "tag")
    metric_values: dict[str, float] = {}
    for key, value in _pairs(metrics, "metric").items():
        try:
            metric_values[key] = float(value)
        except ValueError:
            raise ValidationError(f"metric {key!r} must be a number, got {value!r}") from None
    total = _total_size(Path(path))
    reg = _registry()
    # a bar is for a person at a terminal: elsewhere it would only cost rich's import
    if total > PROGRESS_MIN_BYTES and not as_json and sys.stdout.isatty():
        from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

        with Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                      TransferSpeedColumn(), transient=True) as bar:
            task = bar.add_task(f"registering {name}", total=total)
            info = reg.register_version(name, path, description=description, tags=tag_values, metrics=metric_values,
                                        parents=list(parents), aliases=list(aliases),
                                        progress=lambda n: bar.advance(task, n))
    else:
        info = reg.register_version(name, path, description=description, tags=tag_values, metrics=metric_values,
                                    parents=list(parents), aliases=list(aliases))
    if as_json:
        echo_json(info.to_dict())
        return
    alias_text = f", aliases: {', '.join(info.aliases)}" if info.aliases else ""
    click.echo(
        f"Registered {info.ref} ({len(info.files)} files, {_human(info.size_bytes)}; "
        f"{_human(info.stored_bytes)} new in the store, {_human(info.reused_bytes)} shared{alias_text})"
    )


#: models larger than this show a progress bar while registering (on a terminal)
PROGRESS_MIN_BYTES = 64 << 20


def _total_size(path: Any) -> int:
    try:
        if path.is_file():
            return int(path.stat().st_size)
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    except OSError:
        return 0


@model.command("list")
@json_option
def list_(as_json: bool) -> None:
    """List models with their latest version and aliases."""
    models = _registry().list_models()
    if as_json:
        echo_json(models)
        return
    if not models:
        click.echo("No models yet. Register one: llmos model register NAME PATH")
        return
    rows = [
        (m["name"], m["versions"], m["latest"] or "-", ", ".join(f"{a}→{n}" for a, n in m["aliases"].items()) or "-",
         m["description"])
        for m in models
    ]
    echo_table(rows, ["name", "versions", "latest", "aliases", "description"])


@model.command("show")
@click.argument("ref")
@json_option
def show(ref: str, as_json: bool) -> None:
    """Show one version: files, metrics, tags, aliases, parents, lineage.

    \b
    Example:
      llmos model show tiny@production --json
    """
    info = _registry().resolve(ref)
    if as_json:
        echo_json(info.to_dict())
        return
    click.echo(f"{'version:':13} {info.ref}  ({info.status})")
    if info.description:
        click.echo(f"{'description:':13} {info.description}")
    click.echo(f"{'created:':13} {info.created_at:%Y-%m-%d %H:%M:%S} UTC" if info.created_at else "")
    click.echo(f"{'size:':13} {_human(info.size_bytes)}")
    click.echo(f"{'aliases:':13} {', '.join(info.aliases) or '-'}")
    click.echo(f"{'parents:':13} {', '.join(info.parents) or '-'}")
    click.echo(f"{'metrics:':13} {_fmt_metrics(info.metrics)}")
    click.echo(f"{'tags:':13} {', '.join(f'{k}={v}' for k, v in sorted(info.tags.items())) or '-'}")
    if info.lineage:
        import json

        click.echo(f"{'lineage:':13} {json.dumps(info.lineage, sort_keys=True, default=str)}")
    echo_table([(f["path"], _human(f["size"]), f["kind"], f["sha256"][:12]) for f in info.files],
               ["file", "size", "stored as", "sha256"])


@model.command("versions")
@click.argument("name")
@click.option("--all", "show_all", is_flag=True, help="Also show deleted versions (tombstones).")
@json_option
def versions(name: str, show_all: bool, as_json: bool) -> None:
    """List the versions of model NAME, oldest first."""
    infos = _registry().list_versions(name, include_deleted=show_all)
    if as_json:
        echo_json([i.to_dict() for i in infos])
        return
    rows = [
        (i.number, i.status, f"{i.created_at:%Y-%m-%d %H:%M}" if i.created_at else "", _human(i.size_bytes),
         ", ".join(i.aliases) or "-", _fmt_metrics(i.metrics), i.description)
        for i in infos
    ]
    echo_table(rows, ["version", "status", "created", "size", "aliases", "metrics", "description"])


@model.command("search")
@click.argument("query")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 100_000), help="At most this many.")
@click.option("--all", "show_all", is_flag=True, help="Also match deleted versions (tombstones).")
@json_option
def search(query: str, limit: int, show_all: bool, as_json: bool) -> None:
    """Find versions of any model by metrics, tags, aliases, name, status or date,
    newest first.

    \b
    QUERY: comparisons joined by and / or / not and parentheses, e.g.
      metrics.val_ppl < 50 and tags.team = 'nlp'
      name = 'quickstart' and (aliases = 'production' or version >= 10)
      created_at >= '2026-11-01' and not status = 'archived'
    Fields: name, version, status, description, run_id, created_at, size_bytes,
    metrics.<name>, tags.<key>, aliases. Operators: = != < <= > >= like ('%' and '_').
    Text is quoted; numbers are not.
    \b
    Example:
      llmos model search "metrics.val_ppl < 50 and tags.team = 'nlp'" --json
    """
    infos = _registry().search(query, limit=limit, include_deleted=show_all)
    if as_json:
        echo_json([i.to_dict() for i in infos])
        return
    if not infos:
        click.echo("No version matches.")
        return
    rows = [
        (i.ref, i.status, f"{i.created_at:%Y-%m-%d %H:%M}" if i.created_at else "", ", ".join(i.aliases) or "-",
         _fmt_metrics(i.metrics), ", ".join(f"{k}={v}" for k, v in sorted(i.tags.items())) or "-")
        for i in infos
    ]
    echo_table(rows, ["version", "status", "created", "aliases", "metrics", "tags"])


@model.group("alias")
def alias() -> None:
    """Move or remove aliases (NAME@ALIAS references), e.g. production, canary."""


@alias.command("set")
@click.argument("name")
@click.argument("alias_name", metavar="ALIAS")
@click.argument("version")
def alias_set(name: str, alias_name: str, version: str) -> None:
    """Point NAME@ALIAS at VERSION (atomically; it moves if it exists).

    \b
    Example:
      llmos model alias set tiny production 3
    """
    info = _registry().set_alias(name, alias_name, version)
    click.echo(f"{name}@{alias_name} → {info.ref}")


@alias.command("remove")
@click.argument("name")
@click.argument("alias_name", metavar="ALIAS")
def alias_remove(name: str, alias_name: str) -> None:
    """Remove NAME@ALIAS.

    \b
    Example:
      llmos model alias remove tiny canary
    """
    old = _registry().remove_alias(name, alias_name)
    click.echo(f"Removed {name}@{alias_name} (was {name}:{old})")


@model.command("tag")
@click.argument("ref")
@click.argument("pairs", nargs=-1, metavar="KEY=VALUE...")
@click.option("--remove", "remove", multiple=True, metavar="KEY", help="Remove this tag (repeatable).")
@json_option
def tag(ref: str, pairs: tuple[str, ...], remove: tuple[str, ...], as_json: bool) -> None:
    """Set (or --remove) tags of a version.

    \b
    Example:
      llmos model tag tiny:2 stage=int8 reviewed=yes --remove draft
    """
    from llmos.sdk import ValidationError

    if not pairs and not remove:
        raise ValidationError("nothing to do: give KEY=VALUE pairs or --remove KEY")
    info = _registry().set_tags(ref, _pairs(pairs, "tag"), remove=remove)
    if as_json:
        echo_json(info.tags)
        return
    click.echo(f"{info.ref}: {', '.join(f'{k}={v}' for k, v in sorted(info.tags.items())) or 'no tags'}")


@model.command("metrics")
@click.argument("ref")
@click.option("--set", "values", multiple=True, metavar="NAME=NUMBER", help="Record a metric (repeatable).")
@json_option
def metrics(ref: str, values: tuple[str, ...], as_json: bool) -> None:
    """Show (or --set) the metrics of a version.

    \b
    Example:
      llmos model metrics tiny@production --set tokens_per_s=812
    """
    from llmos.sdk import ValidationError

    reg = _registry()
    if values:
        parsed: dict[str, float] = {}
        for key, value in _pairs(values, "set").items():
            try:
                parsed[key] = float(value)
            except ValueError:
                raise ValidationError(f"metric {key!r} must be a number, got {value!r}") from None
        info = reg.log_metrics(ref, parsed)
    else:
        info = reg.resolve(ref)
    if as_json:
        echo_json(info.metrics)
        return
    if not info.metrics:
        click.echo(f"{info.ref} has no metrics (record one: llmos model metrics {info.ref} --set NAME=NUMBER)")
        return
    echo_table([(k, f"{v:.6g}") for k, v in sorted(info.metrics.items())], ["metric", "value"], title=info.ref)


@model.command("lineage")
@click.argument("ref")
@json_option
def lineage(ref: str, as_json: bool) -> None:
    """Show where a version comes from, as a tree of its parents (and its children).

    \b
    Example:
      llmos model lineage tiny:3
    """
    tree = _registry().lineage(ref)
    if as_json:
        echo_json(tree)
        return
    from rich.tree import Tree

    def label(node: dict[str, Any]) -> str:
        bits = [f"[bold]{node['ref']}[/bold]"]
        if node["status"] != "ready":
            bits.append(f"({node['status']})")
        if node.get("method"):
            bits.append(f"method={node['method']}")
        if node.get("run_id"):
            bits.append(f"run={node['run_id']}")
        if node.get("metrics"):
            bits.append(_fmt_metrics(node["metrics"]))
        return " ".join(bits)

    def add(parent: Tree, node: dict[str, Any]) -> None:
        for p in node["parents"]:
            add(parent.add(label(p)), p)

    root = Tree(label(tree))
    add(root, tree)
    console = make_console(soft_wrap=True)
    console.print(root)
    if tree.get("children"):
        console.print(f"children: {', '.join(tree['children'])}")


@model.command("diff")
@click.argument("a")
@click.argument("b")
@json_option
def diff(a: str, b: str, as_json: bool) -> None:
    """Compare two versions: tensors changed/added/removed, sizes, metric deltas.

    \b
    Example:
      llmos model diff tiny:1 tiny:2
    """
    d = _registry().diff(a, b)
    if as_json:
        echo_json(d)
        return
    t = d["tensors"]
    click.echo(f"{d['a']} → {d['b']}")
    click.echo(
        f"tensors: {len(t['changed'])} changed, {len(t['added'])} added, {len(t['removed'])} removed, "
        f"{t['unchanged']} unchanged"
    )
    rows = [(c["name"], "changed", f"{c['a']['dtype']}{c['a']['shape']} → {c['b']['dtype']}{c['b']['shape']}",
             _human(c["b"]["size"] - c["a"]["size"])) for c in t["changed"]]
    rows += [(x["name"], "added", f"{x['dtype']}{x['shape']}", _human(x["size"])) for x in t["added"]]
    rows += [(x["name"], "removed", f"{x['dtype']}{x['shape']}", _human(-x["size"])) for x in t["removed"]]
    if rows:
        echo_table(rows[:50], ["tensor", "change", "dtype/shape", "Δsize"])
        if len(rows) > 50:
            click.echo(f"... and {len(rows) - 50} more (use --json)")
    f = d["files"]
    for kind in ("added", "removed", "changed"):
        if f[kind]:
            click.echo(f"files {kind}: {', '.join(f[kind])}")
    s = d["size"]
    click.echo(f"size: {_human(s['a'])} → {_human(s['b'])} ({'+' if s['delta'] >= 0 else '-'}{_human(abs(s['delta']))})")
    if d["metrics"]:
        echo_table(
            [(k, "-" if m["a"] is None else f"{m['a']:.6g}", "-" if m["b"] is None else f"{m['b']:.6g}",
              "-" if m["delta"] is None else f"{m['delta']:+.6g}") for k, m in d["metrics"].items()],
            ["metric", d["a"], d["b"], "delta"],
        )


@model.command("archive")
@click.argument("ref")
def archive(ref: str) -> None:
    """Archive a version: kept and loadable as NAME:N, but no longer the latest."""
    info = _registry().archive(ref)
    click.echo(f"Archived {info.ref}")


@model.command("delete")
@click.argument("ref")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def delete(ref: str, yes: bool) -> None:
    """Delete a version (its number is never reused; `llmos model gc` frees the space).

    \b
    Example:
      llmos model delete tiny:1 --yes
    """
    reg = _registry()
    info = reg.resolve(ref)
    if not yes:
        click.confirm(f"Delete {info.ref} ({_human(info.size_bytes)})?", abort=True)
    reg.delete(info.ref)
    click.echo(f"Deleted {info.ref}")


@model.command("gc")
@click.option("--grace-seconds", default=3600.0, show_default=True, type=float,
              help="Keep unreferenced blobs younger than this (a registration may be using them).")
@click.option("--dry-run", is_flag=True, help="Only report what would be removed.")
@json_option
def gc(grace_seconds: float, dry_run: bool, as_json: bool) -> None:
    """Remove blobs no version uses any more (e.g. after deletes).

    \b
    Example:
      llmos model gc --grace-seconds 0
    """
    result = _registry().gc(grace_seconds, dry_run=dry_run)
    if as_json:
        echo_json(result)
        return
    verb = "Would remove" if dry_run else "Removed"
    click.echo(
        f"{verb} {result['removed_blobs']} blobs ({_human(result['removed_bytes'])}), "
        f"{result['removed_temp_files']} temporary files, {result['removed_checkouts']} stale checkouts; "
        f"kept {result['kept_recent']} recent unreferenced blobs"
    )


@model.command("fsck")
@click.option("--repair", is_flag=True, help="Materialise checkouts that differ from their version again.")
@json_option
def fsck(repair: bool, as_json: bool) -> None:
    """Re-hash every blob and every checkout; report missing and corrupt blobs and
    edited checkouts (exit 1 if any is left unrepaired).

    \b
    Example:
      llmos model fsck --json
      llmos model fsck --repair
    """
    reg = _registry()
    if as_json:
        result = reg.fsck(repair=repair)
    else:
        from rich.progress import BarColumn, DownloadColumn, Progress

        total = reg.info()["blobs"]["bytes"]
        with Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                      transient=True) as bar:
            task = bar.add_task("checking blobs", total=total)
            result = reg.fsck(progress=lambda n: bar.advance(task, n), repair=repair)
    if as_json:
        echo_json(result)
    else:
        click.echo(f"Checked {result['checked_blobs']} blobs ({_human(result['checked_bytes'])}): "
                   f"{len(result['missing'])} missing, {len(result['corrupt'])} corrupt, "
                   f"{result['unreferenced']} unreferenced (llmos model gc removes them)")
        for m in result["missing"]:
            click.echo(f"  missing {m['sha256']} used by {', '.join(m['used_by'])}")
        for c in result["corrupt"]:
            click.echo(f"  corrupt {c['sha256']} (content hashes to {c['actual'][:12]}…) used by {', '.join(c['used_by'])}")
        for c in result["checkouts"]:
            what = ", ".join(f"{k} {', '.join(c[k])}" for k in ("modified", "missing", "extra") if c[k])
            state = "repaired" if c["repaired"] else "run: llmos model fsck --repair"
            click.echo(f"  checkout {c['ref']} differs from its version ({what}): {state}")
    if not result["ok"]:
        raise click.exceptions.Exit(1)
