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

Each table is rebuilt under the same name, in two steps, so a live database keeps being written:

1. **Swap**, one table at a time, each in a transaction of its own: the table is renamed aside (its triggers
   dropped there, so moving its rows out fires none of them), the partitioned table is created under the name
   with its partitions, indexes, triggers and views, and that commits. ACCESS EXCLUSIVE on the old table is
   held from its rename to that commit: the catalog work on empty tables, well under a second, behind
   ``lock_timeout``.
   Writers that queued meanwhile then insert into the partitioned table.
2. **Move**, in an autocommit block: the old rows go over :data:`BATCH` at a time, each batch deleted from the
   table set aside and inserted into the new one in one statement, so every row is in exactly one of them at
   any moment; then the emptied table is dropped. Until the move ends, a reader of the table sees the newest
   rows and a history that fills in. A run that stops half-way is resumed by running it again.

When the caller owns the transaction (no autocommit block allowed), the rows are moved in that transaction
instead, with one statement: writers then wait for the whole copy, as they do on downgrade.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Sequence
from typing import Final

import sqlalchemy as sa
from alembic import context, op

from jedisos_db.runtime import partitions
from jedisos_db.runtime.db.revision_columns import AUTOCOMMIT_BLOCKS, bounded_lock_wait
from jedisos_db.runtime.owners import SCHEMA

revision = "p010"
down_revision = "010"
branch_labels = None
depends_on = None
upgrade_commits_part_way = True  # revision_columns.COMMITS_PART_WAY: the move's autocommit block

LOCK_TIMEOUT = "5s"

ASIDE = "_unpartitioned"


def _rows(sql: str, **params: object) -> Sequence[sa.Row[tuple[object, ...]]]:
    return op.get_bind().execute(sa.text(sql), params).all()


def _exists(relation: str) -> bool:
    return _rows("SELECT to_regclass(:r) IS NOT NULL", r=relation)[0][0] is True


def _swap(table: str, *, partition_by: str | None, primary_key: Sequence[str],
          children: Callable[[], None] = lambda: None) -> None:
    """Set ``table`` aside (``<table>_unpartitioned``) and create it again, partitioned by ``partition_by`` (or
    plain when None), with its indexes, triggers and dependent views, under the same names; the rows stay aside
    (:func:`_move`). Skipped when an earlier run that stopped while moving rows did it: the table is aside, or
    already partitioned as asked."""
    qualified = f"{SCHEMA}.{table}"
    partitioned = _rows("SELECT relkind = 'p' FROM pg_class WHERE oid = CAST(:t AS regclass)", t=qualified)[0][0]
    if _exists(f"{qualified}{ASIDE}") or partitioned is (partition_by is not None):
        return
    indexes = [str(d) for (d,) in _rows(
        "SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = CAST(:t AS regclass) "
        "AND NOT indisprimary ORDER BY indexrelid", t=qualified)]
    triggers = _rows("SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger WHERE tgrelid = CAST(:t AS regclass) "
                     "AND NOT tgisinternal ORDER BY tgname", t=qualified)
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
    for name, _ in triggers:
        op.execute(f"DROP TRIGGER {name} ON {qualified}{ASIDE}")  # the move deletes there: nothing may fire
    how = f" PARTITION BY {partition_by}" if partition_by else ""
    op.execute(f"CREATE TABLE {qualified} (LIKE {qualified}{ASIDE} INCLUDING DEFAULTS INCLUDING STORAGE){how}")
    columns = ", ".join(f'"{c}"' for c in primary_key)
    op.execute(f"ALTER TABLE {qualified} ADD CONSTRAINT {table}_pkey PRIMARY KEY ({columns})")
    op.execute(f"ALTER SEQUENCE {qualified}_id_seq OWNED BY {qualified}.id")
    children()  # the partitions name their parent: created after the rename
    for definition in indexes:
        # A partitioned parent's index reads "ON ONLY"; the plain table's must not.
        op.execute(_fit_unique(definition.replace(f" ON ONLY {qualified} ", f" ON {qualified} "),
                               partition_by, primary_key))
    for _, definition in triggers:
        op.execute(definition)
    for name, definition in views:
        op.execute(f"CREATE VIEW {name} AS {definition}")


BATCH: Final = 50_000
"""Rows moved per statement (each its own transaction) while a live upgrade moves the old rows over."""


def _move(table: str, *, batched: bool) -> None:
    """Move the rows set aside by :func:`_swap` into ``table`` and drop the emptied table. ``batched``: in
    autocommit, :data:`BATCH` rows per statement, each deleting them aside and inserting them in one go."""
    qualified = f"{SCHEMA}.{table}"
    aside = f"{qualified}{ASIDE}"
    if not _exists(aside):
        return
    if not batched or context.is_offline_mode():
        op.execute(f"INSERT INTO {qualified} SELECT * FROM {aside}")
    else:
        move = sa.text(f"WITH moved AS (DELETE FROM {aside} WHERE id IN (SELECT id FROM {aside} ORDER BY id "
                       f"LIMIT {BATCH}) RETURNING *) INSERT INTO {qualified} SELECT * FROM moved")
        while op.get_bind().execute(move).rowcount:
            pass
    op.execute(f"DROP TABLE {aside}")


def _rebuild(table: str, *, partition_by: str | None, primary_key: Sequence[str],
             children: Callable[[], None] = lambda: None) -> None:
    """:func:`_swap` then :func:`_move`, in the run's transaction."""
    _swap(table, partition_by=partition_by, primary_key=primary_key, children=children)
    _move(table, batched=False)


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


def _online() -> bool:
    """False when the caller runs the migrations inside a transaction of its own (alembic/env.py says so),
    which an autocommit block would commit: the rows are then moved in it."""
    return bool(context.config.attributes.get(AUTOCOMMIT_BLOCKS, True)) and not context.is_offline_mode()


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

    online = _online()
    swaps = ((partitions.AUDIT, "LIST (severity)", audit_children),
             (partitions.COST, 'RANGE ("timestamp")', lambda: months_of(partitions.COST)))
    for table, partition_by, children in swaps:
        with bounded_lock_wait(LOCK_TIMEOUT):
            _swap(table.table, partition_by=partition_by, primary_key=table.primary_key, children=children)
        if online:
            with op.get_context().autocommit_block():
                pass  # commits the swap: each table is locked for its own swap only
    with op.get_context().autocommit_block() if online else contextlib.nullcontext():
        for name in partitions.TABLES:
            _move(name, batched=online)


def downgrade() -> None:
    for table in partitions.TABLES.values():
        _rebuild(table.table, partition_by=None, primary_key=("id",))
