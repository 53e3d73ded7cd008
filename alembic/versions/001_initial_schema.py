"""initial schema: installed_tools, audit_logs (design sections 4-1, 4-3)

Revision ID: 001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

from jedisos_db.runtime.db.revision_columns import bigserial_pk, jsonb, stamp, text_default, uuid_pk
from jedisos_db.runtime.owners import SCHEMA

revision = "001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "installed_tools",
        uuid_pk(),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("tier", sa.SmallInteger(), nullable=False, server_default=sa.text("1")),
        sa.Column("version", sa.String(50), nullable=False),
        sa.Column("description", sa.Text()),
        sa.Column("author", sa.String(255)),
        sa.Column("tool_path", sa.String(512)),
        sa.Column("tool_yaml_path", sa.String(512)),
        sa.Column("docker_image", sa.String(512)),
        sa.Column("mcp_endpoint", sa.String(512)),
        sa.Column("source", sa.String(50), nullable=False, server_default=text_default("manual")),
        sa.Column("enabled", sa.Boolean(), nullable=False, server_default=sa.text("true")),
        jsonb("tags", "[]"),
        jsonb("env_required", "[]"),
        stamp("installed_at"),
        stamp("updated_at"),
        sa.PrimaryKeyConstraint("id", name="installed_tools_pkey"),
        sa.UniqueConstraint("name", name="installed_tools_name_key"),
        schema=SCHEMA,
    )
    op.create_index("idx_tools_tier", "installed_tools", ["tier"], schema=SCHEMA)
    op.create_index("idx_tools_source", "installed_tools", ["source"], schema=SCHEMA)
    op.create_index("idx_tools_enabled", "installed_tools", ["enabled"], schema=SCHEMA)

    op.create_table(
        "audit_logs",
        bigserial_pk(),
        stamp("timestamp"),
        sa.Column("event_type", sa.String(100), nullable=False),
        sa.Column("severity", sa.String(20), nullable=False, server_default=text_default("info")),
        sa.Column("user_id", sa.String(255)),
        sa.Column("channel", sa.String(50)),
        sa.Column("session_id", sa.String(255)),
        sa.Column("tool_name", sa.String(255)),
        sa.Column("action", sa.String(255)),
        sa.Column("result", sa.String(50)),
        jsonb("details", "{}"),
        sa.Column("ip_address", pg.INET()),
        sa.Column("envelope_id", pg.UUID(as_uuid=True)),
        sa.PrimaryKeyConstraint("id", name="audit_logs_pkey"),
        schema=SCHEMA,
    )
    op.create_index("idx_audit_timestamp", "audit_logs", [sa.text('"timestamp" DESC')], schema=SCHEMA)
    op.create_index("idx_audit_event_type", "audit_logs", ["event_type"], schema=SCHEMA)
    op.create_index("idx_audit_user", "audit_logs", ["user_id"], schema=SCHEMA)
    op.create_index(
        "idx_audit_severity",
        "audit_logs",
        ["severity"],
        schema=SCHEMA,
        postgresql_where=sa.text("severity IN ('warning', 'error', 'critical')"),
    )


def downgrade() -> None:
    op.drop_table("audit_logs", schema=SCHEMA)
    op.drop_table("installed_tools", schema=SCHEMA)
