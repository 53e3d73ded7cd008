"""Scheduled jobs (design §4-6): cron validation, ``next_run``, the due query, run results.

Cron expressions are the five-field form the design shows (``"0 8 * * *"``), validated and
advanced with ``croniter`` in UTC. The due query is ``enabled AND next_run <= now`` ordered by
``next_run``: exactly the shape the partial index ``idx_schedules_next_run`` serves.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from croniter import CroniterBadDateError, croniter
from sqlalchemy import func, insert, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from jedisos_db.runtime.db.models import Schedule
from jedisos_db.runtime.errors import InvalidInputError
from jedisos_db.runtime.repositories import validation as v
from jedisos_db.runtime.repositories.base import Repository

_USER_ID = v.varchar_limit(Schedule, "user_id")
_NAME = v.varchar_limit(Schedule, "name")
_CRON = v.varchar_limit(Schedule, "cron_expr")
_CRON_PROBE = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
"""Start of a leap year: an expression that fires at all fires within croniter's search from here."""


def check_cron(value: Any) -> str:
    """A valid five-field cron expression (minute hour day month weekday)."""
    expr = v.text("cron_expr", value, _CRON, required=True)
    assert expr is not None
    fields = expr.split()
    if len(fields) != 5:
        raise InvalidInputError("cron_expr", f"must have 5 fields (minute hour day month weekday); "
                                               f"got {len(fields)} in {expr!r}")
    if not croniter.is_valid(expr):
        raise InvalidInputError("cron_expr", f"{expr!r} is not a valid cron expression")
    try:  # valid field by field, yet it may name a date that never comes (0 0 30 2 *: 30 February)
        croniter(expr, _CRON_PROBE).get_next(dt.datetime)
    except CroniterBadDateError:
        raise InvalidInputError("cron_expr", f"{expr!r} never fires (no such date)") from None
    return expr


def next_run(expr: str, after: dt.datetime) -> dt.datetime:
    """The first time ``expr`` fires strictly after ``after`` (UTC)."""
    return croniter(expr, after.astimezone(dt.UTC)).get_next(dt.datetime)


class ScheduleRepository(Repository[Schedule]):
    """``jedisos.schedules``."""

    model = Schedule
    noun = "schedule"

    @staticmethod
    async def _now(session: AsyncSession) -> dt.datetime:
        now: dt.datetime = (await session.execute(select(func.now()))).scalar_one()
        return now

    async def create(self, *, user_id: str, name: str, cron_expr: str, action_type: str,
                     action_payload: dict[str, Any], enabled: bool = True,
                     now: dt.datetime | None = None, session: AsyncSession | None = None) -> Schedule:
        v.text("user_id", user_id, _USER_ID, required=True)
        v.text("name", name, _NAME, required=True)
        expr = check_cron(cron_expr)
        v.choice("action_type", action_type, v.ACTION_TYPES, required=True)
        v.json_document("action_payload", action_payload, kind=dict, required=True)
        v.flag("enabled", enabled)
        start = v.timestamp("now", now)
        async with self._transaction(session) as s:
            stmt = insert(Schedule).values(
                user_id=user_id, name=name, cron_expr=expr, action_type=action_type, action_payload=action_payload,
                enabled=enabled, next_run=next_run(expr, start or await self._now(s)),
            ).returning(Schedule)
            return (await s.execute(stmt)).scalar_one()

    async def get(self, schedule_id: uuid.UUID, *, session: AsyncSession | None = None) -> Schedule:
        return await self._get(schedule_id, session=session)

    async def for_user(self, user_id: str, *, session: AsyncSession | None = None) -> list[Schedule]:
        async with self._transaction(session) as s:
            return list((await s.execute(
                select(Schedule).where(Schedule.user_id == user_id).order_by(Schedule.name))).scalars())

    def due_statement(self, now: dt.datetime, limit: int = 100) -> Any:
        """The due query (public so a test can EXPLAIN it)."""
        # "enabled = true", not "enabled IS TRUE": only the former matches the partial index's
        # predicate, and the planner falls back to a sequential scan for the latter.
        return (select(Schedule).where(Schedule.enabled == true(), Schedule.next_run <= now)
                .order_by(Schedule.next_run).limit(limit))

    async def due(self, now: dt.datetime | None = None, *, limit: int = 100,
                  session: AsyncSession | None = None) -> list[Schedule]:
        """Enabled schedules whose ``next_run`` has come, earliest first."""
        v.integer("limit", limit, low=1, high=10_000)
        at = v.timestamp("now", now)
        async with self._transaction(session) as s:
            return list((await s.execute(self.due_statement(at or await self._now(s), limit))).scalars())

    async def record_run(self, schedule_id: uuid.UUID, *, success: bool, error: str | None = None,
                         ran_at: dt.datetime | None = None, session: AsyncSession | None = None) -> Schedule:
        """Store a run's outcome and advance ``next_run`` past ``ran_at``."""
        v.flag("success", success)
        v.text("error", error, None)
        if success and error:
            raise InvalidInputError("error", "a successful run has no error message")
        at = v.timestamp("ran_at", ran_at)
        # Read cron_expr and write next_run under one row lock: a concurrent set_cron cannot slip between.
        async with self._transaction(session) as s:
            current = await self._get(schedule_id, lock=True, session=s)
            at = at or await self._now(s)
            return await self._update(schedule_id, {
                "last_run": at,
                "last_result": "success" if success else "error",
                "last_error": None if success else (error or "failed"),
                "next_run": next_run(current.cron_expr, at),
            }, session=s)

    async def set_cron(self, schedule_id: uuid.UUID, expr: str, *, now: dt.datetime | None = None,
                       session: AsyncSession | None = None) -> Schedule:
        checked = check_cron(expr)
        at = v.timestamp("now", now)
        async with self._transaction(session) as s:
            return await self._update(schedule_id, {"cron_expr": checked,
                                                    "next_run": next_run(checked, at or await self._now(s))},
                                      session=s)

    async def set_enabled(self, schedule_id: uuid.UUID, enabled: bool, *, now: dt.datetime | None = None,
                          session: AsyncSession | None = None) -> Schedule:
        """Enable (recomputing ``next_run`` from now, so no backlog fires) or disable."""
        v.flag("enabled", enabled)
        at = v.timestamp("now", now)
        values: dict[str, Any] = {"enabled": enabled}
        async with self._transaction(session) as s:
            if enabled:
                current = await self._get(schedule_id, lock=True, session=s)
                values["next_run"] = next_run(current.cron_expr, at or await self._now(s))
            return await self._update(schedule_id, values, session=s)

    async def delete(self, schedule_id: uuid.UUID, *, session: AsyncSession | None = None) -> bool:
        return await self._delete(schedule_id, session=session)
