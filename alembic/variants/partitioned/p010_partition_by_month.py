"""audit_logs and cost_tracking partitioned by UTC month (the ``partitioned`` design)

Revision ID: p010
Revises: 009

Not on head's chain: this directory is added to Alembic's version locations only for the ``partitioned``
design (``jedisos_db/designs/partitioned.toml``), so ``jedisos-db db upgrade`` still ends at 009.

Native declarative partitioning (layout and reasons: ``jedisos_db.runtime.partitions``). What changes in the
DDL of revisions 001/002:

- ``CREATE TABLE ... PARTITION BY``: ``audit_logs`` by LIST (severity) into a kept part (warning and
  above) and a purgeable part (debug, info) that is itself by RANGE ("timestamp"), a partition a month;
  ``cost_tracking`` by RANGE ("timestamp"), a partition a month.
- The primary keys must contain the partition keys: ``(id, "timestamp", severity)`` and ``(id, "timestamp")``
  instead of ``(id)``. ``id`` still comes from the same sequence, so it stays unique in practice, but
  no longer by constraint; nothing references these tables by id.
- Every index is created on the parent (``ON ONLY`` in the catalog) and cascades to each partition.
- Revision 009's rollup trigger and the ``daily_cost_summary`` view are re-created on the new table.

Each table is rebuilt: renamed aside, re-created partitioned, its rows copied, the old one dropped. That
rewrites the tables under an ACCESS EXCLUSIVE lock: quick on the empty database a design starts from,
but on a filled one it blocks writers for the whole copy (squawk flags it); convert a live database by
attaching the old table as a partition instead.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence

import sqlalchemy as sa
from alembic import op

from jedisos_db.runtime import partitions
from jedisos_db.runtime.owners import SCHEMA

revision = "p010"
down_revision = "010"
branch_labels = None
depends_on = None

ASIDE = "_unpartitioned"


def _rows(sql: str, **params: object) -> Sequence[sa.Row[tuple[object, ...]]]:
    return op.get_bind().execute(sa.text(sql), params).all()


def _rebuild(table: str, *, partition_by: str | None, primary_key: Sequence[str],
             children: Callable[[], None] = lambda: None) -> None:
    """Re-create ``table`` (partitioned by ``partition_by``, or plain when None) with its rows, indexes,
    triggers and dependent views, under the same names."""
    qualified = f"{SCHEMA}.{table}"
    indexes = [str(d) for (d,) in _rows(
        "SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = CAST(:t AS regclass) "
        "AND NOT indisprimary ORDER BY indexrelid", t=qualified)]
    triggers = [str(d) for (d,) in _rows(
        "SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgrelid = CAST(:t AS regclass) AND NOT tgisinternal",
        t=qualified)]
    views = _rows("""
        SELECT DISTINCT v.oid::regclass::text, pg_get_viewdef(v.oid) FROM pg_depend d
        JOIN pg_rewrite r ON r.oid = d.objid JOIN pg_class v ON v.oid = r.ev_class
        WHERE d.refobjid = CAST(:t AS regclass) AND v.oid <> d.refobjid""", t=qualified)
    for name, _ in views:
        op.execute(f"DROP VIEW {name}")
    op.execute(f"ALTER TABLE {qualified} RENAME TO {table}{ASIDE}")
    op.execute(f"ALTER TABLE {qualified}{ASIDE} RENAME CONSTRAINT {table}_pkey TO {table}{ASIDE}_pkey")
    for (name,) in _rows("SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = CAST(:t AS regclass) "
                         "AND NOT indisprimary", t=f"{qualified}{ASIDE}"):
        op.execute(f"DROP INDEX {name}")
    how = f" PARTITION BY {partition_by}" if partition_by else ""
    op.execute(f"CREATE TABLE {qualified} (LIKE {qualified}{ASIDE} INCLUDING DEFAULTS INCLUDING STORAGE){how}")
    columns = ", ".join(f'"{c}"' for c in primary_key)
    op.execute(f"ALTER TABLE {qualified} ADD CONSTRAINT {table}_pkey PRIMARY KEY ({columns})")
    op.execute(f"ALTER SEQUENCE {qualified}_id_seq OWNED BY {qualified}.id")
    children()
    op.execute(f"INSERT INTO {qualified} SELECT * FROM {qualified}{ASIDE}")
    op.execute(f"DROP TABLE {qualified}{ASIDE}")
    for definition in indexes:
        # A partitioned parent's index reads "ON ONLY"; the plain table's must not.
        op.execute(_fit_unique(definition.replace(f" ON ONLY {qualified} ", f" ON {qualified} "),
                               partition_by, primary_key))
    for definition in triggers:
        op.execute(definition)
    for name, definition in views:
        op.execute(f"CREATE VIEW {name} AS {definition}")


def _fit_unique(definition: str, partition_by: str | None, primary_key: Sequence[str]) -> str:
    """A unique index of a partitioned table must hold the partition keys (PostgreSQL's rule), so the
    idempotency key's index (revision 010) becomes unique per key and partition keys: a retried event
    has the same time and severity, so it is still written once; the plain table's gets its one column
    back on downgrade."""
    if not definition.startswith("CREATE UNIQUE INDEX"):
        return definition
    keys = ", ".join(f'"{c}"' for c in primary_key if c != "id")
    head, _, rest = definition.partition(" USING btree (")
    columns, _, tail = rest.partition(")")
    first = columns.split(",")[0].strip()
    return f"{head} USING btree ({first}, {keys}){tail}" if partition_by else f"{head} USING btree ({first}){tail}"


def _months(table: partitions.MonthlyTable) -> tuple[dt.date, dt.date]:
    """From the oldest month ``table``'s retention keeps (or its oldest row, still in the table set aside)
    to MONTHS_AHEAD months ahead."""
    now, oldest = _rows(f'SELECT now(), min("timestamp") FROM {SCHEMA}.{table.table}{ASIDE}')[0]
    assert isinstance(now, dt.datetime)
    first = partitions.window_start(now, table)
    if isinstance(oldest, dt.datetime):
        first = min(first, partitions.month_of(oldest))
    return first, partitions.ahead(now)


def _severities(values: Sequence[str]) -> str:
    return ", ".join(f"'{v}'" for v in values)


def upgrade() -> None:
    def months_of(table: partitions.MonthlyTable) -> None:
        for month in partitions.months(*_months(table)):
            op.execute(partitions.create_partition_sql(SCHEMA, table, month))

    def audit_children() -> None:
        audit = partitions.AUDIT
        op.execute(f"CREATE TABLE {SCHEMA}.{partitions.AUDIT_KEPT} PARTITION OF {SCHEMA}.{audit.table} "
                   f"FOR VALUES IN ({_severities(partitions.kept_severities())})")
        op.execute(f"CREATE TABLE {SCHEMA}.{audit.monthly} PARTITION OF {SCHEMA}.{audit.table} "
                   f"FOR VALUES IN ({_severities(audit.rule.only_severities)}) PARTITION BY RANGE (\"timestamp\")")
        months_of(audit)

    _rebuild(partitions.AUDIT.table, partition_by="LIST (severity)", primary_key=partitions.AUDIT.primary_key,
             children=audit_children)
    _rebuild(partitions.COST.table, partition_by='RANGE ("timestamp")', primary_key=partitions.COST.primary_key,
             children=lambda: months_of(partitions.COST))


def downgrade() -> None:
    for table in partitions.TABLES.values():
        _rebuild(table.table, partition_by=None, primary_key=("id",))
