"""schedules (design section 4-6)

Revision ID: 004
Revises: 003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from jedisos_db.runtime.db.revision_columns import TZ, jsonb, stamp, uuid_pk
from jedisos_db.runtime.owners import SCHEMA

revision = "004"
down_revision = "003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "schedules",
        uuid_pk(),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("cron_expr", sa.String(100), nullable=False),
        sa.Column("action_type", sa.String(50), nullable=False),
        jsonb("action_payload", None, nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False, server_default=sa.text("true")),
        sa.Column("last_run", TZ),
        sa.Column("next_run", TZ),
        sa.Column("last_result", sa.String(50)),
        sa.Column("last_error", sa.Text()),
        stamp("created_at"),
        stamp("updated_at"),
        sa.PrimaryKeyConstraint("id", name="schedules_pkey"),
        schema=SCHEMA,
    )
    op.create_index(
        "idx_schedules_next_run",
        "schedules",
        ["next_run"],
        schema=SCHEMA,
        postgresql_where=sa.text("enabled = TRUE"),
    )
    op.create_index("idx_schedules_user", "schedules", ["user_id"], schema=SCHEMA)


def downgrade() -> None:
    op.drop_table("schedules", schema=SCHEMA)
