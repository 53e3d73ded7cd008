"""audit_logs and cost_tracking: a nullable idempotency_key with a unique index, so a retried batch writes
each event once

Revision ID: 010
Revises: 009

A batch whose commit was lost in flight (connection dropped after COPY was sent) cannot be retried safely
without a key: the retry would write its events twice. With ``idempotency_key`` set, the writers insert a
keyed batch with ``ON CONFLICT DO NOTHING`` against this index (issue 11 point 3); unkeyed rows keep the
plain ``COPY`` path.

Safe on a filled table:
- ``ADD COLUMN`` of a nullable column without a default only changes the catalog (no rewrite, no scan);
  it holds ACCESS EXCLUSIVE for that instant, with ``lock_timeout`` so it fails rather than queue every
  writer behind a long transaction.
- The unique indexes are built ``CONCURRENTLY`` in an autocommit block (SHARE UPDATE EXCLUSIVE: reads and
  writes go on during the build). They are partial (``WHERE idempotency_key IS NOT NULL``): rows without a
  key, every row that exists before this revision, cost nothing in them, and an unkeyed COPY maintains no
  extra index entry. A build that failed half-way leaves an INVALID index; the rerun drops and rebuilds it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

from jedisos_db.runtime.db.revision_columns import AUTOCOMMIT_BLOCKS, bounded_lock_wait
from jedisos_db.runtime.owners import SCHEMA

revision = "010"
down_revision = "009"
branch_labels = None
depends_on = None
upgrade_commits_part_way = True  # revision_columns.COMMITS_PART_WAY: the autocommit block of upgrade()

COLUMN = "idempotency_key"
LENGTH = 255
INDEXES = {"audit_logs": "idx_audit_idempotency_key", "cost_tracking": "idx_cost_idempotency_key"}
LOCK_TIMEOUT = "5s"


def create_index_sql(table: str, *, concurrently: bool = True) -> str:
    how = "CONCURRENTLY " if concurrently else ""
    return (f"CREATE UNIQUE INDEX {how}IF NOT EXISTS {INDEXES[table]} ON {SCHEMA}.{table} ({COLUMN}) "
            f"WHERE {COLUMN} IS NOT NULL")


def _concurrently() -> bool:
    """False when the caller runs the migrations inside a transaction of its own (alembic/env.py says so),
    which CONCURRENTLY cannot: the indexes are then built in it (writes wait for the build)."""
    return bool(context.config.attributes.get(AUTOCOMMIT_BLOCKS, True))


def _drop_if_invalid(index: str) -> None:
    if context.is_offline_mode():
        return
    invalid = op.get_bind().execute(sa.text("SELECT NOT indisvalid FROM pg_index WHERE indexrelid = to_regclass(:n)"),
                                    {"n": f"{SCHEMA}.{index}"}).scalar()
    if invalid:
        op.execute(f"DROP INDEX CONCURRENTLY {SCHEMA}.{index}")


def upgrade() -> None:
    with bounded_lock_wait(LOCK_TIMEOUT):
        for table in INDEXES:
            # IF NOT EXISTS: a run that failed in the autocommit block below has committed this already.
            op.execute(f"ALTER TABLE {SCHEMA}.{table} ADD COLUMN IF NOT EXISTS {COLUMN} varchar({LENGTH})")
    if not _concurrently():
        for table in INDEXES:
            op.execute(create_index_sql(table, concurrently=False))
        return
    with op.get_context().autocommit_block():
        for table, index in INDEXES.items():
            _drop_if_invalid(index)
            op.execute(create_index_sql(table))


def downgrade() -> None:
    # In the run's transaction, not CONCURRENTLY: DROP COLUMN takes ACCESS EXCLUSIVE right after anyway, and so a
    # downgrade across 010 stays all or nothing (only the upgrade commits part-way).
    with bounded_lock_wait(LOCK_TIMEOUT):
        for table, index in INDEXES.items():
            op.execute(f"DROP INDEX IF EXISTS {SCHEMA}.{index}")
            op.drop_column(table, COLUMN, schema=SCHEMA)
