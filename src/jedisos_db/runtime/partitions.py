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

import asyncio
import datetime as dt
import math
import re
import time
from collections.abc import Awaitable, Callable, Iterator
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
DROP_REST: Final = 199.0
"""Before dropping a detached month, the purge rests this many times as long as its previous step took (the
detaches, then each drop). Every step but the last drop is then followed by 199 times its length of nothing, so
the steps that slow writers fill about 0.5 % of the purge's time and only that share of a writer's inserts
during it can meet one: fewer than the 1 % a p99 leaves above it (issue 10's goal: insert p99 during the purge
<= 1.2x idle). At 99 times (1 %) the slowed inserts were exactly that 1 %, and the p99 of five races ranged from
0.66x to 3.4x idle with the machine's load. Nothing rests after the last drop: a rest there would only pad the
purge with idle inserts.

Why: a month's DROP is cheap for the database, but at its commit the file system frees the month's files
(90 MB for 500k audit rows), and meanwhile every writer's commit waits longer in its WAL flush
(``IO/WalSync``). Measured on the 2-core machine (ext4 on a virtual disk), back-to-back drops slowed 14-50 % of
a writer's inserts during the purge to 1-5 ms (0.4 ms idle); with the writer's ``synchronous_commit`` off, the
inserts overlapping a drop were as fast as idle. Resting does not make those few inserts faster; it keeps the
purge from slowing more than 0.5 % of them. Removal (the detaches) is not rested: the rows leave the table as
fast as before; the whole purge of two 500k-row months takes about 7 s instead of 0.07 s, nothing locked."""
MAX_REST: Final = 1000.0
"""The largest ``rest`` a caller may ask for: more would stretch a purge over hours for no writer's gain."""
REST_CAP: Final = 10.0
"""Longest single rest (seconds), whatever the step before it took (a drop held up by a lock, say)."""


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


def ensure_sql(schema: str, *, first: dt.datetime | dt.date | None, last: dt.datetime | dt.date,
               now: dt.datetime) -> list[str]:
    """The statements creating every missing month of both tables from ``first`` (by default the oldest
    month each table's window holds) to ``last``."""
    return [create_partition_sql(schema, table, month) for table in TABLES.values()
            for month in months(first or window_start(now, table), last)]


def ahead(now: dt.datetime) -> dt.date:
    """The last month that must have a partition at ``now``: :data:`MONTHS_AHEAD` after the current one."""
    month = month_of(now)
    for _ in range(MONTHS_AHEAD):
        month = next_month(month)
    return month


def window_start(now: dt.datetime, table: MonthlyTable) -> dt.date:
    """The oldest month ``table``'s retention window can still hold a row of."""
    return month_of(now - table.rule.keep)


async def ensure_partitions(engine: AsyncEngine, *, first: dt.datetime | dt.date | None = None,
                            last: dt.datetime | dt.date | None = None) -> None:
    """Create the missing months of both tables, by default from the oldest month retention keeps to
    :data:`MONTHS_AHEAD` months ahead of the server's clock. Idempotent."""
    now = await server_now(engine)
    async with engine.begin() as conn:
        for statement in ensure_sql(schema_of(engine), first=first, last=last or ahead(now), now=now):
            await conn.execute(text(statement))


_MONTHS_SQL = """
    SELECT c.relname, i.inhrelid IS NOT NULL, coalesce(i.inhdetachpending, false) FROM pg_class c
    LEFT JOIN pg_inherits i ON i.inhrelid = c.oid
    WHERE c.relnamespace = to_regnamespace(:schema) AND c.relkind = 'r' AND starts_with(c.relname, :prefix)
"""
"""Every month table of a parent, attached or not (a crash may leave one detached, or half-detached)."""


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
                                  on_batch: BatchHook | None = None, rule: RetentionRule | None = None,
                                  count: bool = True, on_removed: Callable[[], object] | None = None,
                                  rest: float = DROP_REST,
                                  pause: Callable[[float], Awaitable[object]] = asyncio.sleep) -> RuleResult:
    """Retention by partition, in two steps.

    First every month of ``table`` past its rule's window leaves the table: a cost month is emptied by one
    DELETE on the partition through revision 009's rollup function (so ``daily_cost_summary`` never misses
    those days), then each month is detached ``CONCURRENTLY`` (writers keep inserting into the other months,
    and from then on no query sees its rows). ``on_removed`` is called at that point. Then the detached months
    are counted (audit months: a scan, skipped with ``count=False``, the rows are then 0) and dropped, one
    transaction each, which gives their disk space back without touching the table.

    Each drop is preceded by a rest ``rest`` times as long as the step before it, at most :data:`REST_CAP`
    (:data:`DROP_REST` says why); ``pause`` is how it rests (tests record the rests instead of sleeping them).

    A month a crash left half-detached is finished (``FINALIZE``), one left detached is dropped, by the next
    run. ``rule`` replaces the table's policy rule (a design's own window).
    """
    layout = TABLES.get(table)
    if layout is None:
        raise InvalidInputError("table", f"must be one of {sorted(TABLES)}, got {table!r}")
    if isinstance(rest, bool) or not isinstance(rest, int | float) or not math.isfinite(rest) \
            or not 0 <= rest <= MAX_REST:
        raise InvalidInputError("rest", f"must be a number from 0 to {MAX_REST:g} (times the step before), "
                                        f"got {rest!r}")
    rule = rule or layout.rule
    cutoff = (validation.timestamp("now", now) or await server_now(engine)) - rule.keep
    schema = schema_of(engine)
    # DETACH ... CONCURRENTLY refuses to run inside a transaction block.
    auto = engine.execution_options(isolation_level="AUTOCOMMIT")
    async with auto.connect() as conn:
        found = (await conn.execute(text(_MONTHS_SQL), {"schema": schema, "prefix": f"{layout.monthly}_p"})).all()
    state = {str(name): (bool(attached), bool(pending)) for name, attached, pending in found}
    names = expired(list(state), layout, cutoff)
    emptied = 0
    step = 0.0  # the detaches' time: what the first drop rests after
    for name in names:
        attached, pending = state[name]
        if layout is COST and attached and not pending:
            async with engine.begin() as conn:
                await conn.execute(text(
                    f"CREATE TRIGGER {COST_ROLLUP_TRIGGER} AFTER DELETE ON {schema}.{name} REFERENCING OLD TABLE "
                    f"AS gone FOR EACH STATEMENT EXECUTE FUNCTION {schema}.{COST_ROLLUP_FUNCTION}()"))
                emptied += int((await conn.execute(text(f"DELETE FROM {schema}.{name}"))).rowcount)
        if attached:
            how = "FINALIZE" if pending else "CONCURRENTLY"
            detach = f"ALTER TABLE {schema}.{layout.monthly} DETACH PARTITION {schema}.{name} {how}"
            started = time.perf_counter()
            async with auto.connect() as conn:
                await conn.execute(text(detach))
            step += time.perf_counter() - started
    if on_removed is not None:
        on_removed()
    queue = list(names)

    async def batch() -> tuple[int, int]:
        nonlocal step
        if not queue:
            return 0, 0
        if rest and step:
            await pause(min(step * rest, REST_CAP))
        name = queue.pop(0)
        started = time.perf_counter()
        async with engine.begin() as conn:
            rows = 0
            if layout is AUDIT and count:
                rows = int((await conn.execute(text(f"SELECT count(*) FROM {schema}.{name}"))).scalar_one())
            await conn.execute(text(f"DROP TABLE {schema}.{name}"))
        step = time.perf_counter() - started
        return rows, 1

    result = await run_batches(rule, batch, on_batch)
    counted = ", rows not counted" if layout is AUDIT and not count else ""
    return RuleResult(result.rule, f"{result.description}; whole months dropped", result.rows + emptied,
                      result.batches, False, f"{result.batches} partition(s) dropped{counted}")
