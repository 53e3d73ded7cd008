"""The LangGraph checkpointer factory on a real server (design §1 "스키마 격리", "커넥션 풀 분리")."""

from __future__ import annotations

import asyncio
import time

import psycopg
import pytest
from langchain_core.messages import HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from jedisos_db.harness.verify.plugin import ClaimRecorder
from jedisos_db.runtime import checkpointer
from jedisos_db.runtime.config import load_settings
from jedisos_db.runtime.db.connect import connect
from jedisos_db.runtime.errors import ConfigError
from jedisos_db.runtime.urls import DatabaseURL
from tests.runtime.graph import echo_graph

LANGGRAPH_TABLES = {"checkpoints", "checkpoint_blobs", "checkpoint_writes", "checkpoint_migrations"}
# design §3-1 "주요 컬럼": the key columns it lists per table, with the types it names.
DESIGN_COLUMNS: dict[str, dict[str, str | None]] = {
    "checkpoints": {"thread_id": None, "checkpoint_id": None, "parent_checkpoint_id": None,
                    "checkpoint": "jsonb", "metadata": "jsonb"},
    "checkpoint_blobs": {"thread_id": None, "checkpoint_ns": None, "channel": None, "type": None, "blob": "bytea"},
    "checkpoint_writes": {"thread_id": None, "checkpoint_id": None, "task_id": None, "idx": None, "channel": None,
                          "type": None, "blob": None},
    "checkpoint_migrations": {"v": "integer"},
}
HEAD_SETUP = ("fixed at head: checkpointer.setup / open_checkpointer create schema langgraph and run setup() "
              "with search_path=langgraph only (runtime/checkpointer.py)")


def _tables(url: DatabaseURL, schema: str) -> set[str]:
    with connect(url) as conn:
        rows = conn.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind = 'r'", [schema]).fetchall()
    return {r[0] for r in rows}


@pytest.mark.claim("S3-thread-id")
def test_thread_id_for_prefixes_the_session() -> None:
    """design §3: LangGraph threads of JediSOS sessions are named ``jedisos-{session_id}``."""
    assert checkpointer.thread_id_for("abc") == "jedisos-abc"
    with pytest.raises(ConfigError, match="session_id"):
        checkpointer.thread_id_for(" ")


def test_bad_schema_and_sizing_are_typed_errors() -> None:
    with pytest.raises(ConfigError, match="schema"):
        checkpointer.connection_kwargs("lang graph; drop")
    with pytest.raises(ConfigError, match="max_size"):
        checkpointer.PoolSizing(min_size=3, max_size=2)


@pytest.mark.claim("S3-async-saver-settings")
def test_connection_kwargs_are_the_verified_ones() -> None:
    """DESIGN.md verified facts: autocommit, no prepared statements, dict rows, only langgraph on the path."""
    kw = checkpointer.connection_kwargs()
    assert kw["autocommit"] is True
    assert kw["prepare_threshold"] is None
    assert kw["options"] == "-c search_path=langgraph"
    assert kw["application_name"] == checkpointer.APPLICATION_NAME


@pytest.mark.claim("S1-schema-per-owner", "S3-langgraph-tables", "S3-async-saver-settings")
async def test_setup_lands_in_langgraph_only(empty_db: DatabaseURL, claim: ClaimRecorder) -> None:
    """design §1: LangGraph's tables live in schema ``langgraph``, none in ``public``."""
    async with checkpointer.open_checkpointer(empty_db) as saver:
        assert saver is not None
        settings = (saver.conn.kwargs.get("autocommit"), saver.conn.kwargs.get("row_factory"))  # type: ignore[union-attr]
    langgraph, public = _tables(empty_db, "langgraph"), _tables(empty_db, "public")
    claim.figures(langgraph_tables=len(langgraph), public_tables=len(public))
    assert langgraph == LANGGRAPH_TABLES, f"setup() made {sorted(langgraph)} in langgraph"
    assert public == set(), f"setup() left {sorted(public)} in public"
    version = checkpointer.migration_version(empty_db)
    assert version is not None, "LangGraph migrations not applied"
    assert version >= 9, f"LangGraph migrations incomplete, version {version}"
    assert settings == (True, dict_row), f"the saver's pool runs with autocommit, row_factory = {settings}"
    claim.holds(f"AsyncPostgresSaver.setup() on autocommit dict_row connections ran LangGraph's migrations to "
                f"v{version}, its {len(langgraph)} tables in langgraph and none in public", migration_version=version)


@pytest.mark.claim("S3-langgraph-columns")
async def test_setup_creates_the_documented_key_columns(empty_db: DatabaseURL, claim: ClaimRecorder) -> None:
    """design §3-1: every key column the design lists exists, with the type it names."""
    checkpointer.setup(empty_db)
    with connect(empty_db) as conn:
        rows = conn.execute("SELECT table_name, column_name, data_type FROM information_schema.columns "
                            "WHERE table_schema = %s", [checkpointer.SCHEMA]).fetchall()
    real = {(str(t), str(c)): str(d) for t, c, d in rows}
    listed = [(t, c, want) for t, cols in DESIGN_COLUMNS.items() for c, want in cols.items()]
    missing = [f"{t}.{c}" for t, c, _ in listed if (t, c) not in real]
    wrong = [f"{t}.{c} is {real[(t, c)]}, not {want}" for t, c, want in listed
             if want and (t, c) in real and real[(t, c)] != want]
    claim.figures(documented_columns=len(listed), missing_columns=len(missing), wrong_types=len(wrong))
    assert not missing, f"columns the design lists that setup() did not create: {missing}"
    assert not wrong, f"columns of another type than the design says: {wrong}"
    claim.holds(f"all {len(listed)} key columns of design §3-1 exist, the {sum(1 for *_, w in listed if w)} typed ones "
                f"with the documented type (jsonb, bytea, integer)")


@pytest.mark.claim("S3-setup-creates-tables", shows="fails")
async def test_design_setup_snippet_puts_the_tables_in_public(empty_db: DatabaseURL, claim: ClaimRecorder) -> None:
    """design §3-3, run as written (``AsyncPostgresSaver.from_conn_string(db_url)``, then ``setup()``) on a
    database where schema ``langgraph`` already exists: the tables land in ``public``, not ``langgraph``."""
    checkpointer.ensure_schema(empty_db)
    db_url = empty_db.libpq()
    async with AsyncPostgresSaver.from_conn_string(db_url) as design_checkpointer:
        await design_checkpointer.setup()  # the design's line: "테이블 자동 생성"
    langgraph, public = _tables(empty_db, "langgraph"), _tables(empty_db, "public")
    claim.figures(langgraph_tables=len(langgraph), public_tables=len(public))
    assert langgraph == set(), f"the design's snippet put {sorted(langgraph)} in langgraph"
    assert public == LANGGRAPH_TABLES, f"the design's snippet made {sorted(public)} in public"
    claim.fails(f"the design's from_conn_string + setup() created its {len(public)} tables in public and "
                f"{len(langgraph)} in langgraph (setup() uses current_schema())", fix=HEAD_SETUP)


def test_sync_setup_is_idempotent(empty_db: DatabaseURL) -> None:
    before, after = checkpointer.setup(empty_db)
    assert before is None
    assert after is not None
    again = checkpointer.setup(empty_db)
    assert again == (after, after), f"second setup changed the version: {again}"


@pytest.mark.claim("S3-agent-state-checkpointed", "S3-checkpoint-ns-default")
async def test_real_graph_checkpoints_and_reads_back(empty_db: DatabaseURL, claim: ClaimRecorder) -> None:
    """design §3: a StateGraph over messages is checkpointed into ``langgraph`` and read back by aget_state."""
    async with checkpointer.open_checkpointer(empty_db) as saver:
        graph = echo_graph(saver)
        config: RunnableConfig = {"configurable": {"thread_id": checkpointer.thread_id_for("s1")}}
        await graph.ainvoke({"messages": [HumanMessage(content="hello")]}, config)
        await graph.ainvoke({"messages": [HumanMessage(content="again")]}, config)
    # A fresh saver on a fresh pool reads what the first one wrote.
    async with checkpointer.open_checkpointer(empty_db) as saver:
        state = await echo_graph(saver).aget_state(config)
        contents = [m.content for m in state.values["messages"]]
        assert contents == ["hello", "echo: hello", "again", "echo: again"]
        history = [c async for c in saver.alist(config)]
        assert len(history) == 6, f"expected 3 checkpoints per ainvoke, got {len(history)}"
    namespaces = {c.config["configurable"]["checkpoint_ns"] for c in history}
    assert namespaces == {""}, f"a config without checkpoint_ns stored checkpoints under {namespaces}"
    claim.holds(f"2 ainvoke calls wrote {len(history)} checkpoints by themselves and a fresh saver read back "
                f"{len(contents)} messages", claim="S3-agent-state-checkpointed", checkpoints=len(history))
    claim.holds(f"a config without checkpoint_ns stored all {len(history)} checkpoints under namespace ''",
                claim="S3-checkpoint-ns-default")


@pytest.mark.claim("S7-langgraph-retention-api")
async def test_retention_goes_through_the_api(empty_db: DatabaseURL, claim: ClaimRecorder) -> None:
    """design §4 retention: threads are pruned and deleted through aprune / adelete_thread only."""
    async with checkpointer.open_checkpointer(empty_db) as saver:
        graph = echo_graph(saver)
        for session in ("keep", "prune", "drop"):
            config = {"configurable": {"thread_id": checkpointer.thread_id_for(session)}}
            for text in ("a", "b"):
                await graph.ainvoke({"messages": [HumanMessage(content=text)]}, config)

        async def count(session: str) -> int:
            cfg: RunnableConfig = {"configurable": {"thread_id": checkpointer.thread_id_for(session)}}
            return len([c async for c in saver.alist(cfg)])

        assert await checkpointer.prune_sessions(saver, ["prune"]) == 1
        assert await checkpointer.delete_sessions(saver, ["drop"]) == 1
        assert (await count("keep"), await count("prune"), await count("drop")) == (6, 1, 0)
        state = await graph.aget_state(
            {"configurable": {"thread_id": checkpointer.thread_id_for("prune")}})
        assert [m.content for m in state.values["messages"]][-1] == "echo: b"
        # The API's only way to find threads that ended 30 days ago: list every checkpoint of every thread
        # (alist(None)) and read each one's timestamp; nothing selects threads by age.
        scanned = [c async for c in saver.alist(None)]
        assert {c.config["configurable"]["thread_id"] for c in scanned} == {
            checkpointer.thread_id_for(s) for s in ("keep", "prune")}
        claim.partial("aprune and adelete_thread pruned and deleted the threads they were given (6, 1, 0 "
                      f"checkpoints left), but finding threads by age means reading all {len(scanned)} checkpoints "
                      "through alist(None): the API has no query by age",
                      fix="head records each thread's last activity in jedisos.langgraph_threads (revision 008) "
                          "and deletes idle threads with adelete_thread (runtime/retention.py)",
                      checkpoints_scanned=len(scanned),
                      checkpoints_left_kept=6, checkpoints_left_pruned=1, checkpoints_left_deleted=0)


@pytest.mark.claim("S1-langgraph-pool-size")
async def test_one_saver_uses_one_connection_at_a_time(empty_db: DatabaseURL, claim: ClaimRecorder) -> None:
    """DESIGN.md: each saver serialises its queries behind one lock, so a 1..2 pool is enough."""
    sizing = checkpointer.PoolSizing(min_size=1, max_size=2)
    async with checkpointer.open_checkpointer(empty_db, sizing=sizing) as saver:
        graph = echo_graph(saver)
        configs = [{"configurable": {"thread_id": checkpointer.thread_id_for(f"c{i}")}} for i in range(20)]
        await asyncio.gather(*(graph.ainvoke({"messages": [HumanMessage(content="x")]}, c)
                               for c in configs))
        assert isinstance(saver.conn, AsyncConnectionPool)
        stats = saver.conn.get_stats()
        assert stats["pool_max"] == 2
        assert stats.get("requests_errors", 0) == 0, stats
        assert stats.get("requests_timeouts", 0) == 0, stats
        assert stats["pool_size"] <= 2, stats
    claim.partial(f"20 concurrent graph runs on one saver completed on a pool of {stats['pool_size']} connection(s), "
                  f"max 2: the design's max_size=10 is headroom that still counts against max_connections",
                  graph_runs=20, pool_max=stats["pool_max"], connections_used=stats["pool_size"], design_max=10)


@pytest.mark.claim("S1-langgraph-setup-creates-schema", shows="fails")
def test_missing_schema_never_falls_back_to_public(empty_db: DatabaseURL, claim: ClaimRecorder) -> None:
    """DESIGN.md: with only ``langgraph`` on the path, setup() without the schema fails instead of using public."""
    pool = checkpointer.sync_pool(empty_db, sizing=checkpointer.PoolSizing(min_size=0, max_size=1))
    pool.open(wait=True)
    try:
        saver = PostgresSaver(pool)
        import psycopg

        with pytest.raises(psycopg.errors.InvalidSchemaName) as refused:
            saver.setup()
    finally:
        pool.close()
    assert _tables(empty_db, "public") == set()
    claim.fails(f"setup() without schema langgraph did not create it: {str(refused.value).splitlines()[0]}",
                fix="fixed at head: checkpointer.ensure_schema creates langgraph before setup()")


def test_both_pools_take_their_waits_from_the_settings(empty_db: DatabaseURL) -> None:
    """The synchronous pool had no statement bound; both now have the engine's, from the same settings."""
    settings = load_settings(jedisos_db_url=str(empty_db.libpq()), statement_timeout_ms=700, connect_timeout_s=2,
                             pool_timeout_s=3)
    sizing = checkpointer.PoolSizing.from_settings(settings)
    assert (sizing.timeout, sizing.connect_timeout, sizing.statement_timeout_ms) == (3, 2, 700)
    assert sizing.use_limit == settings.command_timeout_s == 2.7
    assert sizing.hold_limit == 3 + 2 + 2.7
    assert checkpointer.PoolSizing(statement_timeout_ms=0).hold_limit is None  # setup()'s migrations
    checkpointer.ensure_schema(empty_db)
    with checkpointer.sync_pool(empty_db, sizing=sizing) as pool, pool.connection() as conn:
        assert conn.execute("SHOW statement_timeout").fetchone() == {"statement_timeout": "700ms"}
        started = time.monotonic()
        with pytest.raises(psycopg.errors.QueryCanceled, match="statement timeout"):  # the server's own answer
            conn.execute("SELECT pg_sleep(30)")
        assert time.monotonic() - started < sizing.use_limit
