"""Registry of LangGraph thread ids (revision 008), so idle threads can be found without SQL on
the ``langgraph`` schema (claim ``S10-no-direct-sql``) and deleted through the checkpointer API
(claim ``S7-langgraph-retention-api``; docs/design-claims.md)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import Select, delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from jedisos_db.runtime.db.models import LangGraphThread
from jedisos_db.runtime.repositories import validation as v
from jedisos_db.runtime.repositories.base import Repository

_THREAD = v.varchar_limit(LangGraphThread, "thread_id")
_USER = v.varchar_limit(LangGraphThread, "user_id")


class ThreadRegistry(Repository[LangGraphThread]):
    """``jedisos.langgraph_threads``: call :meth:`touch` whenever a thread is invoked."""

    model = LangGraphThread
    noun = "thread"

    async def touch(self, thread_id: str, *, user_id: str | None = None, at: dt.datetime | None = None,
                    session: AsyncSession | None = None) -> None:
        """Register ``thread_id`` or move its ``last_active_at`` to ``at`` (default now)."""
        v.text("thread_id", thread_id, _THREAD, required=True)
        v.text("user_id", user_id, _USER)
        when = v.timestamp("at", at) if at is not None else func.now()
        stmt = insert(LangGraphThread).values(thread_id=thread_id, user_id=user_id, last_active_at=when)
        stmt = stmt.on_conflict_do_update(index_elements=[LangGraphThread.thread_id],
                                          set_={"last_active_at": stmt.excluded.last_active_at})
        async with self._transaction(session) as s:
            await s.execute(stmt)

    @staticmethod
    def idle_statement(before: dt.datetime, limit: int) -> Select[tuple[str]]:
        """The idle-thread query (public so a test can EXPLAIN it: idx_langgraph_threads_last_active)."""
        return (select(LangGraphThread.thread_id).where(LangGraphThread.last_active_at < before)
                .order_by(LangGraphThread.last_active_at).limit(limit))

    async def idle(self, before: dt.datetime, *, limit: int = 1000,
                   session: AsyncSession | None = None) -> list[str]:
        """Thread ids last active strictly before ``before``, least recent first."""
        v.timestamp("before", before)
        async with self._transaction(session) as s:
            return list((await s.execute(self.idle_statement(before, limit))).scalars())

    async def count_idle(self, before: dt.datetime, *, session: AsyncSession | None = None) -> int:
        async with self._transaction(session) as s:
            return int((await s.execute(select(func.count()).select_from(LangGraphThread)
                                        .where(LangGraphThread.last_active_at < before))).scalar_one())

    async def forget(self, thread_ids: Sequence[str], *, idle_before: dt.datetime | None = None,
                     session: AsyncSession | None = None) -> int:
        """Remove ``thread_ids`` (only those still idle before ``idle_before``, when given)."""
        stmt = delete(LangGraphThread).where(LangGraphThread.thread_id.in_(list(thread_ids)))
        if idle_before is not None:
            stmt = stmt.where(LangGraphThread.last_active_at < idle_before)
        async with self._transaction(session) as s:
            result = await s.execute(stmt.returning(LangGraphThread.thread_id))
            return len(result.all())
