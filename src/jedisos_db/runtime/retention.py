"""Retention (design §7), fixed so it keeps what the design says it keeps (claims ``S7-audit-retention``,
``S7-cost-retention-keeps-summary``, ``S7-langgraph-retention-api`` in docs/design-claims.md).

Three rules:

- ``audit_logs``: ``debug``/``info`` rows older than 90 days go; ``warning`` and above stay.
- ``cost_tracking``: rows older than 365 days go. Revision 009's trigger adds every deleted row to
  ``daily_cost_rollup`` (revision 007) in the deleting statement, whoever deletes (the design's own
  bare ``DELETE`` included), so ``daily_cost_summary`` keeps answering for those days. This rule
  therefore only deletes, and refuses to when the trigger is missing (a database below 009).
- LangGraph threads idle for 30 days, found in jedisos' own registry (revision 008) and deleted
  through the checkpointer API (``adelete_thread``), never by SQL on the ``langgraph`` schema.

Deletes run in bounded batches, each its own transaction: a crash leaves every committed batch
done and every other row untouched (a cost row and its rollup change in one statement),
and a rerun finishes the job. A rule stops only when a batch finds nothing (not on a short batch),
so a concurrent run deleting the same rows cannot end it early. "Older than N days" is strict:
``timestamp < now - N days``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Final, Protocol

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from jedisos_db.runtime.db.engine import create_engine, schema_of
from jedisos_db.runtime.db.models import COST_ROLLUP_TRIGGER
from jedisos_db.runtime.errors import InvalidInputError, MigrationError
from jedisos_db.runtime.repositories import validation
from jedisos_db.runtime.repositories.threads import ThreadRegistry
from jedisos_db.runtime.urls import DatabaseURL

DEFAULT_BATCH: Final = 5000
EARLIEST: Final = dt.datetime.min.replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class RetentionRule:
    """One rule of the policy: which rows go, and after how long. The runner applies these, and
    the capacity model (``jedisos_db.harness.capacity``) projects disk use from the same values."""

    name: str
    """The rule's name: the table it deletes from (``langgraph_threads``: the thread registry)."""
    keep: dt.timedelta
    """Rows older than this go (for threads: idle for this long)."""
    summary: str
    """What the rule does; ``{days}``, ``{severities}`` and ``{rollup}`` are filled in."""
    only_severities: tuple[str, ...] = ()
    """When set, only rows of these severities go; every other severity is kept."""
    rollup: str | None = None
    """The table rows are rolled up into before they go."""

    @property
    def description(self) -> str:
        return self.summary.format(days=self.keep.days, severities="/".join(self.only_severities),
                                   rollup=self.rollup)


AUDIT_RULE: Final = RetentionRule("audit_logs", dt.timedelta(days=90),
                                  "{severities} older than {days} days (warning and above kept)",
                                  only_severities=("debug", "info"))
COST_RULE: Final = RetentionRule("cost_tracking", dt.timedelta(days=365),
                                 "older than {days} days, rolled into {rollup} by the delete's trigger",
                                 rollup="daily_cost_rollup")
THREAD_RULE: Final = RetentionRule("langgraph_threads", dt.timedelta(days=30),
                                   "idle for {days} days, deleted with AsyncPostgresSaver.adelete_thread")
POLICY: Final = (AUDIT_RULE, COST_RULE, THREAD_RULE)
"""Design §7's retention, fixed (see the module docstring), in the order :func:`run` applies it."""


class Checkpointer(Protocol):
    """What the thread rule needs from LangGraph: ``AsyncPostgresSaver`` satisfies it."""

    async def adelete_thread(self, thread_id: str) -> None: ...


@dataclass(frozen=True)
class RuleResult:
    rule: str
    description: str
    rows: int
    """Rows deleted (or, in a dry run, that would be)."""
    batches: int
    dry_run: bool
    note: str = ""


@dataclass
class RetentionReport:
    now: dt.datetime
    dry_run: bool
    results: list[RuleResult] = field(default_factory=list)


BatchHook = Callable[[str, int], Awaitable[None] | None]
"""Called after each committed batch with (rule, rows); tests use it to simulate a crash."""


def _purged_severities(rule: RetentionRule = AUDIT_RULE) -> str:
    # Literals, not a parameter: the planner sees the same predicate on every batch. The values
    # are checked documented severities, never free caller input.
    for severity in rule.only_severities:
        validation.choice("only_severities", severity, validation.SEVERITIES, required=True)
    return ", ".join(f"'{severity}'" for severity in rule.only_severities)


DOCUMENTED_SQL: Final = {
    AUDIT_RULE.name: ("DELETE FROM jedisos.audit_logs\nWHERE timestamp < NOW() - INTERVAL '90 days'\n"
                      "  AND severity IN ('debug', 'info');"),
    COST_RULE.name: "DELETE FROM jedisos.cost_tracking\nWHERE timestamp < NOW() - INTERVAL '365 days';",
}
"""Design §7's retention SQL exactly as written (one unbatched statement per table); the ``documented``
design runs these, and the tests show what they get wrong."""


def audit_delete_sql(schema: str, rule: RetentionRule = AUDIT_RULE) -> str:
    """One batch: the oldest ``:batch`` purgeable rows at or after ``:after``; returns (rows, newest).

    ORDER BY timestamp + LIMIT walks idx_audit_timestamp from the oldest end and stops early, and
    ``:after`` (the newest timestamp the previous batch deleted) keeps each batch from re-walking the
    warning+ rows it must keep. "id = ANY(ARRAY(...))" rather than "id IN (...)": with IN the planner
    may hash-join against a sequential scan once a batch is a few percent of the table.
    """
    return f"""
        WITH gone AS (
            DELETE FROM {schema}.audit_logs WHERE id = ANY(ARRAY(
                SELECT id FROM {schema}.audit_logs
                WHERE "timestamp" < :cutoff AND "timestamp" >= :after AND severity IN ({_purged_severities(rule)})
                ORDER BY "timestamp" LIMIT :batch))
            RETURNING "timestamp"
        )
        SELECT count(*) AS deleted, max("timestamp") AS newest FROM gone
    """


def audit_count_sql(schema: str, rule: RetentionRule = AUDIT_RULE) -> str:
    return f"""SELECT count(*) FROM {schema}.audit_logs
               WHERE "timestamp" < :cutoff AND severity IN ({_purged_severities(rule)})"""


def cost_delete_sql(schema: str) -> str:
    """One batch: the oldest ``:batch`` rows past the cutoff; the trigger rolls them up in the same statement."""
    return f"""
        DELETE FROM {schema}.cost_tracking WHERE id = ANY(ARRAY(
            SELECT id FROM {schema}.cost_tracking
            WHERE "timestamp" < :cutoff
            ORDER BY "timestamp" LIMIT :batch))
    """


ROLLUP_TRIGGER_SQL: Final = ("SELECT EXISTS (SELECT 1 FROM pg_trigger "
                              "WHERE tgrelid = to_regclass(:table) AND tgname = :name)")
"""Whether revision 009's rollup trigger is on ``:table``."""


def cost_count_sql(schema: str) -> str:
    return f'SELECT count(*) FROM {schema}.cost_tracking WHERE "timestamp" < :cutoff'


async def server_now(engine: AsyncEngine) -> dt.datetime:
    async with engine.connect() as conn:
        now: dt.datetime = (await conn.execute(text("SELECT now()"))).scalar_one()
    return now


async def _hook(on_batch: BatchHook | None, rule: str, rows: int) -> None:
    if on_batch is not None:
        result = on_batch(rule, rows)
        if result is not None:
            await result


async def _count(engine: AsyncEngine, sql: str, cutoff: dt.datetime) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text(sql), {"cutoff": cutoff})).scalar_one())


async def _cutoff(engine: AsyncEngine, rule: RetentionRule, now: dt.datetime | None, batch_size: int,
                  high: int = 1_000_000) -> dt.datetime:
    """The rule's cutoff from ``now`` (or the server's clock), after checking ``batch_size``."""
    validation.integer("batch_size", batch_size, low=1, high=high)
    return (validation.timestamp("now", now) or await server_now(engine)) - rule.keep


Batch = Callable[[], Awaitable[tuple[int, int]]]
"""One transaction of a rule: (rows it removed, rows it went through); a batch that went through none ends it."""


async def run_batches(rule: RetentionRule, batch: Batch, on_batch: BatchHook | None) -> RuleResult:
    """Run ``batch`` until it goes through nothing; the result counts the rows removed."""
    total = batches = 0
    while True:
        removed, seen = await batch()
        if not seen:
            break
        total += removed
        batches += 1
        await _hook(on_batch, rule.name, seen)
    return RuleResult(rule.name, rule.description, total, batches, False)


async def purge_audit_logs(engine: AsyncEngine, *, now: dt.datetime | None = None, dry_run: bool = False,
                           batch_size: int = DEFAULT_BATCH, on_batch: BatchHook | None = None,
                           rule: RetentionRule = AUDIT_RULE) -> RuleResult:
    """Delete ``debug``/``info`` audit rows older than 90 days (``rule``: a design's own window),
    ``batch_size`` per transaction."""
    cutoff = await _cutoff(engine, rule, now, batch_size)
    schema = schema_of(engine)
    if dry_run:
        return RuleResult(rule.name, rule.description,
                          await _count(engine, audit_count_sql(schema, rule), cutoff), 0, True)
    after = EARLIEST

    async def batch() -> tuple[int, int]:
        nonlocal after  # keyset: the next batch starts past the newest row this one deleted
        async with engine.begin() as conn:
            deleted, newest = (await conn.execute(text(audit_delete_sql(schema, rule)),
                                                  {"cutoff": cutoff, "after": after, "batch": batch_size})).one()
        after = newest if deleted else after
        return int(deleted), int(deleted)

    return await run_batches(rule, batch, on_batch)


async def roll_up_cost_tracking(engine: AsyncEngine, *, now: dt.datetime | None = None, dry_run: bool = False,
                                batch_size: int = DEFAULT_BATCH, on_batch: BatchHook | None = None,
                                rule: RetentionRule = COST_RULE) -> RuleResult:
    """Delete ``cost_tracking`` rows older than 365 days (``rule``: a design's own window), in batches;
    revision 009's trigger rolls them up."""
    cutoff = await _cutoff(engine, rule, now, batch_size)
    schema = schema_of(engine)
    if dry_run:
        return RuleResult(rule.name, rule.description,
                          await _count(engine, cost_count_sql(schema), cutoff), 0, True)
    async with engine.connect() as conn:
        guarded = (await conn.execute(text(ROLLUP_TRIGGER_SQL),
                                      {"table": f"{schema}.cost_tracking", "name": COST_ROLLUP_TRIGGER})).scalar_one()
    if not guarded:
        raise MigrationError(f"{schema}.cost_tracking has no {COST_ROLLUP_TRIGGER} trigger (revision 009), so "
                             "deleting would erase daily_cost_summary history; upgrade the schema to head first "
                             "(jedisos-db db upgrade)")

    async def batch() -> tuple[int, int]:
        async with engine.begin() as conn:
            deleted = int((await conn.execute(text(cost_delete_sql(schema)),
                                              {"cutoff": cutoff, "batch": batch_size})).rowcount)
        return deleted, deleted

    return await run_batches(rule, batch, on_batch)


async def purge_idle_threads(engine: AsyncEngine, checkpointer: Checkpointer | None, *,
                             now: dt.datetime | None = None, dry_run: bool = False, batch_size: int = 100,
                             on_batch: BatchHook | None = None) -> RuleResult:
    """Delete threads idle for 30 days through ``checkpointer.adelete_thread``, then forget them.

    The registry row goes only after LangGraph deleted the thread; a crash in between leaves the
    row, and the rerun calls ``adelete_thread`` again (deleting a deleted thread is a no-op).
    """
    cutoff = await _cutoff(engine, THREAD_RULE, now, batch_size, high=100_000)
    registry = ThreadRegistry(engine)
    if dry_run:
        return RuleResult(THREAD_RULE.name, THREAD_RULE.description, await registry.count_idle(cutoff), 0, True)
    if checkpointer is None:
        idle = await registry.count_idle(cutoff)
        if idle:
            raise InvalidInputError(
                "checkpointer", f"{idle} idle threads need a LangGraph checkpointer to delete them")
        return RuleResult(THREAD_RULE.name, THREAD_RULE.description, 0, 0, False, "no checkpointer; nothing idle")
    saver = checkpointer

    async def batch() -> tuple[int, int]:
        ids = await registry.idle(cutoff, limit=batch_size)
        for thread_id in ids:
            await saver.adelete_thread(thread_id)
        # A thread touched since idle() keeps its registry row, so fewer may be forgotten than deleted.
        forgotten = await registry.forget(ids, idle_before=cutoff) if ids else 0
        return forgotten, len(ids)

    return await run_batches(THREAD_RULE, batch, on_batch)


async def run(engine: AsyncEngine, *, checkpointer: Checkpointer | None = None, dry_run: bool = False,
              now: dt.datetime | None = None, batch_size: int = DEFAULT_BATCH) -> RetentionReport:
    """Apply (or, with ``dry_run``, count) every rule against one ``now``."""
    at = validation.timestamp("now", now) or await server_now(engine)
    report = RetentionReport(now=at, dry_run=dry_run)
    report.results.append(await purge_audit_logs(engine, now=at, dry_run=dry_run, batch_size=batch_size))
    report.results.append(await roll_up_cost_tracking(engine, now=at, dry_run=dry_run, batch_size=batch_size))
    report.results.append(await purge_idle_threads(engine, checkpointer, now=at, dry_run=dry_run))
    return report


@asynccontextmanager
async def langgraph_checkpointer(url: DatabaseURL) -> AsyncIterator[Checkpointer | None]:
    """An ``AsyncPostgresSaver`` from the checkpointer factory, or None when LangGraph is not
    installed or has never been set up here (then there is nothing of it to clean up)."""
    try:
        from jedisos_db.runtime import checkpointer
    except ImportError:  # the [langgraph] extra is not installed
        yield None
        return
    if checkpointer.migration_version(url) is None:
        yield None
        return
    async with checkpointer.open_checkpointer(url, setup=False) as saver:
        yield saver


async def run_from_url(url: DatabaseURL, *, dry_run: bool = False, batch_size: int = DEFAULT_BATCH) -> RetentionReport:
    """What ``jedisos-db retention run`` does: a short-lived engine (and saver) on ``url``."""
    engine = create_engine(url=url, pool_size=1, max_overflow=0, application_name="jedisos-db-retention",
                           statement_timeout_ms=0)
    try:
        if dry_run:
            return await run(engine, dry_run=True, batch_size=batch_size)
        async with langgraph_checkpointer(url) as saver:
            return await run(engine, checkpointer=saver, batch_size=batch_size)
    finally:
        await engine.dispose()
