"""mcp_servers (design section 4-2)

Revision ID: 006
Revises: 005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

from jedisos_db.runtime.db.revision_columns import TZ, jsonb, stamp, text_default, uuid_pk
from jedisos_db.runtime.owners import SCHEMA

revision = "006"
down_revision = "005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mcp_servers",
        uuid_pk(),
        sa.Column("tool_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("server_name", sa.String(255), nullable=False),
        sa.Column("docker_image", sa.String(512), nullable=False),
        sa.Column("container_name", sa.String(255)),
        sa.Column("port", sa.Integer()),
        sa.Column("oauth_provider", sa.String(100)),
        jsonb("oauth_scopes", "[]"),
        sa.Column("auth_proxy_url", sa.String(512)),
        sa.Column("status", sa.String(50), nullable=False, server_default=text_default("stopped")),
        sa.Column("last_health_check", TZ),
        sa.Column("error_message", sa.Text()),
        sa.Column("env_encrypted", pg.BYTEA()),
        stamp("created_at"),
        stamp("updated_at"),
        sa.PrimaryKeyConstraint("id", name="mcp_servers_pkey"),
        sa.UniqueConstraint("server_name", name="mcp_servers_server_name_key"),
        sa.ForeignKeyConstraint(
            ["tool_id"],
            [f"{SCHEMA}.installed_tools.id"],
            name="mcp_servers_tool_id_fkey",
            ondelete="CASCADE",
        ),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("mcp_servers", schema=SCHEMA)
