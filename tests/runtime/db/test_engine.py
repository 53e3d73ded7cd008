"""The jedisos pool (design §1 and §10): sizes, pre-ping, application_name, statement timeout."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool, QueuePool

from jedisos_db.runtime.config import load_settings
from jedisos_db.runtime.db.connect import connect
from jedisos_db.runtime.db.engine import _LAST_USED, PING_AFTER_IDLE, _check_on_checkout, create_engine, schema_of
from jedisos_db.runtime.repositories.audit import AuditEvent, AuditLogRepository
from jedisos_db.runtime.urls import DatabaseURL


async def test_defaults_follow_section_1_and_reach_the_server(migrated_db: DatabaseURL) -> None:
    engine = create_engine(url=migrated_db)
    try:
        pool = engine.pool
        assert isinstance(pool, QueuePool)
        assert (pool.size(), pool._max_overflow) == (5, 10)
        assert event.contains(pool, "checkout", _check_on_checkout)
        async with engine.connect() as conn:
            name = (await conn.execute(text("SHOW application_name"))).scalar_one()
            timeout = (await conn.execute(text("SHOW statement_timeout"))).scalar_one()
        assert (name, timeout) == ("jedisos-app", "30s")
    finally:
        await engine.dispose()


async def test_overrides_and_statement_timeout_is_enforced(migrated_db: DatabaseURL) -> None:
    engine = create_engine(url=migrated_db, pool_size=2, max_overflow=1, application_name="worker-7",
                           statement_timeout_ms=100)
    try:
        pool = engine.pool
        assert isinstance(pool, QueuePool)
        assert (pool.size(), pool._max_overflow) == (2, 1)
        async with engine.connect() as conn:
            assert (await conn.execute(text("SHOW application_name"))).scalar_one() == "worker-7"
            with pytest.raises(DBAPIError, match="statement timeout"):
                await conn.execute(text("SELECT pg_sleep(2)"))
    finally:
        await engine.dispose()


async def test_null_pool_for_one_shot_work_and_extra_session_settings(migrated_db: DatabaseURL) -> None:
    """Alembic's engine: NullPool takes no pool sizes; extra session settings join the factory's own."""
    engine = create_engine(url=migrated_db, poolclass=NullPool, statement_timeout_ms=0,
                           server_settings={"search_path": "jedisos"})
    try:
        assert isinstance(engine.pool, NullPool)
        async with engine.connect() as conn:
            shown = [(await conn.execute(text(f"SHOW {name}"))).scalar_one()
                     for name in ("search_path", "statement_timeout", "application_name")]
        assert shown == ["jedisos", "0", "jedisos-app"]
    finally:
        await engine.dispose()


async def test_engine_from_settings_and_another_schema(migrated_db: DatabaseURL,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """JEDISOS_DB_SCHEMA redirects every repository, including the COPY path."""

    with connect(migrated_db) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS jedisos_alt")
        conn.execute("CREATE TABLE IF NOT EXISTS jedisos_alt.audit_logs (LIKE jedisos.audit_logs INCLUDING ALL)")
    monkeypatch.setenv("JEDISOS_DB_URL", migrated_db.libpq())
    monkeypatch.setenv("JEDISOS_DB_SCHEMA", "jedisos_alt")
    engine = create_engine(load_settings())
    try:
        assert schema_of(engine) == "jedisos_alt"
        repo = AuditLogRepository(engine)
        await repo.record(AuditEvent("one"))
        await repo.record_many([AuditEvent("two"), AuditEvent("three")])
        assert {r.event_type for r in await repo.query()} == {"one", "two", "three"}
    finally:
        await engine.dispose()
    with connect(migrated_db) as conn:
        assert conn.execute("SELECT count(*) FROM jedisos_alt.audit_logs").fetchone() == (3,)
        assert conn.execute("SELECT count(*) FROM jedisos.audit_logs WHERE event_type IN ('one', 'two', 'three')"
                            ).fetchone() == (0,)


async def test_a_connection_the_server_closed_or_lost_is_replaced_on_checkout(migrated_db: DatabaseURL) -> None:
    """What pre-ping promised, at a round trip only for idle connections: after the backend of the pooled
    connection is killed, or it sat idle past PING_AFTER_IDLE and then died, the next call still succeeds."""
    engine = create_engine(url=migrated_db, pool_size=1, max_overflow=0)
    repo = AuditLogRepository(engine)
    try:
        for idle in (False, True):
            async with engine.connect() as conn:
                pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
                raw = await conn.get_raw_connection()
                record, driver = raw._connection_record, raw.driver_connection
                assert record is not None
                assert driver is not None
                closed = asyncio.Event()
                driver.add_termination_listener(lambda _, event=closed: event.set())
            with connect(migrated_db) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", [pid])
                # Blocking on purpose: the event loop does not run, so asyncpg has not seen the socket close.
                while admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone():
                    pass
            if idle:  # only the ping (an idle connection's) can find it
                assert not driver.is_closed()
                record.info[_LAST_USED] -= PING_AFTER_IDLE + 1
            else:  # the event loop reads the server's goodbye (asyncpg marks the connection closed)
                await asyncio.wait_for(closed.wait(), 30)
                assert driver.is_closed()
            await repo.record(AuditEvent("after a kill"))
            async with engine.connect() as conn:
                assert (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one() != pid
    finally:
        await engine.dispose()
