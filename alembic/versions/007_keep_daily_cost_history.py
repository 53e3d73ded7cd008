"""daily cost rollup kept past the 365-day retention; daily_cost_summary answers from rollup and live rows

Revision ID: 007
Revises: 006

Design §4-4 defines ``daily_cost_summary`` as a plain view over ``cost_tracking``, and §7 deletes
``cost_tracking`` rows after 365 days while saying the summary is kept: the DELETE erases that
history (claim ``S7-cost-retention-keeps-summary`` in docs/design-claims.md). This revision adds
``daily_cost_rollup`` (one row per UTC day, user, source and model) and redefines the view as rollup
∪ live rows. Retention moves each old row into the rollup and deletes it in the same statement
(``jedisos_db.runtime.retention``), so a row is counted exactly once, either live or rolled up, at
every instant.

Days are UTC days (``timestamp AT TIME ZONE 'UTC'``): a rolled-up day cannot move with the
reading session's TimeZone, so the live half uses the same definition.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from jedisos_db.runtime.db.revision_columns import bigserial_pk, stamp
from jedisos_db.runtime.errors import MigrationError
from jedisos_db.runtime.owners import SCHEMA

revision = "007"
down_revision = "006"
branch_labels = None
depends_on = None

ROLLUP = "daily_cost_rollup"

VIEW_007 = f"""
CREATE VIEW {SCHEMA}.daily_cost_summary AS
SELECT
    date,
    user_id,
    source,
    model,
    SUM(call_count)::bigint AS call_count,
    SUM(total_input_tokens)::bigint AS total_input_tokens,
    SUM(total_output_tokens)::bigint AS total_output_tokens,
    SUM(total_cost_usd) AS total_cost_usd,
    SUM(latency_sum_ms)::numeric / NULLIF(SUM(latency_count), 0) AS avg_latency_ms
FROM (
    SELECT date, user_id, source, model, call_count, total_input_tokens, total_output_tokens,
           total_cost_usd, latency_sum_ms, latency_count
    FROM {SCHEMA}.{ROLLUP}
    UNION ALL
    SELECT ("timestamp" AT TIME ZONE 'UTC')::date, user_id, source, model, COUNT(*),
           SUM(input_tokens), SUM(output_tokens), SUM(cost_usd), SUM(latency_ms), COUNT(latency_ms)
    FROM {SCHEMA}.cost_tracking
    GROUP BY 1, user_id, source, model
) AS parts
GROUP BY date, user_id, source, model
"""

# Revision 002's definition, restored on downgrade (kept here verbatim: 002 must not be imported).
VIEW_002 = f"""
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
        ROLLUP,
        bigserial_pk(),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("user_id", sa.String(255)),
        sa.Column("source", sa.String(50), nullable=False),
        sa.Column("model", sa.String(255), nullable=False),
        sa.Column("call_count", sa.BigInteger(), nullable=False),
        sa.Column("total_input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("total_output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("total_cost_usd", sa.Numeric(), nullable=False),
        sa.Column("latency_sum_ms", sa.BigInteger(), nullable=False, server_default=sa.text("0")),
        sa.Column("latency_count", sa.BigInteger(), nullable=False, server_default=sa.text("0")),
        stamp("rolled_up_at"),
        sa.PrimaryKeyConstraint("id", name=f"{ROLLUP}_pkey"),
        # NULLS NOT DISTINCT: user_id is NULL for system calls, and those must merge too
        # (the retention upsert's ON CONFLICT target).
        sa.UniqueConstraint("date", "user_id", "source", "model", name=f"{ROLLUP}_date_key",
                            postgresql_nulls_not_distinct=True),
        schema=SCHEMA,
    )
    op.execute(f"DROP VIEW {SCHEMA}.daily_cost_summary")
    op.execute(VIEW_007)


def downgrade() -> None:
    # The rolled-up days have no detail rows left to rebuild them from: refuse rather than
    # silently lose the history this revision exists to keep.
    bind = op.get_bind()
    kept = bind.execute(sa.text(f"SELECT count(*) FROM {SCHEMA}.{ROLLUP}")).scalar_one()
    if kept:
        raise MigrationError(
            f"{SCHEMA}.{ROLLUP} holds {kept} rolled-up day rows that revision 006 cannot represent; "
            f"export them and TRUNCATE {SCHEMA}.{ROLLUP} before downgrading"
        )
    op.execute(f"DROP VIEW {SCHEMA}.daily_cost_summary")
    op.execute(VIEW_002)
    op.drop_table(ROLLUP, schema=SCHEMA)
