"""langgraph_threads: jedisos' own registry of LangGraph thread ids and their last activity

Revision ID: 008
Revises: 007

Design §7 deletes LangGraph threads idle for 30 days "through the LangGraph API", but that API
cannot list threads by age (DESIGN.md, verified facts) and §10 forbids reading the ``langgraph``
schema directly (claims ``S7-langgraph-retention-api`` and ``S10-no-direct-sql`` in
docs/design-claims.md). The application therefore records each thread id it uses here; retention
reads idle ids from this table and deletes them with ``AsyncPostgresSaver.adelete_thread``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from jedisos_db.runtime.db.revision_columns import stamp
from jedisos_db.runtime.owners import SCHEMA

revision = "008"
down_revision = "007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "langgraph_threads",
        sa.Column("thread_id", sa.String(255), nullable=False),
        sa.Column("user_id", sa.String(255)),
        stamp("created_at"),
        stamp("last_active_at"),
        sa.PrimaryKeyConstraint("thread_id", name="langgraph_threads_pkey"),
        schema=SCHEMA,
    )
    op.create_index("idx_langgraph_threads_last_active", "langgraph_threads", ["last_active_at"], schema=SCHEMA)


def downgrade() -> None:
    op.drop_table("langgraph_threads", schema=SCHEMA)
