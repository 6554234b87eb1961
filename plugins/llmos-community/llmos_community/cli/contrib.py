"""``llmos contrib ...``: publish a plugin to the index and review submissions."""

from __future__ import annotations

import click

from llmos.sdk import echo_json, echo_table, json_option

index_option = click.option(
    "--index", "index_path", type=click.Path(file_okay=False),
    help="The index directory (default: $LLMOS_INDEX, ./registry, or the llmos checkout's registry/).")
handle_option = click.option("--handle", envvar="LLMOS_HANDLE", required=True,
                             help="Your index handle (or $LLMOS_HANDLE); your key is $LLMOS_HOME/keys/<handle>.key.")


def _root(index_path: str | None):  # -> Path
    from pathlib import Path

    from llmos_community.index import default_index_path

    return Path(index_path) if index_path else default_index_path()


@click.group()
def contrib() -> None:
    """Publish plugins to the community index and review them (signed with ed25519).

    \b
    The whole flow (see CONTRIBUTING.md):
      llmos contrib keygen --handle alice              once: your signing key
      llmos contrib submit ./my-plugin --handle alice  writes registry/plugins/<name>/
      llmos contrib approve my-plugin --handle bob     two index maintainers approve
      llmos index check                                what CI runs on the pull request
      llmos contrib status my-plugin
      llmos contrib yank my-plugin 0.2.0 --reason "..."   withdraw a broken release
    """


@contrib.command("keygen")
@handle_option
@click.option("--force", is_flag=True, help="Replace an existing key (the index still lists the old public key).")
def keygen(handle: str, force: bool) -> None:
    """Create your ed25519 signing key in $LLMOS_HOME/keys (mode 0600) and print the public key.

    \b
    Example:
      llmos contrib keygen --handle alice
    Put the printed public key in your maintainer entry (submit does it for you).
    """
    from llmos_community import signing

    pub = signing.generate_key(handle, force=force)
    click.echo(f"private key: {signing.key_path(handle)} (keep it secret; never commit it)", err=True)
    click.echo(pub)


@contrib.command("submit")
@click.argument("target", type=click.Path(exists=True, file_okay=False))
@handle_option
@index_option
@click.option("--wheel", type=click.Path(exists=True, dir_okay=False), help="A wheel you built (default: build it).")
@click.option("--wheelhouse", type=click.Path(file_okay=False), help="Where to build/copy the wheel (default TARGET/dist).")
@click.option("--artifact-url", help="Where the wheel will be downloadable (https://...); default: its file name, "
              "found in a wheelhouse at install time.")
@click.option("--summary", help="One line (default: the project's description).")
@click.option("--security-contact", help="Where to report vulnerabilities (default: the first author's email).")
@click.option("--source-url", help="Source repository (default: [project.urls] Source, or the git remote).")
@click.option("--source-commit", help="Commit the wheel was built from (default: HEAD of TARGET's git checkout).")
@click.option("--notes", default="", help="Release notes of this version.")
@json_option
def submit(target: str, handle: str, index_path: str | None, wheel: str | None, wheelhouse: str | None,
           artifact_url: str | None, summary: str | None, security_contact: str | None, source_url: str | None,
           source_commit: str | None, notes: str, as_json: bool) -> None:
    """Add a plugin project (its current version) to the index, signed by you.

    Builds the wheel reproducibly (SOURCE_DATE_EPOCH), records its sha256 and size,
    writes plugin.toml (new plugin) and versions/<version>.toml, and signs your
    consent (new plugin) or your maintainer approval (new version).

    \b
    Example:
      llmos contrib submit ./llmos-my-corpus --handle alice --index registry
    """
    from pathlib import Path

    from llmos_community.contrib import submit as do_submit

    res = do_submit(Path(target), handle, _root(index_path), wheel=Path(wheel) if wheel else None,
                    artifact_url=artifact_url, wheelhouse=Path(wheelhouse) if wheelhouse else None, summary=summary,
                    security_contact=security_contact, source_url=source_url, notes=notes,
                    source_commit=source_commit)
    if as_json:
        echo_json(res.__dict__)
        return
    click.echo(f"Submitted {res.name} {res.version} ({res.kind}), digest {res.digest}")
    for p in res.written:
        click.echo(f"  wrote {p}")
    if res.lookalikes:
        click.echo(f"  flagged: the name looks like {', '.join(res.lookalikes)} — it needs one extra approval")
    if res.kind == "new-plugin":
        click.echo("Next: open a pull request; two index maintainers who are not its authors approve it "
                   f"(llmos contrib approve {res.name}).")


def _review(name: str, handle: str, decision: str, index_path: str | None, version: str | None, reason: str,
            as_json: bool) -> None:
    from llmos_community.contrib import review as do_review

    res = do_review(name, handle, decision, _root(index_path), version=version, reason=reason)
    if as_json:
        echo_json(res)
        return
    click.echo(f"{decision} of {res['plugin']} ({res['subject']}) by {handle}, digest {res['digest']}")
    click.echo(f"  wrote {res['path']}")
    click.echo(f"status: {res['status']}")
    for p in res["remaining"]:
        click.echo(f"  still: {p}")


_version_option = click.option("--version", "version", help="Review one release instead of the plugin entry.")


@contrib.command("review")
@click.argument("name")
@handle_option
@index_option
@click.option("--decision", type=click.Choice(["approve", "consent", "request-changes", "block"]), required=True)
@click.option("--reason", default="", help="Required for request-changes and block.")
@_version_option
@json_option
def review(name: str, handle: str, index_path: str | None, decision: str, reason: str, version: str | None,
           as_json: bool) -> None:
    """Sign a review of a plugin entry as it is now (any later edit makes it stale).

    \b
    Examples:
      llmos contrib review my-plugin --handle bob --decision block --reason "bundles a crypto miner"
      llmos contrib review my-plugin --handle carol --decision consent   (a co-maintainer agrees to be listed)
    """
    _review(name, handle, decision, index_path, version, reason, as_json)


@contrib.command("approve")
@click.argument("name")
@handle_option
@index_option
@_version_option
@json_option
def approve(name: str, handle: str, index_path: str | None, version: str | None, as_json: bool) -> None:
    """Approve a plugin entry (index maintainers) or a release (its maintainers).

    \b
    Example:
      llmos contrib approve llmos-my-corpus --handle bob
    """
    _review(name, handle, "approve", index_path, version, "", as_json)


@contrib.command("request-changes")
@click.argument("name")
@handle_option
@index_option
@click.option("--reason", required=True, help="What must change.")
@_version_option
@json_option
def request_changes(name: str, handle: str, index_path: str | None, reason: str, version: str | None,
                    as_json: bool) -> None:
    """Ask for changes before approving (blocks until the entry is edited or you approve).

    \b
    Example:
      llmos contrib request-changes llmos-my-corpus --handle bob --reason "add a security contact"
    """
    _review(name, handle, "request-changes", index_path, version, reason, as_json)


@contrib.command("approve-maintainers")
@handle_option
@index_option
@json_option
def approve_maintainers(handle: str, index_path: str | None, as_json: bool) -> None:
    """Approve maintainers.toml as it is now (core maintainers; signed with your key).

    A change to maintainers.toml (a maintainer added or removed, a role, a key) needs
    approvals by a simple majority of the core maintainers as of the base revision
    (2/3 to remove); approvals by maintainers added in the same change do not count.

    \b
    Example:
      llmos contrib approve-maintainers --handle carol --index registry
    """
    from llmos_community.contrib import approve_maintainers as do_approve

    res = do_approve(handle, _root(index_path))
    if as_json:
        echo_json(res)
        return
    click.echo(f"approved maintainers.toml ({res['digest']}) as {handle}: wrote {res['path']}")


@contrib.command("rotate-key")
@handle_option
@index_option
@click.option("--lost", is_flag=True, help="Your old private key is lost: the other core maintainers approve.")
@click.option("--revoke", is_flag=True, help="The old key is compromised: what it signed stops verifying.")
@click.option("--reason", default="", help="Why (required with --revoke).")
@json_option
def rotate_key(handle: str, index_path: str | None, lost: bool, revoke: bool, reason: str, as_json: bool) -> None:
    """Replace your key in maintainers.toml with a new one (see GOVERNANCE.md, Keys).

    The old public key moves to previous_keys: reviews merged while it was current keep
    verifying (unless --revoke); new reviews must use the new key. With the old private
    key at hand it signs your approval of the change; the other core maintainers add theirs
    (llmos contrib approve-maintainers) and the change is merged like any pull request.

    \b
    Examples:
      llmos contrib rotate-key --handle bob --index registry
      llmos contrib rotate-key --handle bob --lost --index registry
      llmos contrib rotate-key --handle bob --revoke --reason "laptop stolen" --index registry
    """
    from llmos_community.contrib import rotate_key as do_rotate

    res = do_rotate(handle, _root(index_path), lost=lost, revoke=revoke, reason=reason)
    if as_json:
        echo_json(res)
        return
    click.echo(f"new key for {handle}: {res['public_key']} (private key in $LLMOS_HOME/keys/{handle}.key)")
    click.echo(f"  wrote {res['path']}")
    if res["approved"]:
        click.echo(f"  approved the change with your old key: wrote {res['approved']}")
    click.echo("Next: the other core maintainers run `llmos contrib approve-maintainers`; open a pull request.")


@contrib.command("yank")
@click.argument("name")
@click.argument("version")
@index_option
@click.option("--reason", default="", help="Why (broken release, broken compatibility, security hole). Required.")
@click.option("--undo", is_flag=True, help="Un-yank the release.")
def yank(name: str, version: str, index_path: str | None, reason: str, undo: bool) -> None:
    """Yank a release (PEP 592): installers skip it unless it is pinned with ==.

    \b
    Example:
      llmos contrib yank llmos-my-corpus 0.2.0 --reason "crashes on empty files" --index registry
    """
    from llmos_community.contrib import yank as do_yank

    path = do_yank(name, version, _root(index_path), reason=reason, undo=undo)
    click.echo(f"{'Un-yanked' if undo else 'Yanked'} {name} {version}: wrote {path}")


@contrib.command("status")
@click.argument("name", required=False)
@index_option
@json_option
def status(name: str | None, index_path: str | None, as_json: bool) -> None:
    """Submissions, reviews and decisions recorded in the registry, and what the index check says.

    \b
    Example:
      llmos contrib status llmos-my-corpus --json
    """
    from llmos_community.contrib import status as do_status

    data = do_status(_root(index_path), name)
    if as_json:
        echo_json(data)
        return
    rows = [(s["id"], s["plugin"], s["version"] or "-", s["kind"], s["author"], s["status"],
             ", ".join(f"{r['reviewer']}:{r['decision']}" for r in s["reviews"]) or "-") for s in data["submissions"]]
    if rows:
        echo_table(rows, ["id", "plugin", "version", "kind", "author", "status", "reviews"])
    else:
        click.echo("No submissions recorded in this registry.")
    errors = [p for p in data.get("problems", []) if p["level"] == "error"]
    if "problems" in data:
        click.echo(f"index check: {'OK' if not errors else f'{len(errors)} error(s)'}")
        for p in data["problems"]:
            click.echo(f"  {p['path']}: {p['field']}: {p['rule']}: {p['message']}")
