"""The repository base: COPY column orders derived from the models, joining a caller's transaction,
and read-modify-write paths that lose no update under concurrency."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Table, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from jedisos_db.runtime.db.models import AuditLog, CostRecord, InstalledTool, McpServer
from jedisos_db.runtime.errors import DuplicateError, NotFoundError
from jedisos_db.runtime.owners import SCHEMA
from jedisos_db.runtime.repositories import audit, base, cost
from jedisos_db.runtime.repositories.audit import AuditEvent, AuditLogRepository
from jedisos_db.runtime.repositories.base import FIRST_CHUNK, chunks, copy_columns, text_chunk
from jedisos_db.runtime.repositories.cost import CostEvent, CostRepository
from jedisos_db.runtime.repositories.preferences import PreferencesRepository
from jedisos_db.runtime.repositories.schedules import ScheduleRepository
from jedisos_db.runtime.repositories.tools import ToolRepository, ToolSpec
from tests.plugins.tables import count

T0 = dt.datetime(2026, 5, 1, 9, 30, tzinfo=dt.UTC)
TABLES = ("installed_tools", "audit_logs", "cost_tracking", "user_preferences")


def test_copy_columns_are_the_models_columns_minus_the_server_generated_ones() -> None:
    for model in (AuditLog, CostRecord):
        table = model.__table__
        assert isinstance(table, Table)
        assert copy_columns(model) == tuple(c.name for c in table.columns if c.name != "id")
    assert "id" not in copy_columns(InstalledTool)  # uuid primary key, DEFAULT gen_random_uuid()
    assert "id" not in copy_columns(McpServer)
    assert copy_columns(AuditLog) == audit.COPY_COLUMNS
    assert copy_columns(CostRecord) == cost.COPY_COLUMNS


def test_an_events_row_is_in_copy_column_order() -> None:
    """Each value sits under its own column name (a hand-written order could silently swap two)."""
    envelope = uuid.uuid4()
    event = AuditEvent("login", severity="warning", user_id="u", channel="web", session_id="s", tool_name="t",
                       action="a", result="denied", details={"k": 1}, ip_address="10.0.0.1",
                       envelope_id=envelope, timestamp=T0, idempotency_key="k1")
    row = dict(zip(audit.COPY_COLUMNS, event.row, strict=True))
    assert (row["timestamp"], row["event_type"], row["severity"], row["user_id"], row["channel"]) == (
        T0, "login", "warning", "u", "web")
    assert (row["session_id"], row["tool_name"], row["action"], row["result"]) == ("s", "t", "a", "denied")
    assert (row["details"], str(row["ip_address"]), row["envelope_id"]) == ('{"k":1}', "10.0.0.1", envelope)
    assert row["idempotency_key"] == "k1"
    call = CostEvent("m", "p", input_tokens=3, output_tokens=4, cost_usd="0.5", source="forge", session_id="s",
                     user_id="u", latency_ms=9, status="timeout", timestamp=T0, idempotency_key="c1")
    assert dict(zip(cost.COPY_COLUMNS, call.row, strict=True)) == {
        "timestamp": T0, "model": "m", "provider": "p", "input_tokens": 3, "output_tokens": 4, "total_tokens": 7,
        "cost_usd": Decimal("0.500000"), "source": "forge", "session_id": "s", "user_id": "u",
        "latency_ms": 9, "status": "timeout", "idempotency_key": "c1"}


async def _write_everywhere(engine: AsyncEngine, session: AsyncSession) -> None:
    """Writes through four repositories (INSERT, COPY, upsert + row lock) in the caller's session."""
    await ToolRepository(engine).install(ToolSpec(name="weather", version="1", tool_path="w.py"), session=session)
    await AuditLogRepository(engine).record_many([{"event_type": "install"}, {"event_type": "run"}],
                                                 session=session)
    await CostRepository(engine).record(CostEvent("m", "p", cost_usd=1, source="agent"), session=session)
    await PreferencesRepository(engine).block_tool("alice", "weather", session=session)


async def _counts(engine: AsyncEngine) -> list[int]:
    return [await count(engine, t) for t in TABLES]


async def test_writes_in_a_callers_transaction_roll_back_together(clean: AsyncEngine) -> None:
    async with AsyncSession(clean) as session:
        await _write_everywhere(clean, session)
        assert await _counts(clean) == [0, 0, 0, 0]  # nothing committed: another connection sees nothing
        await session.rollback()
    assert await _counts(clean) == [0, 0, 0, 0]


async def test_writes_in_a_callers_transaction_commit_together(clean: AsyncEngine) -> None:
    tools = ToolRepository(clean)
    async with tools.begin() as session:
        await _write_everywhere(clean, session)
        assert await tools.get_by_name("weather", session=session)  # reads see the uncommitted writes
    assert await _counts(clean) == [1, 2, 1, 1]
    prefs = await PreferencesRepository(clean).get("alice")
    assert prefs is not None
    assert "weather" in (prefs.blocked_tools or [])


async def _write_then_install_twice(engine: AsyncEngine) -> None:
    tools = ToolRepository(engine)
    async with tools.begin() as session:
        await _write_everywhere(engine, session)
        await tools.install(ToolSpec(name="weather", version="2", tool_path="w.py"), session=session)


async def test_a_failure_inside_the_callers_transaction_undoes_the_earlier_writes(clean: AsyncEngine) -> None:
    with pytest.raises(DuplicateError):
        await _write_then_install_twice(clean)
    assert await _counts(clean) == [0, 0, 0, 0]


async def test_without_a_session_each_call_commits_its_own(clean: AsyncEngine) -> None:
    await ToolRepository(clean).install(ToolSpec(name="weather", version="1", tool_path="w.py"))
    with pytest.raises(NotFoundError, match="installed_tools: no tool with name 'nope'"):
        await ToolRepository(clean).get_by_name("nope")
    assert await count(clean, "installed_tools") == 1


TOOLS = [f"tool-{i}" for i in range(8)]


@pytest.mark.parametrize("existing", [False, True], ids=["new user", "existing user"])
async def test_concurrent_block_and_allow_lose_no_update(clean: AsyncEngine, existing: bool) -> None:
    """Eight calls at once on one user: each read-modify-write holds the row, so every tool lands.

    (The two-transaction version, get_or_create then update, kept only some of them.)
    """
    repo = PreferencesRepository(clean)
    if existing:
        await repo.get_or_create("bob")
    calls = [repo.block_tool("bob", t) if i % 2 else repo.allow_tool("bob", t) for i, t in enumerate(TOOLS)]
    await asyncio.gather(*calls)
    prefs = await repo.get("bob")
    assert prefs is not None
    assert sorted(prefs.blocked_tools or []) == sorted(["shell_exec", "file_delete", *TOOLS[1::2]])
    assert sorted(prefs.allowed_tools or []) == sorted(TOOLS[0::2])


async def test_concurrent_runs_and_cron_changes_of_a_schedule_keep_it_consistent(clean: AsyncEngine) -> None:
    """record_run reads cron_expr and writes next_run under the row lock, so a concurrent set_cron
    cannot leave next_run computed from the cron expression it replaced.

    (With the read and the write in two transactions, next_run came out at the old cron's 08:00.)
    """
    repo = ScheduleRepository(clean)
    sched = await repo.create(user_id="u", name="n", cron_expr="0 8 * * *", action_type="chat",
                              action_payload={}, now=T0)
    runs = [repo.record_run(sched.id, success=True, ran_at=T0) for _ in range(4)]
    await asyncio.gather(*runs[:2], repo.set_cron(sched.id, "30 9 * * *", now=T0), *runs[2:])
    final = await repo.get(sched.id)
    assert final.cron_expr == "30 9 * * *"
    assert final.next_run == T0.replace(day=2)  # 09:30 the next day, never the old cron's 08:00


_AWKWARD_TEXT = ("tab\there", "new\nline", "carriage\rreturn", "back\\slash", "\\N", "", "한국어 ✓ 🙂", 'quote"s,',
                 "\\.", "end\\")
_OFFSETS = (dt.UTC, dt.timezone(dt.timedelta(hours=9)), dt.timezone(-dt.timedelta(hours=8, minutes=30)),
            dt.timezone(dt.timedelta(hours=5, minutes=30, seconds=15)))


def _awkward_audit(i: int) -> dict[str, object]:
    text = _AWKWARD_TEXT[i % len(_AWKWARD_TEXT)]
    return {"event_type": f"e{i}", "severity": ("debug", "info", "warning", "critical")[i % 4],
            "user_id": text if i % 3 else None, "action": text, "session_id": None if i % 2 else f"s{i}",
            "details": {"text": text, "nested": {"list": [1, 2.5, None, True], "quote": '"\\'}, "i": i},
            "ip_address": ("10.0.0.1", "2001:db8::1", None)[i % 3],
            "envelope_id": uuid.UUID(int=i) if i % 2 else None,
            "timestamp": dt.datetime(2026, 5, 1, 9, 30, i % 60, i, tzinfo=_OFFSETS[i % len(_OFFSETS)])}


def _awkward_cost(i: int) -> dict[str, object]:
    return {"model": _AWKWARD_TEXT[i % len(_AWKWARD_TEXT)] or "m", "provider": "p", "source": "agent",
            "input_tokens": i, "output_tokens": 2 * i, "latency_ms": None if i % 2 else i,
            # Floats and strings leave the column-wise check to the row-by-row path, chunk by chunk.
            "cost_usd": (Decimal("1E+2"), Decimal(i) / 7, Decimal("0.000001"), 0.25, "1.5")[i % 5] if i < 200 else 1,
            "session_id": _AWKWARD_TEXT[(i + 1) % len(_AWKWARD_TEXT)], "user_id": None, "status": "success",
            "timestamp": dt.datetime(9999, 12, 31, 23, 59, tzinfo=dt.UTC) if i == 7 else T0}


async def _stored(engine: AsyncEngine, table: str) -> list[tuple[object, ...]]:
    columns = ", ".join(f'"{c}"' for c in (audit.COPY_COLUMNS if table == "audit_logs" else cost.COPY_COLUMNS))
    async with engine.connect() as conn:
        result = await conn.execute(text(f"SELECT {columns} FROM {SCHEMA}.{table} ORDER BY id"))
        return [tuple(row) for row in result.all()]


@pytest.mark.parametrize(("repository", "table", "make"), [
    (AuditLogRepository, "audit_logs", _awkward_audit), (CostRepository, "cost_tracking", _awkward_cost)])
async def test_a_streamed_batch_stores_exactly_what_the_binary_copy_stores(
        clean: AsyncEngine, repository: type[AuditLogRepository] | type[CostRepository], table: str,
        make: Callable[[int], dict[str, object]], monkeypatch: pytest.MonkeyPatch) -> None:
    """A large batch of dicts streams as text-format COPY, a batch in a caller's transaction goes by binary COPY:
    tabs, newlines, backslashes, a text reading ``\\N``, empty strings, Unicode, JSON with quotes, odd offsets
    and the last representable time are stored alike, NULLs where None was given and nowhere else."""
    rows = [make(i) for i in range(4 * FIRST_CHUNK + 50)]
    assert len(list(chunks(len(rows)))) > 2
    repo = repository(clean)
    sent: list[int] = []

    def counted(values: Sequence[Sequence[Any]]) -> bytes:
        sent.append(len(values[0]))
        return text_chunk(values)

    monkeypatch.setattr(base, "text_chunk", counted)
    assert await repo.record_many(rows) == len(rows)
    assert sent == [stop - start for start, stop in chunks(len(rows))]  # streamed, chunk by chunk
    streamed = await _stored(clean, table)
    await clean.dispose()
    async with clean.begin() as conn:
        await conn.execute(text(f"TRUNCATE {SCHEMA}.{table}"))
    async with repo.begin() as session:
        assert await repo.record_many(rows, session=session) == len(rows)  # binary COPY, all validated first
    assert await _stored(clean, table) == streamed
    assert any(None in row for row in streamed)
    assert {str(value) for row in streamed for value in row} >= {"\\N", "", "tab\there", "back\\slash"} - (
        set() if table == "audit_logs" else {"\\N"})
