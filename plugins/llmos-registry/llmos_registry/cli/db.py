"""``llmos db ...``: the registry database's schema and contents."""

from __future__ import annotations

import click

from llmos.sdk import echo_json, json_option


@click.group()
def db() -> None:
    """The registry database ($LLMOS_DATABASE_URL, default SQLite in $LLMOS_HOME).

    \b
    Example:
      llmos db info
      LLMOS_DATABASE_URL=postgresql+psycopg://llmos@db/llmos llmos db upgrade
    """


@db.command("upgrade")
def upgrade() -> None:
    """Apply pending schema migrations (also done automatically on first use)."""
    from llmos_registry import db as registry_db
    from llmos_registry.api import Registry

    from sqlalchemy.exc import OperationalError

    from llmos.sdk import LlmosError

    reg = Registry(migrate=False)
    try:
        before, after = registry_db.upgrade(reg.engine)
    except OperationalError as exc:
        raise LlmosError(
            f"cannot open the registry database {registry_db.redact(reg.url)}: "
            f"{str(exc.orig).strip().splitlines()[0]}; check LLMOS_DATABASE_URL"
        ) from exc
    url = registry_db.redact(reg.url)
    if before == after:
        click.echo(f"{url} is up to date (revision {after})")
    else:
        click.echo(f"Upgraded {url} from {before or 'empty'} to revision {after}")


@db.command("info")
@json_option
def info(as_json: bool) -> None:
    """Show the database URL (password hidden), schema revision and row counts."""
    from llmos_registry import open_registry

    data = open_registry().info()
    if as_json:
        echo_json(data)
        return
    click.echo(f"{'url:':10} {data['url']}")
    click.echo(f"{'revision:':10} {data['revision']} (head {data['head']})")
    click.echo(f"{'home:':10} {data['home']}")
    click.echo(f"{'blobs:':10} {data['blobs']['count']} in {data['blobs']['path']} ({data['blobs']['bytes']} bytes)")
    for table, n in data["counts"].items():
        click.echo(f"{table + ':':20} {n}")
