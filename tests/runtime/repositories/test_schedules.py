"""Schedules repository (design §4-6): cron, next_run, the due query on its partial index, run results."""

from __future__ import annotations

import datetime as dt
from typing import Any, TypedDict

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from jedisos_db.runtime.errors import InvalidInputError, NotFoundError
from jedisos_db.runtime.repositories.schedules import ScheduleRepository

T0 = dt.datetime(2026, 5, 1, 9, 30, tzinfo=dt.UTC)


class ScheduleArgs(TypedDict):
    """The required keywords of ``ScheduleRepository.create``, so every call below is type-checked."""

    user_id: str
    name: str
    cron_expr: str
    action_type: str
    action_payload: dict[str, Any]


BRIEFING: ScheduleArgs = {"user_id": "u1", "name": "아침 브리핑", "cron_expr": "0 8 * * *", "action_type": "chat",
                          "action_payload": {"message": "오늘 일정 알려줘"}}


@pytest.mark.claim("S4-schedules-cron")
async def test_create_computes_next_run_from_cron(clean: AsyncEngine) -> None:
    sched = await ScheduleRepository(clean).create(**BRIEFING, now=T0)
    assert sched.next_run == dt.datetime(2026, 5, 2, 8, 0, tzinfo=dt.UTC)
    assert sched.enabled
    assert sched.last_run is None


@pytest.mark.claim("S4-schedules-cron")
async def test_due_returns_enabled_schedules_whose_time_has_come(clean: AsyncEngine) -> None:
    repo = ScheduleRepository(clean)
    early = await repo.create(**(BRIEFING | {"cron_expr": "0 * * * *"}), now=T0)
    late = await repo.create(**BRIEFING, now=T0)
    off = await repo.create(**(BRIEFING | {"cron_expr": "*/5 * * * *"}), enabled=False, now=T0)
    assert [s.id for s in await repo.due(T0 + dt.timedelta(hours=1))] == [early.id]
    assert [s.id for s in await repo.due(T0 + dt.timedelta(days=1))] == [early.id, late.id]
    assert off.id not in {s.id for s in await repo.due(T0 + dt.timedelta(days=30))}


async def test_record_run_stores_result_and_advances_next_run(clean: AsyncEngine) -> None:
    repo = ScheduleRepository(clean)
    sched = await repo.create(**BRIEFING, now=T0)
    ran = dt.datetime(2026, 5, 2, 8, 0, 5, tzinfo=dt.UTC)
    done = await repo.record_run(sched.id, success=False, error="LLM timeout", ran_at=ran)
    assert (done.last_result, done.last_error, done.last_run) == ("error", "LLM timeout", ran)
    assert done.next_run == dt.datetime(2026, 5, 3, 8, 0, tzinfo=dt.UTC)
    assert done.updated_at > sched.updated_at
    ok = await repo.record_run(sched.id, success=True, ran_at=done.next_run)
    assert (ok.last_result, ok.last_error) == ("success", None)


async def test_set_cron_and_enable_recompute_next_run(clean: AsyncEngine) -> None:
    repo = ScheduleRepository(clean)
    sched = await repo.create(**BRIEFING, now=T0)
    changed = await repo.set_cron(sched.id, "30 18 * * 1-5", now=T0)
    assert changed.next_run == dt.datetime(2026, 5, 1, 18, 30, tzinfo=dt.UTC)  # a Friday
    await repo.set_enabled(sched.id, False)
    later = T0 + dt.timedelta(days=10)
    enabled = await repo.set_enabled(sched.id, True, now=later)
    assert enabled.next_run is not None
    assert enabled.next_run > later
    assert [s.name for s in await repo.for_user("u1")] == ["아침 브리핑"]
    assert await repo.delete(sched.id)
    with pytest.raises(NotFoundError):
        await repo.record_run(sched.id, success=True)


@pytest.mark.parametrize("expr", ["61 * * * *", "0 8 * *", "0 8 * * * *", "every day", ""])
async def test_bad_cron_is_rejected_before_any_write(clean: AsyncEngine, expr: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        await ScheduleRepository(clean).create(**(BRIEFING | {"cron_expr": expr}))
    assert info.value.field == "cron_expr"
    async with clean.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM jedisos.schedules"))).scalar_one() == 0


@pytest.mark.claim("S4-schedules-cron")
async def test_due_query_uses_the_partial_index(clean: AsyncEngine) -> None:
    """Design §4-6: idx_schedules_next_run ... WHERE enabled = TRUE serves the due query."""
    async with clean.begin() as conn:
        await conn.execute(text("""
            INSERT INTO jedisos.schedules (user_id, name, cron_expr, action_type, action_payload, enabled, next_run)
            SELECT 'u' || (g % 100), 'job' || g, '0 * * * *', 'chat', '{}', g % 10 <> 0,
                   now() + make_interval(mins => g)
            FROM generate_series(1, 20000) AS g"""))
        await conn.execute(text("ANALYZE jedisos.schedules"))
    stmt = ScheduleRepository(clean).due_statement(dt.datetime.now(dt.UTC) + dt.timedelta(minutes=30), 100)
    sql = str(stmt.compile(dialect=clean.dialect, compile_kwargs={"literal_binds": True}))
    async with clean.connect() as conn:
        plan = "\n".join((await conn.execute(text("EXPLAIN " + sql))).scalars())
    assert "idx_schedules_next_run" in plan, plan
