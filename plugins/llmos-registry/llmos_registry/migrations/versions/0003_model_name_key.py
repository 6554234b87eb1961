"""model names unique case-insensitively: models.name_key = lower(name), unique

Existing rows that would clash (``Quickstart`` beside ``quickstart``), and names the
stricter rules refuse (a trailing newline or another control character), are renamed:
the oldest model keeps its name, each later one becomes ``<name>-<id>`` (characters
outside ``[A-Za-z0-9_.-]`` dropped), and a ``model.renamed`` event records old and new.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import datetime as dt
import re

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")


def upgrade() -> None:
    with op.batch_alter_table("models") as batch:
        batch.add_column(sa.Column("name_key", sa.String(length=128), nullable=True))
    bind = op.get_bind()
    models = sa.table("models", sa.column("id", sa.Integer), sa.column("name", sa.String),
                      sa.column("name_key", sa.String))
    events = sa.table("events", sa.column("ts", sa.DateTime(timezone=True)), sa.column("kind", sa.String),
                      sa.column("subject", sa.String), sa.column("data", sa.JSON))
    rows = bind.execute(sa.select(models.c.id, models.c.name).order_by(models.c.id)).all()
    names = {name for _, name in rows}
    taken: set[str] = set()
    now = dt.datetime.now(dt.timezone.utc)
    if bind.dialect.name == "sqlite":
        now = now.replace(tzinfo=None)
    for mid, name in rows:
        new = name
        if not _NAME.fullmatch(name) or name.lower() in taken:
            base = re.sub(r"[^A-Za-z0-9_.\-]", "", name).lstrip("_.-")[:100] or "model"
            new, n = f"{base}-{mid}", 1
            while new.lower() in taken or (new in names and new != name):
                new, n = f"{base}-{mid}-{n}", n + 1
            bind.execute(events.insert().values(ts=now, kind="model.renamed", subject=new,
                                                data={"old": name, "new": new,
                                                      "why": "names are unique case-insensitively and never "
                                                             "contain control characters (migration 0003)"}))
        taken.add(new.lower())
        bind.execute(models.update().where(models.c.id == mid).values(name=new, name_key=new.lower()))
    with op.batch_alter_table("models") as batch:
        batch.alter_column("name_key", existing_type=sa.String(length=128), nullable=False)
        batch.create_unique_constraint(op.f("uq_models_name_key"), ["name_key"])


def downgrade() -> None:
    with op.batch_alter_table("models") as batch:
        batch.drop_constraint(op.f("uq_models_name_key"), type_="unique")
        batch.drop_column("name_key")
