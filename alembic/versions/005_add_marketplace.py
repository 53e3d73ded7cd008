"""marketplace_packages (design section 4-7)

Revision ID: 005
Revises: 004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

from jedisos_db.runtime.db.revision_columns import jsonb, stamp, uuid_pk
from jedisos_db.runtime.owners import SCHEMA

revision = "005"
down_revision = "004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "marketplace_packages",
        uuid_pk(),
        sa.Column("package_name", sa.String(255), nullable=False),
        sa.Column("package_type", sa.String(50), nullable=False),
        sa.Column("latest_version", sa.String(50)),
        sa.Column("description", sa.Text()),
        sa.Column("author", sa.String(255)),
        sa.Column("license", sa.String(100)),
        jsonb("tags", "[]"),
        sa.Column("download_count", sa.Integer(), server_default=sa.text("0")),
        sa.Column("rating", sa.Numeric(3, 2)),
        sa.Column("installed_version", sa.String(50)),
        # As documented: no ON DELETE. The repository unlinks before uninstalling.
        sa.Column("installed_tool_id", pg.UUID(as_uuid=True)),
        stamp("last_synced"),
        jsonb("registry_data", None),
        sa.PrimaryKeyConstraint("id", name="marketplace_packages_pkey"),
        sa.UniqueConstraint("package_name", name="marketplace_packages_package_name_key"),
        sa.ForeignKeyConstraint(
            ["installed_tool_id"],
            [f"{SCHEMA}.installed_tools.id"],
            name="marketplace_packages_installed_tool_id_fkey",
        ),
        schema=SCHEMA,
    )
    op.create_index("idx_packages_type", "marketplace_packages", ["package_type"], schema=SCHEMA)
    op.create_index(
        "idx_packages_installed",
        "marketplace_packages",
        ["installed_version"],
        schema=SCHEMA,
        postgresql_where=sa.text("installed_version IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_table("marketplace_packages", schema=SCHEMA)
