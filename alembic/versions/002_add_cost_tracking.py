"""cost_tracking and the daily_cost_summary view (design section 4-4)

Revision ID: 002
Revises: 001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from jedisos_db.runtime.db.revision_columns import bigserial_pk, stamp, text_default
from jedisos_db.runtime.owners import SCHEMA

revision = "002"
down_revision = "001"
branch_labels = None
depends_on = None

# As documented. It is a plain view over cost_tracking, so the 365-day retention DELETE of
# section 7 erases the history it claims to keep; revision 007 fixes that without changing 002.
DAILY_COST_SUMMARY = f"""
CREATE VIEW {SCHEMA}.daily_cost_summary AS
SELECT
    DATE(timestamp) AS date,
    user_id,
    source,
    model,
    COUNT(*) AS call_count,
    SUM(input_tokens) AS total_input_tokens,
    SUM(output_tokens) AS total_output_tokens,
    SUM(cost_usd) AS total_cost_usd,
    AVG(latency_ms) AS avg_latency_ms
FROM {SCHEMA}.cost_tracking
GROUP BY DATE(timestamp), user_id, source, model
"""


def upgrade() -> None:
    op.create_table(
        "cost_tracking",
        bigserial_pk(),
        stamp("timestamp"),
        sa.Column("model", sa.String(255), nullable=False),
        sa.Column("provider", sa.String(100), nullable=False),
        sa.Column("input_tokens", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("output_tokens", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("total_tokens", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("cost_usd", sa.Numeric(10, 6), nullable=False, server_default=sa.text("0")),
        sa.Column("source", sa.String(50), nullable=False),
        sa.Column("session_id", sa.String(255)),
        sa.Column("user_id", sa.String(255)),
        sa.Column("latency_ms", sa.Integer()),
        sa.Column("status", sa.String(20), nullable=False, server_default=text_default("success")),
        sa.PrimaryKeyConstraint("id", name="cost_tracking_pkey"),
        schema=SCHEMA,
    )
    op.create_index("idx_cost_timestamp", "cost_tracking", [sa.text('"timestamp" DESC')], schema=SCHEMA)
    op.create_index("idx_cost_model", "cost_tracking", ["model"], schema=SCHEMA)
    op.create_index("idx_cost_source", "cost_tracking", ["source"], schema=SCHEMA)
    op.create_index("idx_cost_user", "cost_tracking", ["user_id"], schema=SCHEMA)
    op.execute(DAILY_COST_SUMMARY)


def downgrade() -> None:
    op.execute(f"DROP VIEW {SCHEMA}.daily_cost_summary")
    op.drop_table("cost_tracking", schema=SCHEMA)
