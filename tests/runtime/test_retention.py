"""Retention (design §7) on the real server: boundaries, batches, crash and rerun, cost history, threads."""

from __future__ import annotations

import asyncio
import datetime as dt
import operator
import secrets
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any, TypedDict

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner

from jedisos_db.cli.main import app
from jedisos_db.harness import datagen, designs
from jedisos_db.harness.verify.plugin import ClaimRecorder
from jedisos_db.runtime import retention
from jedisos_db.runtime.db import migrations
from jedisos_db.runtime.db.connect import connect
from jedisos_db.runtime.db.engine import create_engine
from jedisos_db.runtime.errors import MigrationError
from jedisos_db.runtime.repositories import validation
from jedisos_db.runtime.repositories.audit import AuditEvent, AuditLogRepository
from jedisos_db.runtime.repositories.cost import CostEvent, CostRepository
from jedisos_db.runtime.repositories.threads import ThreadRegistry
from jedisos_db.runtime.urls import DatabaseURL
from tests.plugins.databases import DatabaseFactory
from tests.plugins.tables import count, make_room
from tests.rich_tables import row_of

if TYPE_CHECKING:
    from langchain_core.runnables import RunnableConfig
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)

DESIGN_AUDIT_RETENTION = retention.DOCUMENTED_SQL[retention.AUDIT_RULE.name]
DESIGN_COST_RETENTION = retention.DOCUMENTED_SQL[retention.COST_RULE.name]


def cost(at: dt.datetime, usd: str = "0.010000", user: str | None = "u1", latency: int | None = 100) -> CostEvent:
    return CostEvent(model="claude-sonnet-5-20260203", provider="anthropic", input_tokens=10, output_tokens=5,
                     cost_usd=usd, source="agent", user_id=user, latency_ms=latency, timestamp=at)


async def summary(engine: AsyncEngine) -> list[tuple[Any, ...]]:
    async with engine.connect() as conn:
        rows = await conn.execute(text(
            "SELECT date, user_id, source, model, call_count, total_input_tokens, total_output_tokens, "
            "total_cost_usd, round(avg_latency_ms, 6) FROM jedisos.daily_cost_summary ORDER BY 1, 2, 3, 4"))
        return [tuple(r) for r in rows]


def test_policy_holds_the_design_windows_once() -> None:
    """Design §7's windows as data (the capacity model projects from the same rules)."""
    assert [(r.name, r.keep.days) for r in retention.POLICY] == [
        ("audit_logs", 90), ("cost_tracking", 365), ("langgraph_threads", 30)]
    assert set(retention.AUDIT_RULE.only_severities) < set(validation.SEVERITIES)
    assert retention.AUDIT_RULE.description == "debug/info older than 90 days (warning and above kept)"
    assert retention.COST_RULE.description == ("older than 365 days, rolled into daily_cost_rollup by the delete's "
                                               "trigger")
    assert "('debug', 'info')" in retention.audit_count_sql("jedisos")


BOUNDARY = [("e89", "info", 89), ("e90", "info", 90), ("e91", "info", 91), ("d91", "debug", 91),
            ("w91", "warning", 91), ("e130", "info", 130), ("d400", "debug", 400), ("c400", "critical", 400)]
"""Audit rows (event type, severity, days before NOW) around §7's 90-day window: cutoff 2026-03-03 12:00."""
BOUNDARY_LEFT: dict[designs.Method, set[str]] = {
    "batched-delete": {"e89", "e90", "w91", "c400"},
    # A month goes once all of it is past the cutoff (runtime/partitions.py): March, the cutoff's month, stays
    # until July, so e91/d91 outlive the window by up to a month; January's e130 and older are gone.
    "partition-drop": {"e89", "e90", "e91", "d91", "w91", "c400"},
}
"""What each way of carrying out §7's audit rule leaves of :data:`BOUNDARY`."""


@pytest.mark.claim("S7-audit-retention")
async def test_audit_boundary_89_days_stays_91_goes_warning_stays(clean: AsyncEngine, design: designs.Design,
                                                                  claim: ClaimRecorder) -> None:
    """Design §7: debug/info older than 90 days are deleted; warning and above are kept. Judged on the suite's
    design, carried out its own way (``Design.purge``): row by row for head's batched DELETE, a month at a time
    for the partitioned design's partition drop."""
    method = design.retention[retention.AUDIT_RULE.name].method
    if method not in BOUNDARY_LEFT:
        pytest.skip(f"the {design.name} design's audit retention ({method}) runs §7's DELETE as written against "
                    "the server's clock: test_design_audit_retention_verbatim_keeps_warning_and_above judges it")
    await make_room(clean, design, first=NOW - 400 * DAY, last=NOW)
    repo = AuditLogRepository(clean)
    await repo.record_many([AuditEvent(name, severity=severity, timestamp=NOW - days * DAY)
                            for name, severity, days in BOUNDARY])
    result = await design.purge(clean, retention.AUDIT_RULE.name, now=NOW, rest=0)
    left = {r.event_type for r in await repo.query()}
    assert left == BOUNDARY_LEFT[method], f"{design.name} ({method}) left {sorted(left)}"
    assert result.rows == len(BOUNDARY) - len(left)
    longer = sorted(BOUNDARY_LEFT[method] - BOUNDARY_LEFT["batched-delete"])
    claim.holds(f"{design.name}'s audit retention ({method}) removed {result.rows} of {len(BOUNDARY)} rows and kept "
                "every warning/critical row up to 400 days old and every row up to 90 days old"
                + (f"; {', '.join(longer)} (in the cutoff's month) stay until that whole month is past the window"
                   if longer else ""), removed=result.rows, kept=len(left))


async def test_audit_purge_is_batched_and_resumable_after_a_crash(clean: AsyncEngine, design: designs.Design) -> None:
    await make_room(clean, design, first=NOW - 500 * DAY, last=NOW)
    repo = AuditLogRepository(clean)
    await repo.record_many([AuditEvent("old", timestamp=NOW - 100 * DAY - i * dt.timedelta(seconds=1))
                            for i in range(1000)] + [AuditEvent("alarm", severity="error", timestamp=NOW - 200 * DAY)])

    def crash(rule: str, rows: int) -> None:
        raise RuntimeError("killed after the first batch")

    with pytest.raises(RuntimeError, match="killed"):
        await retention.purge_audit_logs(clean, now=NOW, batch_size=300, on_batch=crash)
    assert await count(clean, "audit_logs") == 701  # one committed batch, nothing half-done
    result = await retention.purge_audit_logs(clean, now=NOW, batch_size=300)
    assert (result.rows, result.batches) == (700, 3)
    assert [r.event_type for r in await repo.query()] == ["alarm"]


async def test_audit_batches_step_past_kept_rows_interleaved_with_purged_ones(clean: AsyncEngine,
                                                                              design: designs.Design) -> None:
    await make_room(clean, design, first=NOW - 500 * DAY, last=NOW)
    repo = AuditLogRepository(clean)
    await repo.record_many([AuditEvent(f"e{i}", severity=("info", "warning", "debug", "critical")[i % 4],
                                       timestamp=NOW - 95 * DAY - i * dt.timedelta(minutes=1)) for i in range(400)])
    result = await retention.purge_audit_logs(clean, now=NOW, batch_size=7)
    assert result.rows == 200
    assert result.batches == 29  # ceil(200 / 7): no batch came back empty-handed before the end
    assert {r.severity for r in await repo.query()} == {"warning", "critical"}
    assert await count(clean, "audit_logs") == 200


@pytest.fixture
async def at_006(database_factory: DatabaseFactory, request: pytest.FixtureRequest) -> AsyncIterator[AsyncEngine]:
    """An engine on a new database at revision 006: the design's DDL, where §7's statements are run as written."""
    url = database_factory(request.node.name)
    await asyncio.to_thread(migrations.upgrade, url, "006")  # Alembic's env.py runs its own event loop
    engine = create_engine(url=url)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.mark.claim("S7-audit-retention")
async def test_design_audit_retention_verbatim_keeps_warning_and_above(at_006: AsyncEngine, design: designs.Design,
                                                                       claim: ClaimRecorder) -> None:
    """§7's audit DELETE, verbatim at revision 006: debug/info older than 90 days go, warning and above stay.
    The document's statement on the document's DDL, whichever design the suite built."""
    ages = (89, 91, 400)
    async with at_006.begin() as conn:
        for severity in validation.SEVERITIES:
            for days in ages:
                await conn.execute(text("INSERT INTO jedisos.audit_logs (timestamp, event_type, severity) "
                                        "VALUES (now() - make_interval(days => :d), :e, :s)"),
                                   {"d": days, "e": f"{severity}-{days}", "s": severity})
        deleted = (await conn.execute(text(DESIGN_AUDIT_RETENTION))).rowcount
    async with at_006.connect() as conn:
        left = set((await conn.execute(text("SELECT event_type FROM jedisos.audit_logs"))).scalars())
    purged = set(retention.AUDIT_RULE.only_severities)
    assert purged == {"debug", "info"}
    expected = {f"{s}-{d}" for s in validation.SEVERITIES for d in ages if s not in purged or d < 90}
    assert left == expected, f"after §7's DELETE expected {sorted(expected)}, the table held {sorted(left)}"
    kept = [s for s in validation.SEVERITIES if s not in purged]
    method = design.retention[retention.AUDIT_RULE.name].method
    how = ("" if method in ("documented-sql", "batched-delete") else
           f"; the {design.name} design does not run this DELETE ({method}), its own retention is judged by "
           "test_audit_boundary_89_days_stays_91_goes_warning_stays")
    claim.holds(f"§7's audit DELETE as written, on the document's DDL (revision 006, built for this check) removed "
                f"{deleted} of {len(ages) * len(validation.SEVERITIES)} rows (debug/info older than 90 days) and kept "
                f"every {'/'.join(kept)} row up to {max(ages)} days old{how}", deleted=deleted, kept=len(left))


@pytest.mark.claim("S4-audit-retention-30-days", shows="fails")
async def test_a_row_security_policy_deletes_nothing(at_006: AsyncEngine, claim: ClaimRecorder) -> None:
    """§4-3's optional `CREATE POLICY audit_retention`: a policy only filters which rows a query sees, so the
    31-day-old debug/info rows it is meant to remove are all still on disk (and §7 says 90 days, not 30)."""
    async with at_006.begin() as conn:
        for severity in ("debug", "info", "warning"):
            await conn.execute(text("INSERT INTO jedisos.audit_logs (timestamp, event_type, severity) "
                                    "VALUES (now() - interval '31 days', 'old', :s), (now(), 'new', :s)"),
                               {"s": severity})
        # The policy as §4-3 sketches it, for the application's role: rows visible only inside 30 days.
        await conn.execute(text("ALTER TABLE jedisos.audit_logs ENABLE ROW LEVEL SECURITY"))
        await conn.execute(text(
            "CREATE POLICY audit_retention ON jedisos.audit_logs USING "
            "(severity NOT IN ('debug', 'info') OR timestamp > now() - interval '30 days')"))
        await conn.execute(text("DROP ROLE IF EXISTS audit_policy_reader"))
        await conn.execute(text("CREATE ROLE audit_policy_reader"))
        await conn.execute(text("GRANT USAGE ON SCHEMA jedisos TO audit_policy_reader"))
        await conn.execute(text("GRANT SELECT ON jedisos.audit_logs TO audit_policy_reader"))
    try:
        async with at_006.begin() as conn:
            await conn.execute(text("SET LOCAL ROLE audit_policy_reader"))
            seen = int((await conn.execute(text("SELECT count(*) FROM jedisos.audit_logs"))).scalar_one())
        async with at_006.connect() as conn:
            stored = int((await conn.execute(text("SELECT count(*) FROM jedisos.audit_logs"))).scalar_one())
            expired = int((await conn.execute(text(
                "SELECT count(*) FROM jedisos.audit_logs WHERE severity IN ('debug', 'info') "
                "AND timestamp < now() - interval '30 days'"))).scalar_one())
    finally:
        async with at_006.begin() as conn:
            await conn.execute(text("DROP POLICY audit_retention ON jedisos.audit_logs"))
            await conn.execute(text("REVOKE ALL ON jedisos.audit_logs FROM audit_policy_reader"))
            await conn.execute(text("REVOKE ALL ON SCHEMA jedisos FROM audit_policy_reader"))
            await conn.execute(text("DROP ROLE audit_policy_reader"))
    assert seen == 4, f"the policy should hide the 2 expired debug/info rows from the reader of 6; it saw {seen}"
    assert (stored, expired) == (6, 2), f"a policy deletes nothing: {stored} rows stored, {expired} expired"
    claim.fails(f"with §4-3's policy in place a reader saw {seen} of {stored} rows, and all {expired} expired "
                "debug/info rows were still stored: a row-level security policy filters, it cannot delete "
                "(and §7 keeps them 90 days, not 30)",
                fix="retention is a DELETE: `jedisos-db retention run` (§7's 90-day window, batched)",
                rows_seen_by_reader=seen, rows_stored=stored, expired_still_stored=expired)


@pytest.mark.claim("S7-cost-retention-keeps-summary", shows="fails")
async def test_design_cost_retention_loses_daily_summary_history(at_006: AsyncEngine, claim: ClaimRecorder) -> None:
    """DESIGN.md "Where the seed is wrong": at revision 006 the view is plain, so §7's DELETE erases history."""
    old = dt.datetime.now(dt.UTC) - 400 * DAY
    async with at_006.begin() as conn:
        await conn.execute(text(
            "INSERT INTO jedisos.cost_tracking (timestamp, model, provider, cost_usd, source, user_id) "
            "VALUES (:t, 'm', 'p', 1.5, 'agent', 'u1'), (:t, 'm', 'p', 2.5, 'agent', 'u1')"), {"t": old})
    before = await summary(at_006)
    assert [r[7] for r in before] == [Decimal("4.000000")]
    async with at_006.begin() as conn:
        await conn.execute(text(DESIGN_COST_RETENTION))
    assert await summary(at_006) == []  # the history the design says is kept is gone
    claim.fails(f"at revision 006, §7's cost DELETE verbatim took daily_cost_summary from {len(before)} day "
                f"(${before[0][7]}) to none", fix="fixed at head by revision 009: an AFTER DELETE trigger rolls "
                "deleted rows into daily_cost_rollup, which the view reads since revision 007",
                summary_days_before=len(before), summary_days_after=0)


def _filled(n: int) -> list[Any]:
    """n generated cost rows over the last 400 days (models, sources, users mixed), plus system calls
    (NULL user) without a latency on days that also hold user rows."""
    now = dt.datetime.now(dt.UTC)
    rows: list[Any] = datagen.cost_rows(n, seed=7, users=4, start=now - 400 * DAY, span_days=400)
    rows += [cost(now - days * DAY, user=None, latency=None) for days in (399, 380, 380, 120)]
    return rows


async def test_design_cost_retention_verbatim_keeps_daily_summary_history_on_head(clean: AsyncEngine) -> None:
    """Design §7's own DELETE, run by hand on a filled table at head: revision 009's trigger rolls every
    deleted row up, so daily_cost_summary answers exactly as before (issue 11, point 8)."""
    await CostRepository(clean).record_many(_filled(1000))
    before = await summary(clean)
    live = await count(clean, "cost_tracking")
    async with clean.begin() as conn:
        deleted = (await conn.execute(text(DESIGN_COST_RETENTION))).rowcount
    print(f"\n[rollup] design DELETE removed {deleted} of {live} rows; summary days before "
          f"{len(before)}, after {len(await summary(clean))}; rollup rows {await count(clean, 'daily_cost_rollup')}")
    assert 0 < deleted < live
    assert await count(clean, "cost_tracking") == live - deleted
    assert await summary(clean) == before
    # Any other delete too: everything left, in one statement; then our retention finds nothing to do.
    async with clean.begin() as conn:
        await conn.execute(text("DELETE FROM jedisos.cost_tracking"))
    assert await count(clean, "cost_tracking") == 0
    assert await summary(clean) == before
    assert (await retention.roll_up_cost_tracking(clean, now=NOW)).rows == 0


async def test_concurrent_deletes_roll_each_row_up_once(clean: AsyncEngine, migrated_db: DatabaseURL) -> None:
    """Two sessions deleting overlapping rows at once: a row is in the transition table of the one
    statement that deleted it, so the totals neither double nor drop."""
    await CostRepository(clean).record_many(_filled(600))
    before = await summary(clean)
    other = create_engine(url=migrated_db)
    try:
        async def delete(engine: AsyncEngine, where: str) -> int:
            async with engine.begin() as conn:
                return (await conn.execute(text(f"DELETE FROM jedisos.cost_tracking WHERE {where}"))).rowcount

        first, second = await asyncio.gather(delete(clean, "timestamp < now() - interval '200 days'"),
                                             delete(other, "user_id = 'user-00001' OR user_id IS NULL"))
    finally:
        await other.dispose()
    assert first > 0
    assert second > 0
    assert first + second == 604 - await count(clean, "cost_tracking")
    assert await summary(clean) == before


async def test_a_role_that_may_delete_but_not_roll_up_gets_an_error_not_a_loss(clean: AsyncEngine,
                                                                               migrated_db: DatabaseURL) -> None:
    """The trigger runs with the deleting role's rights: without INSERT on the rollup the DELETE fails whole."""
    await CostRepository(clean).record_many(_filled(50))
    before = await summary(clean)
    role = f"cost_deleter_{secrets.token_hex(3)}"
    with connect(migrated_db) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
        conn.execute(f"GRANT USAGE ON SCHEMA jedisos TO {role}")
        conn.execute(f"GRANT SELECT, DELETE ON jedisos.cost_tracking TO {role}")
    try:
        with (connect(migrated_db.with_user(role)) as conn,
              pytest.raises(psycopg.errors.InsufficientPrivilege, match="daily_cost_rollup")):
            conn.execute(DESIGN_COST_RETENTION)
    finally:
        with connect(migrated_db) as conn:
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")
    assert await count(clean, "cost_tracking") == 54
    assert await summary(clean) == before


async def test_retention_refuses_to_delete_costs_below_revision_009(database_factory: DatabaseFactory) -> None:
    """Without the trigger a delete would lose history again: retention stops with a typed error."""
    url = database_factory("cost_at_008")
    await asyncio.to_thread(migrations.upgrade, url, "008")
    engine = create_engine(url=url)
    try:
        await CostRepository(engine).record_many([cost(NOW - 400 * DAY)])
        with pytest.raises(MigrationError, match="cost_tracking_roll_up_deleted trigger"):
            await retention.roll_up_cost_tracking(engine, now=NOW)
        assert await count(engine, "cost_tracking") == 1
    finally:
        await engine.dispose()


async def test_cost_retention_on_head_keeps_daily_summary_history(clean: AsyncEngine) -> None:
    """Revision 007 + our retention: old rows go, daily_cost_summary answers exactly as before (design §7)."""
    repo = CostRepository(clean)
    events = [cost(NOW - 400 * DAY + i * dt.timedelta(minutes=7), usd=f"0.{i:06d}", user=f"u{i % 3}",
                   latency=None if i % 5 == 0 else 50 + i) for i in range(600)]
    events += [cost(NOW - 10 * DAY), cost(NOW - 365 * DAY + dt.timedelta(hours=1))]
    await repo.record_many(events)
    before = await summary(clean)
    result = await retention.roll_up_cost_tracking(clean, now=NOW, batch_size=128)
    assert result.rows == 600
    assert result.batches == 5
    assert await count(clean, "cost_tracking") == 2
    assert await count(clean, "daily_cost_rollup") > 0
    assert await summary(clean) == before
    # A second run finds nothing and changes nothing.
    assert (await retention.roll_up_cost_tracking(clean, now=NOW)).rows == 0
    assert await summary(clean) == before


async def test_cost_rollup_crash_midway_keeps_totals_and_rerun_finishes(clean: AsyncEngine,
                                                                        design: designs.Design) -> None:
    await make_room(clean, design, first=NOW - 500 * DAY, last=NOW)
    repo = CostRepository(clean)
    await repo.record_many([cost(NOW - 500 * DAY + i * dt.timedelta(hours=5)) for i in range(300)])
    before = await summary(clean)

    def crash(rule: str, rows: int) -> None:
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        await retention.roll_up_cost_tracking(clean, now=NOW, batch_size=100, on_batch=crash)
    assert await count(clean, "cost_tracking") == 200
    assert await summary(clean) == before  # each row is live or rolled up, never both, never neither
    await retention.roll_up_cost_tracking(clean, now=NOW, batch_size=100)
    assert await count(clean, "cost_tracking") == 0
    assert await summary(clean) == before


async def test_late_row_for_an_already_rolled_up_day_merges_into_it(clean: AsyncEngine) -> None:
    repo = CostRepository(clean)
    day = NOW - 400 * DAY
    await repo.record(cost(day, usd="1.000000"))
    await retention.roll_up_cost_tracking(clean, now=NOW)
    await repo.record(cost(day + dt.timedelta(minutes=1), usd="2.000000", latency=300))
    await retention.roll_up_cost_tracking(clean, now=NOW)
    [row] = await summary(clean)
    assert (row[4], row[7], row[8]) == (2, Decimal("3.000000"), Decimal(200))
    assert await count(clean, "daily_cost_rollup") == 1


async def test_dry_run_counts_per_rule_and_changes_nothing(clean: AsyncEngine, design: designs.Design) -> None:
    await make_room(clean, design, first=NOW - 500 * DAY, last=NOW)
    await AuditLogRepository(clean).record_many([AuditEvent("x", timestamp=NOW - 100 * DAY)] * 3)
    await CostRepository(clean).record_many([cost(NOW - 400 * DAY)] * 4)
    await ThreadRegistry(clean).touch("jedisos-idle", at=NOW - 31 * DAY)
    report = await retention.run(clean, now=NOW, dry_run=True)
    assert {r.rule: r.rows for r in report.results} == {"audit_logs": 3, "cost_tracking": 4,
                                                        "langgraph_threads": 1}
    assert all(r.dry_run and r.batches == 0 for r in report.results)
    assert (await count(clean, "audit_logs"), await count(clean, "cost_tracking"),
            await count(clean, "langgraph_threads")) == (3, 4, 1)
    assert await count(clean, "daily_cost_rollup") == 0


async def test_without_a_checkpointer_idle_threads_are_an_error_not_silently_kept(clean: AsyncEngine) -> None:
    await ThreadRegistry(clean).touch("jedisos-idle", at=NOW - 31 * DAY)
    with pytest.raises(ValueError, match="checkpointer"):
        await retention.purge_idle_threads(clean, None, now=NOW)


async def _explain(engine: AsyncEngine, sql: str, params: dict[str, Any]) -> str:
    async with engine.connect() as conn:
        return "\n".join((await conn.execute(text("EXPLAIN " + sql), params)).scalars())


@pytest.mark.claim("S7-audit-retention")
async def test_each_retention_delete_uses_an_index(clean: AsyncEngine, design: designs.Design,
                                                   claim: ClaimRecorder) -> None:
    """Design §4-3/§4-4 indexes (idx_audit_timestamp, idx_cost_timestamp) and 008's serve the deletes. A rule the
    suite's design carries out by dropping whole months (partition-drop) runs no row DELETE to plan: it is named
    in the evidence, and the rules that do delete rows are planned."""
    now = dt.datetime.now(dt.UTC)
    await make_room(clean, design, first=now - 420 * DAY, last=now)
    async with clean.begin() as conn:
        # A realistic shape: most rows are recent, a few are past their retention.
        await conn.execute(text("""
            INSERT INTO jedisos.audit_logs (timestamp, event_type, severity)
            SELECT now() - make_interval(mins => g), 'e', CASE WHEN g % 7 = 0 THEN 'warning' ELSE 'info' END
            FROM generate_series(1, 30000) AS g"""))
        await conn.execute(text("""
            INSERT INTO jedisos.cost_tracking (timestamp, model, provider, source)
            SELECT now() - make_interval(mins => g * 10), 'm', 'p', 'agent' FROM generate_series(1, 60000) AS g"""))
        await conn.execute(text("""
            INSERT INTO jedisos.langgraph_threads (thread_id, last_active_at)
            SELECT 't' || g, now() - make_interval(mins => g) FROM generate_series(1, 50000) AS g"""))
        await conn.execute(text("ANALYZE jedisos.audit_logs, jedisos.cost_tracking, jedisos.langgraph_threads"))
    deletes = {
        retention.AUDIT_RULE.name: ("idx_audit_timestamp", retention.audit_delete_sql("jedisos"),
                                    {"cutoff": now - retention.AUDIT_RULE.keep, "after": retention.EARLIEST,
                                     "batch": 5000}),
        retention.COST_RULE.name: ("idx_cost_timestamp", retention.cost_delete_sql("jedisos"),
                                   {"cutoff": now - retention.COST_RULE.keep, "batch": 5000}),
        retention.THREAD_RULE.name: ("idx_langgraph_threads_last_active", str(ThreadRegistry.idle_statement(
            now - retention.THREAD_RULE.keep, 100).compile(dialect=clean.dialect,
                                                           compile_kwargs={"literal_binds": True})), {}),
    }
    dropped = sorted(rule for rule, spec in design.retention.items() if spec.method == "partition-drop")
    plans = {rule: (index, await _explain(clean, sql, params))
             for rule, (index, sql, params) in deletes.items() if rule not in dropped}
    assert retention.THREAD_RULE.name in plans  # no design drops threads by partition: one plan is always judged
    for rule, (index, plan) in plans.items():
        assert index in plan, f"{rule}: {plan}"
        assert "Seq Scan" not in plan, f"{rule}: {plan}"
    claim.holds("each retention DELETE is served by its index: " + ", ".join(f"{rule} by {index}" for rule, (index, _)
                                                                            in plans.items())
                + (f"; {design.name} removes {' and '.join(dropped)} by dropping whole months, no row DELETE to plan"
                   if dropped else ""), planned=len(plans))


# --- LangGraph threads, through the real AsyncPostgresSaver ------------------------------------

class _State(TypedDict):
    messages: Annotated[list[str], operator.add]


@pytest.fixture(scope="module")
async def saver(migrated_db: DatabaseURL) -> AsyncIterator[AsyncPostgresSaver]:
    """An AsyncPostgresSaver confined to the langgraph schema (DESIGN.md, verified facts)."""
    pytest.importorskip("langgraph.checkpoint.postgres.aio", reason="needs the langgraph extra")
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    from psycopg import AsyncConnection
    from psycopg.rows import DictRow, dict_row
    from psycopg_pool import AsyncConnectionPool

    with connect(migrated_db) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS langgraph")
    kwargs = {"autocommit": True, "prepare_threshold": None, "row_factory": dict_row,
              "options": "-c search_path=langgraph"}
    async with AsyncConnectionPool(migrated_db.libpq(), connection_class=AsyncConnection[DictRow], kwargs=kwargs,
                                   min_size=1, max_size=2, open=False) as pool:
        checkpointer = AsyncPostgresSaver(pool)
        await checkpointer.setup()
        yield checkpointer


async def test_idle_threads_are_deleted_through_the_checkpointer_api(clean: AsyncEngine,
                                                                    saver: AsyncPostgresSaver) -> None:
    """Design §7: threads idle 30 days are cleaned up through the LangGraph API, never by SQL."""
    from langgraph.graph import START, StateGraph

    builder = StateGraph(_State)
    builder.add_node("echo", lambda state: {"messages": ["pong"]})
    builder.add_edge(START, "echo")
    graph = builder.compile(checkpointer=saver)
    registry = ThreadRegistry(clean)
    for thread_id, idle_days in (("jedisos-old", 31), ("jedisos-recent", 29)):
        await graph.ainvoke({"messages": ["ping"]}, {"configurable": {"thread_id": thread_id}})
        await registry.touch(thread_id, user_id="u1", at=NOW - idle_days * DAY)

    def config(tid: str) -> RunnableConfig:
        return {"configurable": {"thread_id": tid}}

    assert await saver.aget_tuple(config("jedisos-old")) is not None
    result = await retention.purge_idle_threads(clean, saver, now=NOW)
    assert result.rows == 1
    assert await saver.aget_tuple(config("jedisos-old")) is None
    assert await saver.aget_tuple(config("jedisos-recent")) is not None
    assert await registry.idle(NOW) == ["jedisos-recent"]
    # Rerun after a crash between adelete_thread and the registry delete: deleting again is harmless.
    await registry.touch("jedisos-old", at=NOW - 40 * DAY)
    assert (await retention.purge_idle_threads(clean, saver, now=NOW)).rows == 1


def test_cli_dry_run_prints_per_rule_counts_then_run_applies(migrated_db: DatabaseURL) -> None:
    """`jedisos-db retention run --dry-run --dsn URL` counts; without --dry-run it deletes."""
    with connect(migrated_db) as conn:
        conn.execute("TRUNCATE jedisos.audit_logs, jedisos.cost_tracking, jedisos.daily_cost_rollup, "
                     "jedisos.langgraph_threads")
        conn.execute("INSERT INTO jedisos.audit_logs (timestamp, event_type, severity) "
                     "SELECT now() - interval '120 days', 'x', 'info' FROM generate_series(1, 5)")
        conn.execute("INSERT INTO jedisos.cost_tracking (timestamp, model, provider, source) "
                     "VALUES (now() - interval '400 days', 'm', 'p', 'agent')")
    runner = CliRunner()
    dry = runner.invoke(app, ["retention", "run", "--dry-run", "--dsn", migrated_db.libpq()])
    assert dry.exit_code == 0, dry.output
    assert row_of(dry.output, "rule")[:3] == ["rule", "would delete", "batches"]
    assert row_of(dry.output, "audit_logs")[1:3] == ["5", "-"]
    assert row_of(dry.output, "cost_tracking")[1:3] == ["1", "-"]
    assert row_of(dry.output, "langgraph_threads")[1:3] == ["0", "-"]
    with connect(migrated_db) as conn:
        assert conn.execute("SELECT count(*) FROM jedisos.audit_logs").fetchone() == (5,)
    real = runner.invoke(app, ["retention", "run", "--dsn", migrated_db.libpq()])
    assert real.exit_code == 0, real.output
    assert row_of(real.output, "rule")[1] == "deleted"
    assert row_of(real.output, "audit_logs")[1:3] == ["5", "1"]
    with connect(migrated_db) as conn:
        assert conn.execute("SELECT count(*) FROM jedisos.audit_logs").fetchone() == (0,)
        assert conn.execute("SELECT sum(call_count) FROM jedisos.daily_cost_summary").fetchone() == (1,)


def test_cli_bad_dsn_is_one_line() -> None:
    result = CliRunner().invoke(app, ["retention", "run", "--dry-run", "--dsn", "mysql://x/y"])
    assert result.exit_code == 1
    assert "--dsn" in result.output


def test_revision_007_downgrades_to_the_design_view_and_refuses_to_drop_kept_history(
        database_factory: DatabaseFactory) -> None:
    """007's downgrade restores 002's view; with rolled-up days present it refuses instead of losing them."""
    url = database_factory("down_007")
    migrations.upgrade(url)
    migrations.downgrade(url, "006")
    with connect(url) as conn:
        view = conn.execute("SELECT pg_get_viewdef('jedisos.daily_cost_summary')").fetchone()
        assert view is not None
        assert "daily_cost_rollup" not in view[0]
        assert conn.execute("SELECT to_regclass('jedisos.daily_cost_rollup')").fetchone() == (None,)
        assert conn.execute("SELECT to_regclass('jedisos.langgraph_threads')").fetchone() == (None,)
    migrations.upgrade(url)
    with connect(url) as conn:
        conn.execute("INSERT INTO jedisos.daily_cost_rollup (date, source, model, call_count, total_input_tokens, "
                     "total_output_tokens, total_cost_usd) VALUES ('2025-01-01', 'agent', 'm', 1, 1, 1, 1)")
    with pytest.raises(Exception, match="rolled-up day rows"):
        migrations.downgrade(url, "006")
    assert migrations.current(url) == migrations.head()
    with connect(url) as conn:  # all of head, 010's indexes included (its downgrade no longer commits part-way)
        assert conn.execute("SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                            "WHERE c.relname LIKE '%idempotency_key' AND i.indisvalid").fetchone() == (2,)
