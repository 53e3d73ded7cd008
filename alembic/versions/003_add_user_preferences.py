"""user_preferences (design section 4-5)

Revision ID: 003
Revises: 002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from jedisos_db.runtime.db.revision_columns import jsonb, stamp, text_default, uuid_pk
from jedisos_db.runtime.owners import SCHEMA

revision = "003"
down_revision = "002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "user_preferences",
        uuid_pk(),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("primary_model", sa.String(255), server_default=text_default("claude-sonnet-5-20260203")),
        jsonb("fallback_models", "[]"),
        sa.Column("temperature", sa.Numeric(3, 2), server_default=sa.text("0.7")),
        sa.Column("max_tokens", sa.Integer(), server_default=sa.text("8192")),
        sa.Column("daily_budget_usd", sa.Numeric(10, 2)),
        sa.Column("monthly_budget_usd", sa.Numeric(10, 2)),
        sa.Column("auto_approve_skills", sa.Boolean(), server_default=sa.text("false")),
        jsonb("allowed_tools", "[]"),
        jsonb("blocked_tools", '["shell_exec", "file_delete"]'),
        jsonb("notification_channels", "{}"),
        sa.Column("identity_file", sa.String(512)),
        sa.Column("bank_id", sa.String(255)),
        stamp("created_at"),
        stamp("updated_at"),
        sa.PrimaryKeyConstraint("id", name="user_preferences_pkey"),
        sa.UniqueConstraint("user_id", name="user_preferences_user_id_key"),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("user_preferences", schema=SCHEMA)
