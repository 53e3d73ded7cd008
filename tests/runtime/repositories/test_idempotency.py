"""Idempotency keys (revision 010): a retried write with the same keys writes each event once, on every path
(single INSERT, COPY batch of events or of plain dicts, in a caller's transaction, through the EventWriter)."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
from asyncpg.exceptions import UndefinedColumnError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from jedisos_db.runtime.db import migrations
from jedisos_db.runtime.db.engine import create_engine
from jedisos_db.runtime.errors import InvalidInputError
from jedisos_db.runtime.owners import SCHEMA
from jedisos_db.runtime.repositories import base
from jedisos_db.runtime.repositories.audit import AuditEvent, AuditLogRepository
from jedisos_db.runtime.repositories.cost import CostEvent, CostRepository
from jedisos_db.runtime.repositories.writer import EventWriter
from tests.plugins.tables import count

T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


async def _keys(engine: AsyncEngine, table: str) -> list[str | None]:
    async with engine.connect() as conn:
        return list((await conn.execute(text(f"SELECT idempotency_key FROM {SCHEMA}.{table} ORDER BY id"))).scalars())


async def test_a_retried_batch_writes_each_keyed_event_once(clean: AsyncEngine) -> None:
    repo = AuditLogRepository(clean)
    batch = [AuditEvent("run", idempotency_key=f"k{i}") for i in range(5)]
    assert await repo.record_many(batch) == 5
    assert await repo.record_many(batch) == 0  # the retry after an ambiguous failure
    assert await repo.record_many([*batch, AuditEvent("run", idempotency_key="k5")]) == 1
    assert await _keys(clean, "audit_logs") == [f"k{i}" for i in range(6)]


async def test_plain_dicts_keys_repeated_within_a_batch_and_unkeyed_rows(clean: AsyncEngine) -> None:
    """Keys in dicts take the column-wise path; a key twice in one batch is written once; rows without a key
    are written every time (nothing names them), and get the default timestamp like any COPY."""
    repo = CostRepository(clean)
    rows = [{"model": "m", "provider": "p", "cost_usd": 1, "source": "agent", "idempotency_key": "call-1"},
            {"model": "m", "provider": "p", "cost_usd": 1, "source": "agent", "idempotency_key": "call-1"},
            {"model": "m", "provider": "p", "cost_usd": 2, "source": "agent"}]
    assert await repo.record_many(rows) == 2
    assert await repo.record_many(rows) == 1
    assert await _keys(clean, "cost_tracking") == ["call-1", None, None]
    async with clean.connect() as conn:
        assert (await conn.execute(text(f"SELECT count(*) FROM {SCHEMA}.cost_tracking WHERE timestamp IS NULL")
                                   )).scalar_one() == 0


async def test_a_large_keyed_batch_of_dicts_is_written_once_and_not_streamed(
        clean: AsyncEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch of dicts large enough to stream still takes the keyed INSERT when it carries keys (a COPY cannot
    skip a stored key): a key repeated far into the batch is written once, a retry writes only the unkeyed row."""
    streamed: list[object] = []
    monkeypatch.setattr(base, "text_chunk", streamed.append)
    repo = CostRepository(clean)
    rows: list[dict[str, Any]] = [
        {"model": "m", "provider": "p", "cost_usd": 1, "source": "agent", "idempotency_key": f"call-{i}"}
        for i in range(600)]
    rows[550] = dict(rows[0])
    rows[1] = {k: v for k, v in rows[1].items() if k != "idempotency_key"}
    assert await repo.record_many(rows) == 599
    assert await repo.record_many(rows) == 1  # only the unkeyed row: nothing names it
    assert await count(clean, "cost_tracking") == 600
    assert streamed == []


async def test_mixed_timestamps_in_a_keyed_batch_take_the_transactions_now(clean: AsyncEngine) -> None:
    repo = AuditLogRepository(clean)
    await repo.record_many([AuditEvent("a", timestamp=T0, idempotency_key="a"), AuditEvent("b", idempotency_key="b")])
    async with clean.connect() as conn:
        result = await conn.execute(text(f"SELECT event_type, timestamp > :t0 FROM {SCHEMA}.audit_logs"), {"t0": T0})
        stamps = {str(name): bool(later) for name, later in result.all()}
    assert stamps == {"a": False, "b": True}


async def test_record_with_a_stored_key_returns_the_first_writes_id(clean: AsyncEngine) -> None:
    repo = CostRepository(clean)
    call = CostEvent("m", "p", cost_usd="0.1", source="agent", idempotency_key="litellm-call-7")
    first = await repo.record(call)
    assert await repo.record(call) == first
    async with repo.begin() as session:
        assert await repo.record(call, session=session) == first
        other = await repo.record(CostEvent("m", "p", cost_usd="0.1", source="agent", idempotency_key="x"),
                                  session=session)
    assert other != first
    assert await count(clean, "cost_tracking") == 2


async def test_two_keyed_batches_in_one_caller_transaction(clean: AsyncEngine) -> None:
    repo = AuditLogRepository(clean)
    async with repo.begin() as session:
        assert await repo.record_many([AuditEvent("a", idempotency_key="a")], session=session) == 1
        assert await repo.record_many([AuditEvent("a", idempotency_key="a"), AuditEvent("b", idempotency_key="b")],
                                      session=session) == 1
    assert await _keys(clean, "audit_logs") == ["a", "b"]


async def test_the_writer_passes_keys_through(clean: AsyncEngine) -> None:
    async with EventWriter(AuditLogRepository(clean)) as writer:
        for _ in range(2):
            await writer.record(AuditEvent("turn", idempotency_key="turn-1"))
            writer.submit({"event_type": "turn", "idempotency_key": "turn-2"})
    assert sorted(await _keys(clean, "audit_logs")) == ["turn-1", "turn-2"]  # type: ignore[type-var]


def test_a_key_is_validated_like_any_field() -> None:
    with pytest.raises(InvalidInputError, match="idempotency_key") as caught:
        AuditEvent("x", idempotency_key="k" * 256)
    assert caught.value.field == "idempotency_key"
    with pytest.raises(InvalidInputError, match="idempotency_key"):
        CostEvent("m", "p", cost_usd=0, source="agent", idempotency_key=7)  # type: ignore[arg-type]


async def test_unkeyed_events_write_to_a_database_below_revision_010(database_factory: Any) -> None:
    """Without a key the column is left out, by ``record`` as by COPY: the documented design's tables (006)
    take the same code's unkeyed writes, and a keyed one fails there, naming the missing column."""
    url = database_factory("at_006")
    await asyncio.to_thread(migrations.upgrade, url, "006")  # Alembic runs its own event loop
    engine = create_engine(url=url)
    try:
        repo = AuditLogRepository(engine)
        new_id = await repo.record(AuditEvent("run"))
        assert await repo.record_many([AuditEvent("run"), {"event_type": "run"}]) == 2
        assert await count(engine, "audit_logs") == 3
        assert new_id > 0
        with pytest.raises(UndefinedColumnError, match="idempotency_key"):
            await repo.record(AuditEvent("run", idempotency_key="k"))
        assert await count(engine, "audit_logs") == 3
    finally:
        await engine.dispose()
