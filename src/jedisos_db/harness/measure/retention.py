"""Measurement ``retention``: removing expired audit rows the design's way while one writer inserts
(issue 10, point 3).

The retention race of :mod:`jedisos_db.harness.retention_race`, run once for the design in a fresh database
of its own: :data:`ROWS` expired debug/info audit rows (:data:`QUICK_ROWS` with ``ctx.quick``) plus 1 %
warning rows of the same age, removed by the design's method (batched DELETE, the documented DELETE, or
whole partitions dropped) while one writer inserts audit events back to back through the repository.

Issue 10's goals (the partitioned design ≥ 100× faster than recommended's batched DELETE, insert p99
during the purge ≤ 1.2× idle, 0 acknowledged rows lost) compare designs: the report judges them across
the designs of a run; this module only measures one.
"""

from __future__ import annotations

import asyncio
from typing import Final

from jedisos_db.harness import retention_race
from jedisos_db.harness.designs import Design
from jedisos_db.harness.measure import Context, Measured, Point
from jedisos_db.harness.verify.verdicts import Figure

ROWS: Final = 1_000_000
QUICK_ROWS: Final = 100_000


def measure(design: Design, ctx: Context) -> Measured:
    rows = QUICK_ROWS if ctx.quick else ROWS
    if ctx.progress is not None:
        ctx.progress(0, 1)
    [race] = asyncio.run(retention_race.compare(ctx.server, [design], rows=rows))
    if ctx.progress is not None:
        ctx.progress(1, 1)
    return from_race(race)


def from_race(race: retention_race.RaceResult) -> Measured:
    """The race's result as the report's figures, its insert times as curves (milliseconds per insert)."""
    figures: dict[str, Figure] = {
        "rows": race.rows, "method": race.method, "removal_s": round(race.removal_s, 4),
        "purge_s": round(race.purge_s, 4),
        "insert_p50_idle_ms": round(race.idle.p50_ms, 3), "insert_p99_idle_ms": round(race.idle.p99_ms, 3),
        "insert_p50_during_ms": round(race.during.p50_ms, 3), "insert_p99_during_ms": round(race.during.p99_ms, 3),
        "p99_during_x_idle": round(race.p99_ratio, 3), "inserts_during": len(race.during.samples),
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
    if len(race.during.samples) < 100:
        notes.append(f"only {len(race.during.samples)} inserts fell inside the removal: their p99 is their "
                     "maximum, and it follows the machine's load.")
    return Measured(figures, series, tuple(notes))
