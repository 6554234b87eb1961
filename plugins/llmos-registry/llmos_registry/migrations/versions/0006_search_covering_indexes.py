"""covering indexes for registry search: tags by (key, value, version_id) and metrics by
(name, value, version_id), so a tags.<key> = 'v' or metrics.<name> < x filter reads only
the index; tag values are capped (refs.MAX_TAG_VALUE) so every value fits a B-tree entry
(PostgreSQL refuses index rows over ~2.7 kB)

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

#: the same cap as llmos_registry.refs.MAX_TAG_VALUE (a migration keeps its own copy)
MAX_TAG_VALUE = 500


def upgrade() -> None:
    conn = op.get_bind()
    long = conn.execute(sa.text(
        "SELECT m.name, v.number, t.key, length(t.value) FROM tags t JOIN model_versions v ON v.id = t.version_id "
        "JOIN models m ON m.id = v.model_id WHERE length(t.value) > :cap ORDER BY m.name, v.number LIMIT 5"
    ), {"cap": MAX_TAG_VALUE}).all()
    if long:
        listed = ", ".join(f"{n}:{num} tag {k!r} ({length} characters)" for n, num, k, length in long)
        from llmos.sdk import LlmosError

        raise LlmosError(
            f"cannot index tag values: some are longer than {MAX_TAG_VALUE} characters ({listed}); "
            f"shorten them (with the llmos that wrote them: 'llmos model tag REF KEY=VALUE'), then open the registry again"
        )
    op.drop_index("ix_tags_key", table_name="tags")
    op.create_index("ix_tags_key_value", "tags", ["key", "value", "version_id"])
    op.drop_index("ix_version_metrics_name_value", table_name="version_metrics")
    op.create_index("ix_version_metrics_name_value", "version_metrics", ["name", "value", "version_id"])


def downgrade() -> None:
    op.drop_index("ix_version_metrics_name_value", table_name="version_metrics")
    op.create_index("ix_version_metrics_name_value", "version_metrics", ["name", "value"])
    op.drop_index("ix_tags_key_value", table_name="tags")
    op.create_index("ix_tags_key", "tags", ["key"])
