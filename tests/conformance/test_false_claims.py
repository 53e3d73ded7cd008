"""Claims of the design that are false, asserted false by running the design's own code.

design §1 "커넥션 풀 분리":
    langgraph_pool = await asyncpg.create_pool(db_url, min_size=2, max_size=10)
    checkpointer = AsyncPostgresSaver(langgraph_pool, schema="langgraph")
"""

from __future__ import annotations

import asyncpg
import pytest
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

from jedisos_db.runtime.db.connect import connect
from jedisos_db.runtime.urls import DatabaseURL


def _checkpoint_tables(url: DatabaseURL) -> list[tuple[str, str]]:
    with connect(url) as conn:
        return [(str(s), str(t)) for s, t in conn.execute(
            "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relname LIKE 'checkpoint%%'").fetchall()]


async def test_design_langgraph_snippet_fails_on_schema_argument(empty_db: DatabaseURL) -> None:
    """design §1 "스키마 격리"/"커넥션 풀 분리": ``AsyncPostgresSaver(pool, schema="langgraph")`` is FALSE:
    the saver has no ``schema=`` parameter, the design's line raises TypeError."""
    db_url = empty_db.libpq()
    langgraph_pool = await asyncpg.create_pool(db_url, min_size=2, max_size=10)
    try:
        with pytest.raises(TypeError, match="schema"):
            AsyncPostgresSaver(langgraph_pool, schema="langgraph")  # type: ignore[call-arg,arg-type]
    finally:
        await langgraph_pool.close()


async def test_design_langgraph_snippet_fails_on_asyncpg_pool(empty_db: DatabaseURL) -> None:
    """design §1 "커넥션 풀 분리": an asyncpg pool is FALSE for LangGraph: without ``schema=`` the saver
    constructs, then ``setup()`` fails with "Invalid connection type" and creates nothing."""
    langgraph_pool = await asyncpg.create_pool(empty_db.libpq(), min_size=2, max_size=10)
    try:
        checkpointer = AsyncPostgresSaver(langgraph_pool)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="Invalid connection type"):
            await checkpointer.setup()
    finally:
        await langgraph_pool.close()
    assert _checkpoint_tables(empty_db) == []
