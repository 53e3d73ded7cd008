"""Retention under load, design against design: remove N expired audit rows while one writer inserts.

Issue 10's retention figures: for each design, in a fresh database built by the design, ``rows`` expired
``debug``/``info`` audit rows are filled server-side (``generate_series``; plus 1 % ``warning`` rows of the
same age, which the rule keeps), then removed the way the design carries out its audit rule
(:meth:`jedisos_db.harness.designs.Design.purge`: batched DELETE, the documented single DELETE, or whole
partitions dropped), while ONE writer inserts audit events through the application's repository
(:class:`~jedisos_db.runtime.repositories.audit.AuditLogRepository`, the same code for every design),
back to back. Reported: the removal's wall time, the writer's insert latency p50/p99 while idle (just
before) and during the removal, and how many acknowledged inserts are missing afterwards (must be 0).

The writer runs in a thread with its own event loop and engine, so the purge's Python work never
delays its clock. Everything waits on conditions with a timeout, never on a fixed sleep.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from jedisos_db.harness.designs import Design
from jedisos_db.harness.latency import Samples
from jedisos_db.ops import provision
from jedisos_db.runtime import partitions
from jedisos_db.runtime.db.engine import create_engine
from jedisos_db.runtime.errors import LockTimeoutError, StateError
from jedisos_db.runtime.owners import SCHEMA
from jedisos_db.runtime.repositories import validation
from jedisos_db.runtime.repositories.audit import AuditEvent, AuditLogRepository
from jedisos_db.runtime.retention import AUDIT_RULE
from jedisos_db.runtime.urls import DatabaseURL

FILL_DAYS: Final = 60
"""The expired rows are spread over this many days, ending before the month the cutoff falls in, so every
one of them is past the window for a DELETE and in a month a partition drop may remove whole."""
KEPT_SHARE: Final = 100
"""One ``warning`` row (kept by the rule) for this many expired rows, in the same months."""
WAIT: Final = 600.0
"""Longest any phase may take before the race gives up (seconds)."""
IDLE_INSERTS: Final = 10_000
"""Timed inserts before the removal starts, by default (about 4 s back to back): idle's p99 at the during
window's sample size (:attr:`RaceResult.p99_ratio_same_n`) is then the median of many runs of a short purge's
size, not the lower of two (300 gave two runs of a partition drop's ~120 inserts, which biased that ratio
up), and idle lasts about as long as a batched DELETE of 1M rows and half as long as a rested partition drop
(:data:`~jedisos_db.runtime.partitions.DROP_REST`): enough samples that idle's p99 is no longer a few outliers'."""


@dataclass(frozen=True)
class RaceResult:
    design: str
    method: str
    rows: int
    """Expired rows filled."""
    removal_s: float
    """From the start until the expired rows are out of the table (no query sees them any more)."""
    purge_s: float
    """The whole purge: a partition drop also drops the detached months (their disk space goes back)."""
    idle: Samples
    """The writer's insert times just before the removal."""
    during: Samples
    """Its insert times while the purge ran."""
    acknowledged: int
    """Inserts the writer got an id back for."""
    lost: int
    """Acknowledged inserts missing afterwards."""
    expired_left: int
    """Expired debug/info rows still there after the removal (0 when it did its job)."""
    kept_lost: int
    """Warning rows of the same age that are gone (the rule keeps them: must be 0)."""

    @property
    def p99_ratio(self) -> float:
        """Insert p99 during the removal over p99 idle (issue 10's goal: ≤ 1.2 for the partitioned design)."""
        return self.during.p99_ms / self.idle.p99_ms

    @property
    def over_idle_p99(self) -> int:
        """Inserts during the removal slower than idle's p99: about 1 % of them when the purge slows none."""
        idle = self.idle.p99_ms / 1000
        return sum(1 for took in self.during.samples if took > idle)

    @property
    def idle_p99_same_n_ms(self) -> float:
        """Idle's p99 at the during window's sample size (:meth:`Samples.p99_ms_at`): a fast purge sees a few
        dozen inserts, whose p99 is their maximum. When the purge saw more inserts than idle did, both p99s are
        over thousands of samples and this is idle's p99."""
        n = len(self.during.samples)
        return self.idle.p99_ms if n > len(self.idle.samples) else self.idle.p99_ms_at(n)

    @property
    def p99_ratio_same_n(self) -> float:
        """:attr:`p99_ratio` with idle's p99 taken at the during window's sample size (:attr:`idle_p99_same_n_ms`)."""
        return self.during.p99_ms / self.idle_p99_same_n_ms


@dataclass
class _Writer:
    url: DatabaseURL
    idle_inserts: int
    purging: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)
    idle_done: threading.Event = field(default_factory=threading.Event)
    idle: list[float] = field(default_factory=list)
    during: list[float] = field(default_factory=list)
    acknowledged: list[int] = field(default_factory=list)
    error: BaseException | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._loop())
        except BaseException as exc:  # handed to the race, which raises it in the caller's thread
            self.error = exc
            self.idle_done.set()

    async def _loop(self) -> None:
        engine = create_engine(url=self.url, pool_size=1, max_overflow=0, application_name="jedisos-db-race-writer")
        repo = AuditLogRepository(engine)
        try:
            # Untimed: the first insert also connects and prepares the statement, which no later one does.
            self.acknowledged.append(await repo.record(AuditEvent("race_insert", severity="info", user_id="w")))
            while not self.stop.is_set():
                purging = self.purging.is_set()
                start = time.perf_counter()
                self.acknowledged.append(await repo.record(AuditEvent("race_insert", severity="info", user_id="w")))
                took = time.perf_counter() - start
                if purging and self.purging.is_set():
                    self.during.append(took)
                elif not purging:
                    self.idle.append(took)
                    if len(self.idle) >= self.idle_inserts:
                        self.idle_done.set()
        finally:
            await engine.dispose()


def _wait(event: threading.Event, what: str) -> None:
    if not event.wait(WAIT):
        raise LockTimeoutError(f"retention race: {what} did not happen within {WAIT:.0f} s")


async def _scalar(engine: AsyncEngine, sql: str, **params: object) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text(sql), params)).scalar_one())


async def expired_span(engine: AsyncEngine, design: Design, rule: str) -> tuple[dt.datetime, dt.datetime]:
    """:data:`FILL_DAYS` days ending before the month the design's cutoff for ``rule`` falls in (by the
    server's clock): every row stamped in them is expired for a DELETE and in a month a drop removes whole.
    A partitioned design gets the span's partitions."""
    async with engine.connect() as conn:
        now: dt.datetime = (await conn.execute(text("SELECT now()"))).scalar_one()
    cutoff = now - design.retention[rule].rule.keep
    end = dt.datetime.combine(partitions.month_of(cutoff), dt.time(), dt.UTC) - dt.timedelta(seconds=1)
    start = end - dt.timedelta(days=FILL_DAYS)
    if design.schema.partitioned:
        await partitions.ensure_partitions(engine, first=start, last=end)
    return start, end


async def fill_expired(engine: AsyncEngine, design: Design, rows: int) -> tuple[dt.datetime, dt.datetime]:
    """``rows`` expired debug/info audit rows (and 1 % warning rows) spread over :data:`FILL_DAYS` days that
    end before the month of the design's cutoff; returns that time span. Server-side, one statement."""
    start, end = await expired_span(engine, design, AUDIT_RULE.name)
    purged = list(AUDIT_RULE.only_severities)
    total = rows + rows // KEPT_SHARE
    step = (end - start) / total
    async with engine.begin() as conn:
        await conn.execute(text(f"""
            INSERT INTO {SCHEMA}.audit_logs ("timestamp", event_type, severity, user_id, channel, details)
            SELECT CAST(:start AS timestamptz) + i * CAST(:step AS interval), 'tool_executed',
                   CASE WHEN i % :kept = 0 THEN 'warning' ELSE (CAST(:purged AS text[]))[1 + i % :n] END,
                   'user-' || (i % 100), 'web', '{{}}'::jsonb
            FROM generate_series(0, :total - 1) AS i"""),
            {"start": start, "step": step, "kept": KEPT_SHARE + 1, "purged": purged, "n": len(purged),
             "total": total})
    async with engine.execution_options(isolation_level="AUTOCOMMIT").connect() as conn:
        await conn.execute(text(f"VACUUM ANALYZE {SCHEMA}.audit_logs"))
    return start, end


async def race(url: DatabaseURL, design: Design, *, rows: int, idle_inserts: int = IDLE_INSERTS) -> RaceResult:
    """Fill, then remove ``rows`` expired audit rows the design's way while one writer inserts."""
    validation.integer("rows", rows, low=KEPT_SHARE, high=100_000_000)
    validation.integer("idle_inserts", idle_inserts, low=10, high=1_000_000)
    engine = create_engine(url=url, pool_size=2, max_overflow=0, application_name="jedisos-db-race",
                           statement_timeout_ms=0)
    try:
        start, end = await fill_expired(engine, design, rows)
        span = {"start": start, "end": end}
        expired_sql = (f'SELECT count(*) FROM {SCHEMA}.audit_logs WHERE "timestamp" BETWEEN :start AND :end '
                       "AND severity = ANY(:sev)")
        purged, kept = list(AUDIT_RULE.only_severities), ["warning"]
        kept_before = await _scalar(engine, expired_sql, sev=kept, **span)
        writer = _Writer(url, idle_inserts)
        thread = threading.Thread(target=writer.run, name="retention-race-writer", daemon=True)
        thread.start()
        try:
            await asyncio.to_thread(_wait, writer.idle_done, f"{idle_inserts} idle inserts")
            if writer.error is not None:
                raise writer.error
            writer.purging.set()
            began = time.perf_counter()
            removed_at: list[float] = []
            # Not counted: a count would scan every dropped partition inside the timed purge; the rows
            # left afterwards (expired_left) say whether it removed them all.
            await design.purge(engine, AUDIT_RULE.name, count=False,
                               on_removed=lambda: removed_at.append(time.perf_counter()))
            finished = time.perf_counter()
            writer.purging.clear()
        finally:
            writer.stop.set()
            await asyncio.to_thread(thread.join, WAIT)
        if writer.error is not None:
            raise writer.error
        if thread.is_alive():
            raise LockTimeoutError(f"retention race: the writer did not stop within {WAIT:.0f} s")
        acked = list(writer.acknowledged)
        present = await _scalar(engine, f"SELECT count(*) FROM {SCHEMA}.audit_logs WHERE id = ANY(:ids)", ids=acked)
        return RaceResult(
            design=design.name, method=design.retention[AUDIT_RULE.name].method, rows=rows,
            removal_s=removed_at[0] - began, purge_s=finished - began,
            idle=Samples(writer.idle), during=Samples(writer.during),
            acknowledged=len(acked), lost=len(acked) - present,
            expired_left=await _scalar(engine, expired_sql, sev=purged, **span),
            kept_lost=kept_before - await _scalar(engine, expired_sql, sev=kept, **span))
    finally:
        await engine.dispose()


async def compare(server_url: DatabaseURL, designs: Sequence[Design], *, rows: int,
                  idle_inserts: int = IDLE_INSERTS) -> list[RaceResult]:
    """:func:`race` for each design, each in a fresh database of its own on ``server_url``'s server
    (created, built by the design, dropped afterwards), one after another so they never share the CPU."""
    results = []
    for design in designs:
        with provision.scratch_database(server_url, design.scratch_name("race")) as url:
            # Alembic's env.py runs its own event loop, which cannot nest in this one.
            await asyncio.to_thread(design.build, url)
            results.append(await race(url, design, rows=rows, idle_inserts=idle_inserts))
    return results


def speedup(baseline: RaceResult, candidate: RaceResult) -> float:
    """How many times faster ``candidate`` removed its rows (issue 10's goal: ≥ 100 for partition drop)."""
    if baseline.rows != candidate.rows:
        raise StateError(f"races of different sizes ({baseline.rows} vs {candidate.rows} rows) do not compare")
    return baseline.removal_s / candidate.removal_s
