"""Monthly partitions of ``audit_logs`` and ``cost_tracking`` (the ``partitioned`` design), and retention
by dropping whole partitions instead of deleting rows.

The layout (built by ``alembic/variants/partitioned``; the repositories write to it unchanged):

- ``audit_logs`` is ``PARTITION BY LIST (severity)``: ``audit_logs_kept`` holds the severities the audit
  rule keeps forever (warning and above), ``audit_logs_purgeable`` the ones it deletes (debug, info), and
  is itself ``PARTITION BY RANGE ("timestamp")``, one partition a UTC month. Dropping a month therefore
  drops only rows the rule would delete: warning+ rows are never in it.
- ``cost_tracking`` is ``PARTITION BY RANGE ("timestamp")``, one partition a UTC month. Revision 009's
  rollup trigger stays on the parent; dropping a partition fires no DELETE trigger, so the month is
  detached, its rows are deleted through the same trigger function (attached to the detached table),
  then it is dropped: ``daily_cost_summary`` keeps those days.

A primary key of a partitioned table must contain every partition key, so the keys become
``(id, "timestamp", severity)`` and ``(id, "timestamp")``; ``id`` stays unique in practice (one sequence)
but the database no longer enforces it alone.

There is no DEFAULT partition: it would make ``DETACH ... CONCURRENTLY`` impossible and keep old rows out of
reach of a drop. A row whose month has no partition is refused; :func:`ensure_sql` creates months ahead
(:data:`MONTHS_AHEAD`) and the migration creates every month the retention window can still hold.

A month goes once all of it is past the rule's window (its end <= now - keep), so rows live up to one
month longer than with the row-by-row DELETE: the price of dropping instead of deleting.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from jedisos_db.runtime.db.engine import schema_of
from jedisos_db.runtime.db.models import COST_ROLLUP_FUNCTION, COST_ROLLUP_TRIGGER
from jedisos_db.runtime.errors import InvalidInputError
from jedisos_db.runtime.repositories import validation
from jedisos_db.runtime.retention import (
    AUDIT_RULE,
    COST_RULE,
    BatchHook,
    RetentionRule,
    RuleResult,
    run_batches,
    server_now,
)

MONTHS_AHEAD: Final = 3
"""Months after the current one that always have a partition, so inserts never meet a missing month."""


@dataclass(frozen=True)
class MonthlyTable:
    """A table rows are written to, and the table under it that is partitioned by month."""

    table: str
    """What the repositories write to (``audit_logs``, ``cost_tracking``)."""
    monthly: str
    """The table partitioned ``BY RANGE ("timestamp")`` a month at a time."""
    rule: RetentionRule
    primary_key: tuple[str, ...]

    def partition(self, month: dt.date) -> str:
        return f"{self.monthly}_p{month:%Y%m}"


AUDIT_KEPT: Final = "audit_logs_kept"
AUDIT: Final = MonthlyTable("audit_logs", "audit_logs_purgeable", AUDIT_RULE, ("id", "timestamp", "severity"))
COST: Final = MonthlyTable("cost_tracking", "cost_tracking", COST_RULE, ("id", "timestamp"))
TABLES: Final = {t.table: t for t in (AUDIT, COST)}
_MONTH_SUFFIX = re.compile(r"_p(\d{4})(\d{2})$")


def kept_severities() -> tuple[str, ...]:
    """The severities the audit rule never deletes: every documented one it does not name."""
    return tuple(s for s in validation.SEVERITIES if s not in AUDIT_RULE.only_severities)


def month_of(moment: dt.datetime | dt.date) -> dt.date:
    """The first day of ``moment``'s UTC month."""
    if isinstance(moment, dt.datetime):
        moment = moment.astimezone(dt.UTC).date()
    return moment.replace(day=1)


def next_month(month: dt.date) -> dt.date:
    return (month.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


def months(first: dt.date, last: dt.date) -> Iterator[dt.date]:
    """Every month from ``first``'s to ``last``'s, both included."""
    month = month_of(first)
    while month <= month_of(last):
        yield month
        month = next_month(month)


def _bound(month: dt.date) -> str:
    return f"'{month:%Y-%m-%d} 00:00:00+00'"


def create_partition_sql(schema: str, table: MonthlyTable, month: dt.date) -> str:
    """``CREATE TABLE IF NOT EXISTS`` of one month's partition (UTC bounds, ``[first day, next first day)``)."""
    return (f"CREATE TABLE IF NOT EXISTS {schema}.{table.partition(month)} PARTITION OF {schema}.{table.monthly} "
            f"FOR VALUES FROM ({_bound(month)}) TO ({_bound(next_month(month))})")


def ensure_sql(schema: str, *, first: dt.datetime | dt.date, last: dt.datetime | dt.date) -> list[str]:
    """The statements creating every missing month of both tables from ``first`` to ``last``."""
    return [create_partition_sql(schema, table, month) for table in TABLES.values() for month in months(first, last)]


def window_start(now: dt.datetime) -> dt.date:
    """The oldest month any rule's window can still hold a row of (cost's 365 days are the longest)."""
    return month_of(now - max(t.rule.keep for t in TABLES.values()))


async def ensure_partitions(engine: AsyncEngine, *, first: dt.datetime | dt.date | None = None,
                            last: dt.datetime | dt.date | None = None) -> None:
    """Create the missing months of both tables, by default from the oldest month retention keeps to
    :data:`MONTHS_AHEAD` months ahead of the server's clock. Idempotent."""
    now = await server_now(engine)
    first = first or window_start(now)
    if last is None:
        last = month_of(now)
        for _ in range(MONTHS_AHEAD):
            last = next_month(last)
    async with engine.begin() as conn:
        for statement in ensure_sql(schema_of(engine), first=first, last=last):
            await conn.execute(text(statement))


_PARTITIONS_SQL = """
    SELECT c.relname, i.inhdetachpending FROM pg_inherits i
    JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
    JOIN pg_namespace n ON n.oid = p.relnamespace
    WHERE n.nspname = :schema AND p.relname = :parent
"""


def expired(partitions: list[str], table: MonthlyTable, cutoff: dt.datetime) -> list[str]:
    """The partitions of ``table`` whose whole month is older than ``cutoff``, oldest first (names this
    module did not create are left alone)."""
    out = []
    for name in partitions:
        found = _MONTH_SUFFIX.search(name)
        if name.startswith(f"{table.monthly}_p") and found:
            end = next_month(dt.date(int(found[1]), int(found[2]), 1))
            if dt.datetime.combine(end, dt.time(), dt.UTC) <= cutoff:
                out.append(name)
    return sorted(out)


async def drop_expired_partitions(engine: AsyncEngine, table: str, *, now: dt.datetime | None = None,
                                  on_batch: BatchHook | None = None, rule: RetentionRule | None = None) -> RuleResult:
    """Retention by partition: every month of ``table`` past its rule's window is detached
    (``CONCURRENTLY``: writers keep inserting into the other months) and dropped, one month at a time.

    Cost months are emptied through revision 009's rollup function first, so the daily summary keeps them.
    A detach interrupted by a crash is finished (``FINALIZE``) by the next run. ``rule`` replaces the
    table's policy rule (a design's own window).
    """
    layout = TABLES.get(table)
    if layout is None:
        raise InvalidInputError("table", f"must be one of {sorted(TABLES)}, got {table!r}")
    rule = rule or layout.rule
    cutoff = (validation.timestamp("now", now) or await server_now(engine)) - rule.keep
    schema = schema_of(engine)
    parent = f"{schema}.{layout.monthly}"
    # DETACH ... CONCURRENTLY refuses to run inside a transaction block.
    auto = engine.execution_options(isolation_level="AUTOCOMMIT")
    async with auto.connect() as conn:
        attached = (await conn.execute(text(_PARTITIONS_SQL), {"schema": schema, "parent": layout.monthly})).all()
    pending = [str(name) for name, detaching in attached if detaching]
    queue = expired([str(name) for name, _ in attached], layout, cutoff)

    async def batch() -> tuple[int, int]:
        if not queue:
            return 0, 0
        name = queue.pop(0)
        async with auto.connect() as conn:
            how = "FINALIZE" if name in pending else "CONCURRENTLY"
            await conn.execute(text(f"ALTER TABLE {parent} DETACH PARTITION {schema}.{name} {how}"))
        async with engine.begin() as conn:
            if layout is COST:
                await conn.execute(text(
                    f"CREATE TRIGGER {COST_ROLLUP_TRIGGER} AFTER DELETE ON {schema}.{name} REFERENCING OLD TABLE "
                    f"AS gone FOR EACH STATEMENT EXECUTE FUNCTION {schema}.{COST_ROLLUP_FUNCTION}()"))
                rows = int((await conn.execute(text(f"DELETE FROM {schema}.{name}"))).rowcount)
            else:
                rows = int((await conn.execute(text(f"SELECT count(*) FROM {schema}.{name}"))).scalar_one())
            await conn.execute(text(f"DROP TABLE {schema}.{name}"))
        return rows, 1

    result = await run_batches(rule, batch, on_batch)
    return RuleResult(result.rule, f"{result.description}; whole months dropped", result.rows, result.batches,
                      False, f"{result.batches} partition(s) dropped")
