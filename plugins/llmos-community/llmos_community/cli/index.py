"""``llmos index ...``: check the community plugin index and export its schema."""

from __future__ import annotations

import click

from llmos.sdk import echo_json, json_option


@click.group()
def index() -> None:
    """The community plugin index (registry/ in the llmos repository).

    \b
    llmos index check                      check registry/ against GOVERNANCE.md
    llmos index check --base origin/main   ...and against what was already merged
    llmos index schema                     the manifests' JSON Schema
    """


@index.command("check")
@click.argument("path", required=False, type=click.Path(file_okay=False))
@click.option("--base", "base_ref", metavar="REF",
              help="Git ref of what was already merged: released versions must not change and new ones must be higher.")
@click.option("--strict", is_flag=True, help="Fail on warnings (flagged look-alike names, wide changes) too.")
@click.option("--rebuild", is_flag=True,
              help="Rebuild every in-tree (standard) release from its git tree and compare the wheel "
                   "(default: only releases new against --base).")
@click.option("--wheelhouse", type=click.Path(file_okay=False), envvar="LLMOS_WHEELHOUSE",
              help="Directory of release wheels: those found there are opened and checked (hash, metadata, "
                   "start-up hooks such as .pth files).")
@json_option
def check(path: str | None, base_ref: str | None, strict: bool, rebuild: bool, wheelhouse: str | None,
          as_json: bool) -> None:
    """Check an index: every rule of GOVERNANCE.md that code can check.

    Each problem is printed as `file: field: rule: message`; the exit status is 1
    when there is an error (warnings only flag, unless --strict).

    \b
    Example (what CI runs):
      llmos index check registry --base origin/main
      llmos index check registry --rebuild      rebuild every standard plugin's wheel
    """
    from pathlib import Path

    from llmos_community.check import check_index
    from llmos_community.index import DirSource, default_index_path, git_source_for, load_index

    root = Path(path) if path else default_index_path()
    if not root.is_dir():
        raise click.ClickException(f"no index directory at {root}: pass the path of registry/")
    idx = load_index(DirSource(root))
    base = load_index(git_source_for(root, base_ref)) if base_ref else None
    problems = check_index(idx, base, rebuild=rebuild, wheelhouse=wheelhouse)
    errors = [p for p in problems if p.level == "error"]
    warnings = [p for p in problems if p.level != "error"]
    if as_json:
        echo_json({"ok": not errors and not (strict and warnings), "plugins": len(idx.plugins),
                   "versions": sum(len(e.versions) for e in idx.plugins.values()),
                   "problems": [p.to_dict() for p in problems]})
    else:
        for p in problems:
            click.echo(str(p), err=p.level == "error")
        n_versions = sum(len(e.versions) for e in idx.plugins.values())
        summary = (f"{len(idx.plugins)} plugins, {n_versions} versions: "
                   f"{len(errors)} error(s), {len(warnings)} warning(s)")
        click.echo(("OK: " if not errors else "FAILED: ") + summary + (f" (base {base_ref})" if base_ref else ""))
    if errors or (strict and warnings):
        raise SystemExit(1)


@index.command("release-standard")
@click.argument("dists", nargs=-1, required=True)
@click.option("--index", "index_path", type=click.Path(file_okay=False), help="The index (default: registry/).")
@click.option("--commit", default="HEAD", show_default=True, help="Commit whose plugins/<dist> is released.")
@click.option("--wheelhouse", type=click.Path(file_okay=False),
              help="Where the built wheels go (default: dist/wheelhouse of the repository).")
@json_option
def release_standard(dists: tuple[str, ...], index_path: str | None, commit: str, wheelhouse: str | None,
                     as_json: bool) -> None:
    """Add or release a standard plugin (plugins/<dist> of this repository): no key needed.

    Writes the in-tree entry registry/plugins/<dist>/ for the version in the plugin's
    pyproject.toml at COMMIT: the git tree of plugins/<dist> and the SHA-256 of the wheel
    built from exactly that tree (SOURCE_DATE_EPOCH = the tree's last commit time). The
    pull request is reviewed like any core change; `llmos index check --base` rebuilds
    the wheel from the tree and compares. Commit the plugin's code first.

    \b
    Example (release a new version of llmos-data):
      (bump version in plugins/llmos-data/pyproject.toml; git commit)
      llmos index release-standard llmos-data
      git add registry/plugins/llmos-data && git commit -m "llmos-data 0.2.0"
    """
    from pathlib import Path

    from llmos_community.contrib import release_in_tree
    from llmos_community.index import default_index_path

    root = Path(index_path) if index_path else default_index_path()
    results = [release_in_tree(d, root, commit=commit, wheelhouse=Path(wheelhouse) if wheelhouse else None)
               for d in dists]
    if as_json:
        echo_json([r.__dict__ for r in results])
        return
    for r in results:
        click.echo(f"{r.name} {r.version}: {r.kind}")
        for p in r.written:
            click.echo(f"  wrote {p}")


@index.command("schema")
@click.option("--out", type=click.Path(file_okay=False), help="Write one <kind>.schema.json per file kind here.")
@click.argument("kind", required=False, type=click.Choice(["plugin", "version", "review", "maintainers", "removed"]))
def schema(out: str | None, kind: str | None) -> None:
    """Print (or write) the JSON Schema of the index's files.

    \b
    Example:
      llmos index schema version          the schema of versions/<v>.toml
      llmos index schema --out registry/schema
    """
    import json
    from pathlib import Path

    from llmos_community.schema import json_schemas

    schemas = json_schemas()
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        for k, s in schemas.items():
            if kind is None or k == kind:
                (Path(out) / f"{k}.schema.json").write_text(json.dumps(s, indent=2, sort_keys=True) + "\n")
                click.echo(f"wrote {Path(out) / f'{k}.schema.json'}")
        return
    echo_json(schemas[kind] if kind else schemas)
