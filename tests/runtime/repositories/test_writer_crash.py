"""The EventWriter while its database connections are killed mid-stream (issue 12: a crash test per durability
mode). Every backend of the writer's pool is terminated, again and again, while producers write.

- commit mode: every event whose ``record`` returned is stored, exactly once (producers retry a failed event
  with its idempotency key, as the module doc tells them to);
- enqueue mode: every acknowledged event is either stored or counted in ``writer.lost``, none twice, and the
  loss is bounded as documented: at most one batch (``max_batch`` events) per fault that hit a flush.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from jedisos_db.runtime.db.engine import create_engine
from jedisos_db.runtime.errors import DatabaseUnavailableError
from jedisos_db.runtime.owners import SCHEMA
from jedisos_db.runtime.repositories.audit import AuditEvent, AuditLogRepository
from jedisos_db.runtime.repositories.writer import EventWriter
from jedisos_db.runtime.urls import DatabaseURL
from tests.plugins.tables import count

pytestmark = [pytest.mark.slow, pytest.mark.faults]

APP = "jedisos-writer-under-fire"
KILLS = 4
WAIT = 120.0


@pytest.fixture
async def writer_engine(migrated_db: DatabaseURL, clean: AsyncEngine) -> AsyncIterator[AsyncEngine]:
    """The writer's own pool, tagged so the killer finds exactly its backends (``clean``: tables emptied)."""
    engine = create_engine(url=migrated_db, application_name=APP)
    try:
        yield engine
    finally:
        await engine.dispose()


async def _kill_while_writing(admin: AsyncEngine, done: asyncio.Event,
                              enough: Callable[[], bool] = lambda: True) -> int:
    """Terminate every backend of the writer's pool, each time once more rows were stored since the last (so
    each lands mid-stream), at least KILLS times and until ``enough()``; returns how many kills found a backend."""
    hits = kills = 0
    while kills < KILLS or not enough():
        kills += 1
        target = await count(admin, "audit_logs") + 100
        while not done.is_set() and await count(admin, "audit_logs") < target:
            pass
        if done.is_set():
            break
        async with admin.connect() as conn:
            killed = (await conn.execute(text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = :app AND datname = current_database()"), {"app": APP})).scalar_one()
            await conn.commit()
        hits += int(killed > 0)
    return hits


async def test_commit_mode_every_acknowledged_event_is_stored_once(clean: AsyncEngine,
                                                                   writer_engine: AsyncEngine) -> None:
    producers, per_producer = 8, 1500
    acknowledged: set[str] = set()
    failures = 0
    done = asyncio.Event()

    async with EventWriter(AuditLogRepository(writer_engine), max_batch=100) as writer:
        async def produce(p: int) -> None:
            nonlocal failures
            for i in range(per_producer):
                key = f"p{p}-{i}"
                event = AuditEvent("turn", user_id=f"p{p}", idempotency_key=key)
                for _attempt in range(20):
                    try:
                        await writer.record(event, durability="commit")
                    except DatabaseUnavailableError:
                        failures += 1  # ambiguous: maybe written; the same key makes the retry safe
                        continue
                    acknowledged.add(key)
                    break

        async with asyncio.timeout(WAIT):
            # Until a kill cuts a flush in flight (most land between two short keyed INSERTs).
            killer = asyncio.create_task(_kill_while_writing(clean, done, lambda: failures > 0))
            await asyncio.gather(*(produce(p) for p in range(producers)))
            done.set()
            hits = await killer

    async with clean.connect() as conn:
        stored = dict((await conn.execute(text(
            f"SELECT idempotency_key, count(*) FROM {SCHEMA}.audit_logs GROUP BY 1"))).tuples().all())
    print(f"\n[writer crash, commit] {len(acknowledged)} acknowledged, {failures} failed calls retried, "
          f"{hits} kills hit, {writer.lost} rows in failed batches")
    assert hits >= 1, "no kill found a backend: the test proved nothing"
    assert failures >= 1, "no kill landed on a flush: the test proved nothing"
    assert len(acknowledged) == producers * per_producer
    assert acknowledged <= set(stored), f"lost: {sorted(acknowledged - set(stored))[:10]}"
    assert set(stored.values()) == {1}


async def test_enqueue_mode_loses_at_most_the_batches_in_flight(clean: AsyncEngine,
                                                                writer_engine: AsyncEngine) -> None:
    total, max_batch = 6000, 100
    done = asyncio.Event()
    reported: list[DatabaseUnavailableError] = []
    writer = EventWriter(AuditLogRepository(writer_engine), max_batch=max_batch, max_delay=0.01)

    async def produce() -> None:
        for i in range(total):
            await writer.record(AuditEvent("turn", details={"n": i}), durability="enqueue")
            if i % 500 == 499:  # flushes are where an enqueue-mode producer hears of a loss
                try:
                    await writer.flush()
                except DatabaseUnavailableError as exc:
                    reported.append(exc)

    async with asyncio.timeout(WAIT):
        killer = asyncio.create_task(_kill_while_writing(clean, done))
        await produce()
        done.set()
        hits = await killer
        try:
            await writer.aclose()
        except DatabaseUnavailableError as exc:
            reported.append(exc)

    async with clean.connect() as conn:
        numbers = list((await conn.execute(text(
            f"SELECT (details->>'n')::int FROM {SCHEMA}.audit_logs"))).scalars())
    print(f"\n[writer crash, enqueue] {total} acknowledged, {len(numbers)} stored, {writer.lost} lost "
          f"({hits} kills hit; bound {hits} x max_batch {max_batch})")
    assert len(numbers) == len(set(numbers)), "an event was written twice"
    assert len(numbers) + writer.lost == total, "an acknowledged event is neither stored nor counted as lost"
    assert writer.lost <= hits * max_batch
    assert (writer.lost > 0) == bool(reported), "a loss went unreported (or a report without a loss)"
