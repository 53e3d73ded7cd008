"""Measurement ``retention``: removing expired audit rows the design's way while one writer inserts
(issue 10, point 3).

The retention race of :mod:`jedisos_db.harness.retention_race`, run :data:`RACES` times for the design
(:data:`QUICK_RACES` with ``ctx.quick``), each in a fresh database of its own: :data:`ROWS` expired
debug/info audit rows (:data:`QUICK_ROWS` with ``ctx.quick``) plus 1 % warning rows of the same age, removed
by the design's method (batched DELETE, the documented DELETE, or whole partitions dropped) while one writer
inserts audit events back to back through the repository.

One race's insert p99 during a purge of a few seconds swings by ±20 % with the shared machine's load, so the
figures are the median race's: the race whose ``p99_during_x_idle`` is the (upper) median gives the latency
figures and curves, ``removal_s`` and ``purge_s`` are the (upper) medians over races, every race's ratio and
removal time are listed (``*_runs``), and ``acknowledged``, ``lost``, ``expired_left`` and ``kept_lost`` add
up over all races (one lost row in any race shows).

The cost rule too, in a second fresh database, without a writer: ``rows / COST_SHARE`` cost rows past the
design's window, removed the design's way (batched DELETE through revision 009's rollup trigger, the
documented bare DELETE, or months emptied through the trigger and dropped); ``cost_calls_in_summary`` is how
many of those calls ``daily_cost_summary`` still counts afterwards (all of them, when the design keeps the
history its retention deletes).

Issue 10's goals (the partitioned design ≥ 100× faster than recommended's batched DELETE, insert p99
during the purge ≤ 1.2× idle, 0 acknowledged rows lost) compare designs: the report judges them across
the designs of a run; this module only measures one.
"""

from __future__ import annotations

import asyncio
import dataclasses
import statistics
import time
from collections.abc import Sequence
from typing import Final

from sqlalchemy import text

from jedisos_db.harness import retention_race
from jedisos_db.harness.designs import Design
from jedisos_db.harness.measure import Context, Measured, Point
from jedisos_db.harness.verify.verdicts import Figure
from jedisos_db.ops import provision
from jedisos_db.runtime.db.engine import create_engine
from jedisos_db.runtime.errors import StateError
from jedisos_db.runtime.owners import SCHEMA
from jedisos_db.runtime.repositories import validation
from jedisos_db.runtime.retention import COST_RULE
from jedisos_db.runtime.urls import DatabaseURL

ROWS: Final = 1_000_000
QUICK_ROWS: Final = 100_000
RACES: Final = 5
QUICK_RACES: Final = 3
COST_SHARE: Final = 10
"""The cost rule runs on this many times fewer rows than the audit race (its purge is not what issue 10 times)."""


def measure(design: Design, ctx: Context) -> Measured:
    rows, count = (QUICK_ROWS, QUICK_RACES) if ctx.quick else (ROWS, RACES)
    progress = ctx.progress or (lambda done, total: None)
    progress(0, count + 1)
    races = []
    for i in range(count):
        races += asyncio.run(retention_race.compare(ctx.server, [design], rows=rows))
        progress(i + 1, count + 1)
    with provision.scratch_database(ctx.server, design.scratch_name("cost_purge")) as url:
        design.build(url)
        cost = asyncio.run(cost_purge(url, design, rows // COST_SHARE))
    progress(count + 1, count + 1)
    measured = from_races(races)
    notes = [f"cost rule: {cost['cost_rows']:,} cost rows past the window removed by "
             f"{design.retention[COST_RULE.name].method}, no writer; cost_removal_s: until no query sees them (rolled "
             "up into daily_cost_summary first), cost_purge_s: until the purge returned."]
    if cost["cost_calls_in_summary"] != cost["cost_rows"]:
        notes.append(f"daily_cost_summary counts {cost['cost_calls_in_summary']:,} of the {cost['cost_rows']:,} "
                     "calls the cost rule removed: the design loses their history.")
    return dataclasses.replace(measured, figures={**measured.figures, **cost}, notes=(*measured.notes, *notes))


async def cost_purge(url: DatabaseURL, design: Design, rows: int) -> dict[str, Figure]:
    """``rows`` expired cost rows (server-side, one statement) removed by the design's cost rule, timed."""
    engine = create_engine(url=url, pool_size=2, max_overflow=0, application_name="jedisos-db-measure-cost",
                           statement_timeout_ms=0)
    try:
        start, end = await retention_race.expired_span(engine, design, COST_RULE.name)
        async with engine.begin() as conn:
            await conn.execute(text(f"""
                INSERT INTO {SCHEMA}.cost_tracking ("timestamp", model, provider, input_tokens, output_tokens,
                                                    total_tokens, cost_usd, source, user_id, latency_ms, status)
                SELECT CAST(:start AS timestamptz) + i * CAST(:step AS interval), 'gpt-5-mini', 'openai', 1000,
                       100, 1100, 0.0045, :source, 'user-' || (i % 100), 800, :status
                FROM generate_series(0, :rows - 1) AS i"""),
                {"start": start, "step": (end - start) / rows, "rows": rows, "source": validation.COST_SOURCES[0],
                 "status": validation.COST_STATUSES[0]})
        async with engine.execution_options(isolation_level="AUTOCOMMIT").connect() as conn:
            await conn.execute(text(f"VACUUM ANALYZE {SCHEMA}.cost_tracking"))
        began = time.perf_counter()
        removed_at: list[float] = []
        result = await design.purge(engine, COST_RULE.name, on_removed=lambda: removed_at.append(time.perf_counter()))
        took = time.perf_counter() - began
        async with engine.connect() as conn:
            left = (await conn.execute(text(f"SELECT count(*) FROM {SCHEMA}.cost_tracking"))).scalar_one()
            # The database holds no other cost rows: every call the summary counts is one of these.
            summarised = (await conn.execute(text(
                f"SELECT coalesce(sum(call_count), 0) FROM {SCHEMA}.daily_cost_summary"))).scalar_one()
    finally:
        await engine.dispose()
    return {"cost_rows": rows, "cost_removal_s": round(removed_at[0] - began, 4), "cost_purge_s": round(took, 4),
            "cost_removed": result.rows, "cost_left": int(left), "cost_calls_in_summary": int(summarised)}


def from_races(races: Sequence[retention_race.RaceResult]) -> Measured:
    """Several races of one design as the report's figures (the module doc says which race gives what)."""
    if not races:
        raise StateError("retention: no race to report")
    ranked = sorted(range(len(races)), key=lambda i: races[i].p99_ratio)
    shown = ranked[len(ranked) // 2]
    measured = from_race(races[shown])
    summed = ("acknowledged", "lost", "expired_left", "kept_lost")
    figures: dict[str, Figure] = {
        **measured.figures, "races": len(races),
        "removal_s": round(statistics.median_high(r.removal_s for r in races), 4),
        "purge_s": round(statistics.median_high(r.purge_s for r in races), 4),
        "removal_s_runs": ", ".join(f"{r.removal_s:.4g}" for r in races),
        "p99_during_x_idle_runs": ", ".join(f"{r.p99_ratio:.3f}" for r in races),
        **{name: sum(int(getattr(r, name)) for r in races) for name in summed}}
    notes = measured.notes
    if len(races) > 1:
        notes = (f"{len(races)} races, each in a fresh database: insert latencies, their curves and "
                 f"p99_during_x_idle are race {shown + 1}'s, whose p99 ratio is the (upper) median; removal_s and "
                 f"purge_s are the (upper) medians; {', '.join(summed)} add up over all races.", *notes)
    return Measured(figures, measured.series, notes)


def from_race(race: retention_race.RaceResult) -> Measured:
    """The race's result as the report's figures, its insert times as curves (milliseconds per insert)."""
    figures: dict[str, Figure] = {
        "rows": race.rows, "method": race.method, "removal_s": round(race.removal_s, 4),
        "purge_s": round(race.purge_s, 4),
        "insert_p50_idle_ms": round(race.idle.p50_ms, 3), "insert_p99_idle_ms": round(race.idle.p99_ms, 3),
        "insert_p50_during_ms": round(race.during.p50_ms, 3), "insert_p99_during_ms": round(race.during.p99_ms, 3),
        "p99_during_x_idle": round(race.p99_ratio, 3), "inserts_during": len(race.during.samples),
        "insert_p99_idle_same_n_ms": round(race.idle_p99_same_n_ms, 3),
        "p99_during_x_idle_same_n": round(race.p99_ratio_same_n, 3),
        "inserts_during_over_idle_p99": race.over_idle_p99,
        "acknowledged": race.acknowledged, "lost": race.lost, "expired_left": race.expired_left,
        "kept_lost": race.kept_lost,
    }
    series: dict[str, list[Point]] = {
        "insert_ms_idle": [(float(i), s * 1000) for i, s in enumerate(race.idle.samples)],
        "insert_ms_during": [(float(i), s * 1000) for i, s in enumerate(race.during.samples)],
    }
    notes = [f"{race.rows:,} expired debug/info audit rows (and {race.rows // retention_race.KEPT_SHARE:,} warning "
             f"rows of the same age, which the rule keeps) removed by {race.method} while one writer inserted "
             "through the audit repository; removal_s: until no query sees them, purge_s: until the purge "
             "returned (a partition drop then also dropped the detached months)."]
    notes.append(f"inserts_during_over_idle_p99: {race.over_idle_p99} of the {len(race.during.samples)} inserts "
                 "during the purge were slower than idle's p99 (about 1 % of them when the purge slows none).")
    if len(race.during.samples) < 100:
        notes.append(f"only {len(race.during.samples)} inserts fell inside the removal: their p99 is their "
                     "maximum, and it follows the machine's load; p99_during_x_idle_same_n compares it with idle's "
                     "p99 at that sample size (the median of the maxima of idle runs of as many inserts).")
    return Measured(figures, series, tuple(notes))
