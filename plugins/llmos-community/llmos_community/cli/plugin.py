"""``llmos plugin search|install|upgrade|uninstall|new|test``: the community side of
``llmos plugin`` (registered through ``LAZY`` in :mod:`llmos.cli.plugin_cmds`)."""

from __future__ import annotations

import click

from llmos.sdk import STAGES, echo_json, echo_table, json_option

index_option = click.option(
    "--index", "index_path", type=click.Path(file_okay=False),
    help="The plugin index directory (default: $LLMOS_INDEX, ./registry, or the llmos checkout's registry/).")
wheelhouse_option = click.option(
    "--wheelhouse", type=click.Path(file_okay=False), envvar="LLMOS_WHEELHOUSE",
    help="Directory holding release wheels, used before their URL (or $LLMOS_WHEELHOUSE).")


def _index(index_path: str | None):  # -> Index
    from llmos_community.index import open_index

    return open_index(index_path)


@click.command("search")
@click.argument("text", required=False, default="")
@click.option("--stage", type=click.Choice(STAGES))
@index_option
@json_option
def search(text: str, stage: str | None, index_path: str | None, as_json: bool) -> None:
    """Search the plugin index by name, summary, keyword or component.

    \b
    Examples:
      llmos plugin search corpus
      llmos plugin search --stage compression --json
    """
    from llmos_community.resolver import search as do_search

    hits = do_search(_index(index_path), text, stage)
    if as_json:
        echo_json(hits)
        return
    if not hits:
        click.echo("No plugin in the index matches.")
        return
    def short(text: str, n: int = 60) -> str:
        return text if len(text) <= n else text[: n - 1].rstrip() + "…"

    echo_table([(h["name"], h["latest"] or "-", ",".join(h["stages"]), h["status"], short(h["summary"]))
                for h in hits],
               ["name", "latest", "stages", "status", "summary"])


def _install(requirement: str, index_path: str | None, wheelhouse: str | None, upgrade: bool, dry_run: bool,
             as_json: bool) -> None:
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

    from llmos_community.installer import install as do_install
    from llmos_community.resolver import resolve

    idx = _index(index_path)
    res = resolve(idx, requirement)
    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), transient=True,
                  disable=as_json) as prog:
        task = prog.add_task(f"fetch {res.filename}", total=res.manifest.artifact.size)
        out = do_install(idx, requirement, wheelhouse=wheelhouse, upgrade=upgrade, dry_run=dry_run,
                         progress=lambda n: prog.advance(task, n))
    if as_json:
        echo_json(out)
        return
    action = out["action"]
    if action in ("already-installed", "up-to-date"):
        click.echo(f"{out['name']} {out['version']} is already installed.")
    elif action == "would-install":
        click.echo(f"Would install {out['name']} {out['version']} (hash verified).")
    else:
        frm = f" (was {out['from']})" if out.get("from") else ""
        click.echo(f"{action.capitalize()} {out['name']} {out['version']}{frm}; sha256 {out['sha256'][:16]}… verified.")
        if out.get("yanked"):
            click.echo(f"Warning: {out['name']} {out['version']} is yanked; you pinned it exactly.", err=True)


@click.command("install")
@click.argument("requirement")
@index_option
@wheelhouse_option
@click.option("--dry-run", is_flag=True, help="Resolve, fetch and verify, but do not install.")
@json_option
def install(requirement: str, index_path: str | None, wheelhouse: str | None, dry_run: bool, as_json: bool) -> None:
    """Install a plugin from the index: hash-verified wheel, never a source build.

    Resolves NAME[SPEC] (yanked releases only when pinned with ==), checks the
    wheel's size and sha256 before pip sees it, installs it into this Python with
    pip --require-hashes, checks that it loads, and records it in the registry.
    A failed install leaves the environment as it was.

    \b
    Examples:
      llmos plugin install llmos-my-corpus
      llmos plugin install 'llmos-my-corpus>=0.2,<1' --wheelhouse ./wheels
    """
    _install(requirement, index_path, wheelhouse, False, dry_run, as_json)


@click.command("upgrade")
@click.argument("requirement")
@index_option
@wheelhouse_option
@json_option
def upgrade(requirement: str, index_path: str | None, wheelhouse: str | None, as_json: bool) -> None:
    """Upgrade an installed plugin to the highest allowed release in the index.

    \b
    Example:
      llmos plugin upgrade llmos-my-corpus
    """
    _install(requirement, index_path, wheelhouse, True, False, as_json)


@click.command("uninstall")
@click.argument("name")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def uninstall(name: str, yes: bool) -> None:
    """Uninstall a plugin distribution (recorded in the registry).

    \b
    Example:
      llmos plugin uninstall llmos-my-corpus -y
    """
    from llmos_community.installer import uninstall as do_uninstall

    if not yes:
        click.confirm(f"Uninstall {name}?", abort=True)
    out = do_uninstall(name)
    click.echo(f"Uninstalled {out['name']} {out['version']}.")


@click.command("new")
@click.argument("name")
@click.option("--kind", default="stage", show_default=True,
              type=click.Choice(["stage", "sink", "optimizer", "schedule", "reader", "tokenizer-trainer", "architecture",
                                 "eval-task", "eval-metric", "quantizer", "export-format", "engine"]),
              help="What the plugin provides: a stage step (with --stage), a metric sink (lifecycle hooks), or an "
                   "extension a standard stage selects by name (optimizer, schedule, reader...); every kind's "
                   "generated test runs llmos's tiny pipeline with it.")
@click.option("--stage", type=click.Choice(STAGES), help="The stage of a --kind stage plugin.")
@click.option("--dir", "directory", default=".", type=click.Path(file_okay=False), show_default=True,
              help="Create the project in DIR/<name>.")
@click.option("--author", default="Your Name", help="Author name for pyproject.toml and LICENSE.")
@click.option("--email", help="Author email (also the default security contact).")
@click.option("--license", "license_", default="Apache-2.0", type=click.Choice(["Apache-2.0", "MIT"]),
              show_default=True)
@click.option("--summary", help="One-line description.")
@click.option("--source-url", help="Source repository URL (written to [project.urls]).")
def new(name: str, kind: str, stage: str | None, directory: str, author: str, email: str | None, license_: str,
        summary: str | None, source_url: str | None) -> None:
    """Create a plugin project with a working component and passing tests.

    \b
    Examples:
      llmos plugin new llmos-my-corpus --stage data --author "Ada L." --email ada@example.org
      llmos plugin new llmos-my-sink --kind sink     (its test runs llmos's tiny pipeline)
      llmos plugin new llmos-lion --kind optimizer   (then --set stages.train.config.optimizer=lion)
      cd llmos-my-corpus && pip install -e '.[test]' && pytest && llmos plugin test .
    """
    from pathlib import Path

    from llmos_community.scaffold import scaffold

    path = scaffold(name, stage, Path(directory), author=author, email=email, license=license_, summary=summary,
                    source_url=source_url, kind=kind)
    click.echo(f"Created {path}")
    for p in sorted(path.rglob("*")):
        if p.is_file():
            click.echo(f"  {p.relative_to(path)}")
    click.echo(f"Next: cd {path} && pip install -e '.[test]' && pytest && llmos plugin test .")


@click.command("test")
@click.argument("path", type=click.Path(exists=True, file_okay=False), default=".")
@click.option("--run", "run_file", type=click.Path(exists=True, dir_okay=False),
              help="Also run this (tiny) pipeline with the plugin loaded and check every stage's outputs "
                   "against the artifact protocols of llmos.artifacts (in a temporary LLMOS_HOME).")
@json_option
def test(path: str, run_file: str | None, as_json: bool) -> None:
    """Run the llmos plugin contract checks on a plugin project directory.

    Imports the hook module named by the project's `llmos` entry point from its
    source tree (no install needed) and checks the API version, hooks and components,
    and that importing it loads none of torch, numpy or transformers. With --run, also
    runs a pipeline using the plugin and checks what each stage leaves in
    ctx.artifacts (declared keys, values satisfying their protocols).

    \b
    Examples:
      llmos plugin test ./llmos-my-corpus
      llmos plugin test ./llmos-my-corpus --run pipelines/tiny.toml
    """
    from llmos.sdk import check_outputs, check_plugin
    from llmos_community.project import heavy_imports, load_hook_modules, read_project

    project = read_project(path)
    results = {}
    modules = load_hook_modules(project)
    for ep_name, obj in modules.items():
        results[ep_name] = check_plugin(obj, ep_name)
    for ep_name, heavy in heavy_imports(project).items():
        if heavy:
            results.setdefault(ep_name, []).append(
                f"hook module imports {', '.join(heavy)} at import time: import {'them' if len(heavy) > 1 else 'it'} "
                "inside the functions that need it (llmos --help loads every hook module)")
    if run_file and not any(results.values()):
        results[f"run {run_file}"] = check_outputs(modules, run_file)
    if as_json:
        echo_json({"project": project.name, "ok": not any(results.values()), "problems": results})
    else:
        for ep_name, problems in results.items():
            if problems:
                click.echo(f"{ep_name}: {len(problems)} problem(s)")
                for p in problems:
                    click.echo(f"  {p}")
            else:
                click.echo(f"{ep_name}: OK — the plugin contract holds")
    if any(results.values()):
        raise SystemExit(1)


def index_info(name: str) -> dict:
    """For ``llmos plugin info``: the index entry of ``name`` and how it was installed
    (both ``None`` when unknown; an unreadable index or database is not an error here)."""
    from llmos.sdk import LlmosError

    out: dict = {"index": None, "installed_from": None}
    try:
        from llmos_community.installer import index_state

        out["index"] = index_state(_index(None), name)
    except LlmosError:
        pass
    try:
        from llmos_community.records import installed_record

        out["installed_from"] = installed_record(name)
    except Exception:  # noqa: BLE001 - the database is optional for `plugin info`
        pass
    return out


def index_notices(installed: list[tuple[str, str | None]]) -> list[str]:
    """For ``llmos plugin list``: warnings about installed plugins the index flags —
    a yanked installed version, a deprecated or archived plugin. Silent when there is
    no index (or it cannot be read)."""
    from llmos_community.index import default_index_path

    root = default_index_path()
    if not (root / "maintainers.toml").exists():
        return []
    try:
        idx = _index(str(root))
    except Exception:  # noqa: BLE001 - notices are best effort, never break `plugin list`
        return []
    out = []
    for dist, version in installed:
        entry = idx.plugins.get(dist.lower().replace("_", "-").replace(".", "-"))
        if entry is None or entry.manifest is None:
            continue
        m = entry.manifest
        doc = entry.versions.get(version or "")
        if doc is not None and doc.model is not None and doc.model.yanked:
            out.append(f"{m.name} {version} is yanked ({doc.model.yanked_reason}): llmos plugin upgrade {m.name}")
        if m.status == "deprecated":
            why = m.deprecation.reason if m.deprecation else ""
            succ = f"; use {m.deprecation.successor} instead" if m.deprecation and m.deprecation.successor else ""
            out.append(f"{m.name} is deprecated: {why}{succ}")
        elif m.status == "archived":
            out.append(f"{m.name} is archived: it gets no more releases or fixes")
    return out
