"""indexes for registry search: metrics by (name, value), tags by key, aliases by name,
versions by creation time

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_version_metrics_name_value", "version_metrics", ["name", "value"])
    op.create_index("ix_tags_key", "tags", ["key"])
    op.create_index("ix_aliases_name", "aliases", ["name"])
    op.create_index("ix_model_versions_created_at", "model_versions", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_model_versions_created_at", table_name="model_versions")
    op.drop_index("ix_aliases_name", table_name="aliases")
    op.drop_index("ix_tags_key", table_name="tags")
    op.drop_index("ix_version_metrics_name_value", table_name="version_metrics")
