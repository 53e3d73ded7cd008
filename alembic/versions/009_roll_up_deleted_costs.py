"""cost_tracking rows are rolled up into daily_cost_rollup by the database, whoever deletes them

Revision ID: 009
Revises: 008

Revision 007 made ``daily_cost_summary`` answer from ``daily_cost_rollup`` ∪ live rows, but only our
retention command rolled rows up: design §7's own ``DELETE FROM jedisos.cost_tracking WHERE timestamp
< NOW() - INTERVAL '365 days'``, run by hand or by any other tool, still erased the history. This
revision makes the database keep it: a statement-level ``AFTER DELETE`` trigger with a transition table
(``REFERENCING OLD TABLE``) adds the deleted rows to their UTC day in the rollup, in the deleting
statement's own transaction, so a row is counted exactly once (live or rolled up) at every instant.
Retention now only deletes. ``TRUNCATE`` fires no DELETE trigger: it stays a deliberate wipe.

The function runs with the deleting role's rights (no SECURITY DEFINER): a role that may delete cost
rows but not write the rollup gets an error, never a silent loss. Its search_path is pinned so the
caller's cannot redirect a name. NULL token or cost sums count as 0 (the rollup's columns are NOT NULL).

Safe on a filled table: it creates a function and a trigger, nothing is rewritten or scanned, so it
takes the same time at any size. CREATE TRIGGER holds a SHARE ROW EXCLUSIVE lock on cost_tracking
until the migration commits: reads go on, writes wait for that instant. ``lock_timeout`` keeps it from
queueing behind a long transaction (and every writer behind it): it fails instead, and is rerun.
"""

from __future__ import annotations

from alembic import op

from jedisos_db.runtime.db.revision_columns import bounded_lock_wait
from jedisos_db.runtime.owners import SCHEMA

revision = "009"
down_revision = "008"
branch_labels = None
depends_on = None

FUNCTION = f"{SCHEMA}.roll_up_deleted_costs"
TRIGGER = "cost_tracking_roll_up_deleted"
LOCK_TIMEOUT = "5s"

CREATE_FUNCTION = f"""
CREATE FUNCTION {FUNCTION}() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- Ordered by the conflict key so concurrent deletes lock rollup rows in one order (no deadlock).
    INSERT INTO {SCHEMA}.daily_cost_rollup AS r
        (date, user_id, source, model, call_count, total_input_tokens, total_output_tokens,
         total_cost_usd, latency_sum_ms, latency_count)
    SELECT ("timestamp" AT TIME ZONE 'UTC')::date, user_id, source, model, count(*),
           coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0), coalesce(sum(cost_usd), 0),
           coalesce(sum(latency_ms), 0), count(latency_ms)
    FROM gone
    GROUP BY 1, user_id, source, model
    ORDER BY 1, user_id, source, model
    ON CONFLICT (date, user_id, source, model) DO UPDATE SET
        call_count = r.call_count + EXCLUDED.call_count,
        total_input_tokens = r.total_input_tokens + EXCLUDED.total_input_tokens,
        total_output_tokens = r.total_output_tokens + EXCLUDED.total_output_tokens,
        total_cost_usd = r.total_cost_usd + EXCLUDED.total_cost_usd,
        latency_sum_ms = r.latency_sum_ms + EXCLUDED.latency_sum_ms,
        latency_count = r.latency_count + EXCLUDED.latency_count,
        rolled_up_at = now();
    RETURN NULL;
END
$$
"""

CREATE_TRIGGER = f"""
CREATE TRIGGER {TRIGGER}
AFTER DELETE ON {SCHEMA}.cost_tracking
REFERENCING OLD TABLE AS gone
FOR EACH STATEMENT EXECUTE FUNCTION {FUNCTION}()
"""


def upgrade() -> None:
    with bounded_lock_wait(LOCK_TIMEOUT):
        op.execute(CREATE_FUNCTION)
        op.execute(CREATE_TRIGGER)


def downgrade() -> None:
    with bounded_lock_wait(LOCK_TIMEOUT):
        op.execute(f"DROP TRIGGER {TRIGGER} ON {SCHEMA}.cost_tracking")
        op.execute(f"DROP FUNCTION {FUNCTION}()")
