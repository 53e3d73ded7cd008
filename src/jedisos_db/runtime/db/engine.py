"""The jedisos connection pool: one SQLAlchemy AsyncEngine over asyncpg (design §1 and §10).

The design (claim ``S10-engine-pool`` in docs/design-claims.md) sizes it ``pool_size=5,
max_overflow=10``; both stay overridable. Connections are checked on checkout (a server restart must
not surface as an error on the next request, see :func:`_check_on_checkout`), carry an
``application_name`` so ``pg_stat_activity`` tells this pool from Hindsight's and LangGraph's, and a
``statement_timeout`` so one runaway query cannot hold a pool slot forever.

When ``JEDISOS_DB_SCHEMA`` names another schema than ``jedisos``, the models (which say
``jedisos``) are redirected with SQLAlchemy's ``schema_translate_map``.

This is the one place a jedisos ``AsyncEngine`` is built: the application, the retention run,
the pool probe, Alembic's ``env.py`` (with ``poolclass=NullPool``), the tests and the benches
all come through :func:`create_engine`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Final

from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, NullPool, PoolProxiedConnection
from sqlalchemy.util import await_only

from jedisos_db.runtime.config import Settings
from jedisos_db.runtime.owners import SCHEMA
from jedisos_db.runtime.urls import DatabaseURL


def create_engine(
    settings: Settings | None = None,
    *,
    url: DatabaseURL | None = None,
    schema: str | None = None,
    pool_size: int | None = None,
    max_overflow: int | None = None,
    application_name: str | None = None,
    statement_timeout_ms: int | None = None,
    server_settings: Mapping[str, str] | None = None,
    **engine_kwargs: Any,
) -> AsyncEngine:
    """An AsyncEngine for the jedisos schema; explicit arguments override ``settings``.

    ``server_settings`` adds session parameters (e.g. ``search_path``) to the two set here. With
    ``poolclass=NullPool`` (one connection per checkout, e.g. Alembic) the pool sizes are left
    out: SQLAlchemy rejects them for a pool that keeps nothing.
    """
    if url is None:
        from jedisos_db.runtime.config import load_settings

        settings = settings or load_settings()
        url = settings.database_url
    defaults = settings or Settings.model_construct()
    schema = schema or defaults.db_schema
    timeout = defaults.statement_timeout_ms if statement_timeout_ms is None else statement_timeout_ms
    session = {
        "application_name": application_name or defaults.application_name,
        "statement_timeout": str(timeout),
        **(server_settings or {}),
    }
    options: dict[str, Any] = {}
    if schema != SCHEMA:
        options["schema_translate_map"] = {SCHEMA: schema}
    if engine_kwargs.get("poolclass") is not NullPool:
        engine_kwargs["pool_size"] = defaults.pool_size if pool_size is None else pool_size
        engine_kwargs["max_overflow"] = defaults.max_overflow if max_overflow is None else max_overflow
    engine = create_async_engine(
        url.asyncpg(),
        connect_args={"server_settings": session},
        execution_options=options,
        **engine_kwargs,
    )
    event.listen(engine.sync_engine.pool, "checkout", _check_on_checkout)
    event.listen(engine.sync_engine.pool, "checkin", _note_checkin)
    return engine


PING_AFTER_IDLE: Final = 1.0
"""Seconds a pooled connection may sit idle before its checkout costs a round trip to check it."""
_LAST_USED: Final = "jedisos_last_used"


def _note_checkin(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
    record.info[_LAST_USED] = time.monotonic()


def _check_on_checkout(dbapi_connection: Any, record: ConnectionPoolEntry, proxy: PoolProxiedConnection) -> None:
    """Pessimistic disconnect handling at the cost of a round trip only where it can find something.

    SQLAlchemy's ``pool_pre_ping`` costs three round trips on asyncpg (``BEGIN``, ``;``, ``ROLLBACK``) on
    every checkout: half of a single-event write. A server that restarts or kills a backend closes the
    socket, which asyncpg has seen by the next checkout (``is_closed()``, free); a connection idle longer
    than :data:`PING_AFTER_IDLE` (a peer that vanished without closing) is pinged with one ``;``.
    ``DisconnectionError`` makes the pool replace the connection and try again.
    """
    driver = dbapi_connection.driver_connection
    if driver.is_closed():
        raise DisconnectionError("connection closed by the server")
    last = record.info.get(_LAST_USED)
    if last is not None and time.monotonic() - last > PING_AFTER_IDLE:
        try:
            await_only(driver.fetchrow(";"))
        except Exception as exc:
            raise DisconnectionError(f"connection failed its ping: {exc}") from exc


def schema_of(engine: AsyncEngine) -> str:
    """The schema the engine's jedisos tables live in (for raw SQL and COPY, which bypass the map)."""
    translate = engine.get_execution_options().get("schema_translate_map") or {}
    return str(translate.get(SCHEMA, SCHEMA))
