"""Claims of the design that are false, asserted false by running the design's own code.

design §1 "커넥션 풀 분리":
    langgraph_pool = await asyncpg.create_pool(db_url, min_size=2, max_size=10)
    checkpointer = AsyncPostgresSaver(langgraph_pool, schema="langgraph")
"""

from __future__ import annotations

import asyncpg
import pytest
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

from jedisos_db.harness.verify.plugin import ClaimRecorder
from jedisos_db.runtime.db.connect import connect
from jedisos_db.runtime.urls import DatabaseURL


def _checkpoint_tables(url: DatabaseURL) -> list[tuple[str, str]]:
    with connect(url) as conn:
        return [(str(s), str(t)) for s, t in conn.execute(
            "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relname LIKE 'checkpoint%%'").fetchall()]


HEAD_CONFINES = ("fixed at head: the saver gets a psycopg pool with autocommit, dict rows and "
                 "search_path=langgraph (runtime/checkpointer.py)")


@pytest.mark.claim("S1-langgraph-schema-param", shows="fails")
async def test_design_langgraph_snippet_fails_on_schema_argument(empty_db: DatabaseURL, claim: ClaimRecorder) -> None:
    """design §1 "스키마 격리"/"커넥션 풀 분리": ``AsyncPostgresSaver(pool, schema="langgraph")`` is FALSE:
    the saver has no ``schema=`` parameter, the design's line raises TypeError."""
    db_url = empty_db.libpq()
    langgraph_pool = await asyncpg.create_pool(db_url, min_size=2, max_size=10)
    try:
        with pytest.raises(TypeError, match="schema") as refused:
            # The design's line, wrong on purpose: no schema= parameter, and an asyncpg pool.
            AsyncPostgresSaver(langgraph_pool, schema="langgraph")  # type: ignore[call-arg,arg-type]
    finally:
        await langgraph_pool.close()
    claim.fails(f"the design's AsyncPostgresSaver(langgraph_pool, schema=\"langgraph\") raised TypeError: "
                f"{refused.value}", fix=HEAD_CONFINES)


@pytest.mark.claim("S1-langgraph-asyncpg-pool", shows="fails")
async def test_design_langgraph_snippet_fails_on_asyncpg_pool(empty_db: DatabaseURL, claim: ClaimRecorder) -> None:
    """design §1 "커넥션 풀 분리": an asyncpg pool is FALSE for LangGraph: without ``schema=`` the saver
    constructs, then ``setup()`` fails with "Invalid connection type" and creates nothing."""
    langgraph_pool = await asyncpg.create_pool(empty_db.libpq(), min_size=2, max_size=10)
    try:
        checkpointer = AsyncPostgresSaver(langgraph_pool)  # type: ignore[arg-type]  # the design's asyncpg pool
        with pytest.raises(TypeError, match="Invalid connection type") as refused:
            await checkpointer.setup()
    finally:
        await langgraph_pool.close()
    created = _checkpoint_tables(empty_db)
    assert created == [], f"setup() on an asyncpg pool failed yet created {created}"
    claim.fails(f"AsyncPostgresSaver on the design's asyncpg pool (2..10) constructed, then setup() raised "
                f"TypeError ({refused.value}) and created {len(created)} tables", fix=HEAD_CONFINES,
                tables_created=len(created))
