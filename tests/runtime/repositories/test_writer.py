"""The batching event writer against the real server: thresholds, durability modes, backpressure, and
a failed batch failing exactly its own callers with the package's typed error."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from jedisos_db.runtime.errors import (
    BackpressureError,
    DatabaseUnavailableError,
    InvalidInputError,
    LocalServerError,
)
from jedisos_db.runtime.owners import SCHEMA
from jedisos_db.runtime.repositories.audit import AuditEvent, AuditLogRepository
from jedisos_db.runtime.repositories.cost import CostRepository, litellm_callback
from jedisos_db.runtime.repositories.writer import EventWriter
from tests.plugins.tables import count

WAIT = 30.0
"""Upper bound of every condition a test waits for."""


async def until_count(engine: AsyncEngine, table: str, n: int) -> None:
    async with asyncio.timeout(WAIT):
        while await count(engine, table) < n:
            pass


@asynccontextmanager
async def table_locked(engine: AsyncEngine, table: str = "audit_logs") -> AsyncIterator[None]:
    """Hold ACCESS EXCLUSIVE on the table: every COPY into it waits until the block ends."""
    async with engine.connect() as conn, conn.begin():
        await conn.execute(text(f"LOCK TABLE {SCHEMA}.{table} IN ACCESS EXCLUSIVE MODE"))
        yield


async def copy_waiting_on_lock(engine: AsyncEngine) -> int:
    """The pid of the backend whose write waits for the table lock (waits for it to show up). asyncpg's COPY
    first reads the table's column types: that is the statement seen waiting."""
    async with asyncio.timeout(WAIT), engine.connect() as conn:
        while True:
            pid = (await conn.execute(text("SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                           "AND datname = current_database()"))).scalar()
            if pid is not None:
                return int(pid)
            await conn.rollback()  # pg_stat_activity is read once per transaction: the next poll needs a new one


async def test_commit_mode_returns_once_the_row_is_committed(clean: AsyncEngine) -> None:
    async with EventWriter(AuditLogRepository(clean)) as writer:
        await writer.record(AuditEvent("login", user_id="u1"))
        assert await count(clean, "audit_logs") == 1  # another connection sees it: committed
        await writer.record({"event_type": "logout", "user_id": "u1"}, durability="commit")
        assert await count(clean, "audit_logs") == 2
    assert (writer.written, writer.lost, writer.pending) == (2, 0, 0)


async def test_enqueue_mode_writes_a_full_batch_at_once_and_a_partial_one_after_max_delay(clean: AsyncEngine) -> None:
    async with EventWriter(AuditLogRepository(clean), max_batch=10, max_delay=3600) as writer:
        for i in range(10):
            await writer.record(AuditEvent(f"e{i}"), durability="enqueue")
        await until_count(clean, "audit_logs", 10)  # a full batch does not wait for max_delay
        writer.submit(AuditEvent("e10"))
        assert writer.pending == 1
        await writer.flush()  # flush does not wait for max_delay either
        assert await count(clean, "audit_logs") == 11
    async with EventWriter(AuditLogRepository(clean), max_batch=500, max_delay=0.01) as writer:
        writer.submit(AuditEvent("late"))
        await until_count(clean, "audit_logs", 12)  # the time threshold, with no flush asked for
        assert writer.written == 1


async def test_leaving_the_block_drains_the_queue_and_closes_the_writer(clean: AsyncEngine) -> None:
    writer = EventWriter(AuditLogRepository(clean), max_batch=7, max_delay=3600)
    async with writer:
        for i in range(100):
            writer.submit({"event_type": f"e{i}"})
    assert await count(clean, "audit_logs") == 100
    with pytest.raises(LocalServerError, match="closed"):
        await writer.record(AuditEvent("after"))
    with pytest.raises(LocalServerError, match="closed"):
        writer.submit(AuditEvent("after"))
    await writer.aclose()  # a second close does nothing


async def test_an_invalid_event_is_refused_to_its_caller_and_never_queued(clean: AsyncEngine) -> None:
    async with EventWriter(AuditLogRepository(clean)) as writer:
        with pytest.raises(InvalidInputError, match="severity") as caught:
            await writer.record({"event_type": "x", "severity": "loud"})
        assert caught.value.field == "severity"
        with pytest.raises(InvalidInputError, match="event_type"):
            writer.submit({"event_type": "x" * 101})
        with pytest.raises(InvalidInputError, match="durability"):
            await writer.record(AuditEvent("x"), durability="later")  # type: ignore[arg-type]
        assert writer.pending == 0
    assert await count(clean, "audit_logs") == 0


def test_settings_out_of_range_are_refused() -> None:
    repo = AuditLogRepository.__new__(AuditLogRepository)
    with pytest.raises(InvalidInputError, match="max_batch"):
        EventWriter(repo, max_batch=0)
    with pytest.raises(InvalidInputError, match="max_batch"):
        EventWriter(repo, max_batch=20, max_pending=10)
    with pytest.raises(InvalidInputError, match="enqueue_timeout"):
        EventWriter(repo, enqueue_timeout=-1)


async def test_a_full_queue_pushes_back_and_queues_nothing(clean: AsyncEngine) -> None:
    writer = EventWriter(AuditLogRepository(clean), max_batch=2, max_pending=4, enqueue_timeout=0.2)
    async with table_locked(clean):
        for i in range(4):
            writer.submit(AuditEvent(f"e{i}"))
        with pytest.raises(BackpressureError, match="max_pending=4") as caught:
            writer.submit(AuditEvent("one too many"))
        assert caught.value.retryable
        started = asyncio.get_running_loop().time()
        with pytest.raises(BackpressureError, match=r"after 0\.2 s"):
            await writer.record(AuditEvent("waits, then gives up"), durability="enqueue")
        assert asyncio.get_running_loop().time() - started >= 0.2
        assert writer.pending == 4
        # room made while a caller waits lets it in
        late = asyncio.create_task(writer.record(AuditEvent("let in"), durability="enqueue"))
        writer.enqueue_timeout = WAIT
        await asyncio.sleep(0)
        assert not late.done()
    await late
    await writer.aclose()
    rows = await count(clean, "audit_logs")
    assert rows == 5


async def test_a_failed_batch_fails_exactly_its_own_callers(clean: AsyncEngine) -> None:
    """The first batch's COPY loses its connection (backend killed while it waits on a lock): its caller gets
    DatabaseUnavailableError; the callers of the batch queued behind it are written and return normally."""
    writer = EventWriter(AuditLogRepository(clean), max_batch=10)
    async with writer:
        async with table_locked(clean):
            first = asyncio.create_task(writer.record(AuditEvent("first")))
            pid = await copy_waiting_on_lock(clean)
            behind = [asyncio.create_task(writer.record(AuditEvent(f"behind{i}"))) for i in range(3)]
            async with clean.connect() as conn:
                assert (await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})).scalar()
            with pytest.raises(DatabaseUnavailableError, match="unavailable") as caught:
                await first
            assert caught.value.retryable
        await asyncio.gather(*behind)
    assert (writer.written, writer.lost) == (3, 1)
    async with clean.connect() as conn:
        types = (await conn.execute(text(f"SELECT event_type FROM {SCHEMA}.audit_logs ORDER BY 1"))).scalars()
        assert list(types) == ["behind0", "behind1", "behind2"]


async def test_a_lost_batch_of_enqueued_events_is_counted_and_raised_by_flush(clean: AsyncEngine) -> None:
    writer = EventWriter(AuditLogRepository(clean), max_batch=3, max_delay=3600)
    async with table_locked(clean):
        for i in range(3):
            writer.submit(AuditEvent(f"lost{i}"))
        pid = await copy_waiting_on_lock(clean)
        async with clean.connect() as conn:
            await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        with pytest.raises(DatabaseUnavailableError):
            await writer.flush()
    assert (writer.lost, writer.written) == (3, 0)
    writer.submit(AuditEvent("kept"))
    await writer.flush()  # the loss was reported once; this flush is clean
    await writer.aclose()
    assert (writer.lost, writer.written) == (3, 1)
    assert await count(clean, "audit_logs") == 1


async def test_commit_waits_are_bounded(clean: AsyncEngine) -> None:
    writer = EventWriter(AuditLogRepository(clean), commit_timeout=0.2)
    async with table_locked(clean):
        with pytest.raises(DatabaseUnavailableError, match=r"not confirmed within 0\.2 s"):
            await writer.record(AuditEvent("slow"))
    await writer.aclose()
    assert await count(clean, "audit_logs") == 1  # written after all: the caller was told it may be


async def test_litellm_callback_writes_through_the_writer(clean: AsyncEngine) -> None:
    async with EventWriter(CostRepository(clean)) as writer:
        callback = litellm_callback(writer, durability="enqueue")
        start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
        for _ in range(3):
            await callback({"model": "anthropic/claude", "response_cost": 0.5, "metadata": {"user_id": "u"}},
                           {"usage": {"prompt_tokens": 10, "completion_tokens": 5}}, start,
                           start + dt.timedelta(milliseconds=250))
    async with clean.connect() as conn:
        rows = (await conn.execute(text(f"SELECT provider, model, total_tokens, cost_usd, latency_ms, user_id "
                                        f"FROM {SCHEMA}.cost_tracking"))).all()
    assert [tuple(r) for r in rows] == [("anthropic", "claude", 15, Decimal("0.5"), 250, "u")] * 3
