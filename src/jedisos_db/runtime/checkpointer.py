"""The LangGraph checkpointer, confined to schema ``langgraph`` (design §1 "스키마 격리", §3; claims
``S1-langgraph-schema-param``, ``S1-langgraph-asyncpg-pool``, ``S3-async-saver-settings`` in docs/design-claims.md).

The design's snippet (``AsyncPostgresSaver(asyncpg_pool, schema="langgraph")``) cannot work:
the saver has no ``schema=`` argument and rejects an asyncpg pool. What works (DESIGN.md,
verified facts) is a psycopg 3 pool whose connections see only ``langgraph`` on their
``search_path``, so ``setup()``'s unqualified ``CREATE TABLE checkpoints …`` lands there:

- ``CREATE SCHEMA langgraph`` first: with only ``langgraph`` on the path a missing schema makes
  ``setup()`` fail loudly instead of silently falling back to ``public``;
- ``autocommit=True``: three of its migrations are ``CREATE INDEX CONCURRENTLY``;
- ``prepare_threshold=None``: no prepared statements (``0`` would mean "prepare everything"),
  so the pool also works behind PgBouncer in transaction mode;
- ``row_factory=dict_row``: the saver indexes rows by column name.

Each saver serialises its queries behind one ``asyncio.Lock``, so a saver never holds more than
one connection at a time; the pool is sized for that (1..2) rather than the design's 2..10.

Faults (issue 11): every pooled connection is checked on checkout (``check_connection``), so the first
call after a server restart gets a fresh connection instead of the dead one; opening a connection,
waiting for a free one, the check and each use of a connection are bounded (:class:`PoolSizing`, defaults
from ``runtime.config``, or :meth:`PoolSizing.from_settings`), in the asynchronous and the synchronous pool
alike (:func:`answer_within`); and whatever psycopg raises for an unreachable server comes out of the pool
as ``DatabaseUnavailableError`` (``runtime.db.faults``).

This module and ``jedisos_db.runtime.hindsight`` are the only places allowed to name ``langgraph`` /
``hindsight`` objects in SQL (the conformance source scan enforces it); everything else goes
through the saver's own API, thread retention included (``adelete_thread``, ``aprune``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any, Final, Literal

from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from psycopg import AsyncConnection, Connection, OperationalError, sql
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from jedisos_db.runtime.config import (
    DEFAULT_CONNECT_TIMEOUT_S,
    DEFAULT_POOL_TIMEOUT_S,
    Settings,
    check_wait,
    command_timeout,
)
from jedisos_db.runtime.db import faults
from jedisos_db.runtime.db.connect import connect, libpq_connect_timeout
from jedisos_db.runtime.errors import ConfigError, DatabaseUnavailableError
from jedisos_db.runtime.owners import LANGGRAPH_SCHEMA
from jedisos_db.runtime.urls import DatabaseURL

SCHEMA = LANGGRAPH_SCHEMA
APPLICATION_NAME = "jedisos-langgraph"
THREAD_PREFIX = "jedisos-"
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

PruneStrategy = Literal["keep_latest", "delete"]


@dataclass(frozen=True)
class PoolSizing:
    """Pool bounds for one saver. One saver uses one connection at a time (its lock); the
    second slot lets a new request connect while a broken connection is being replaced."""

    min_size: int = 1
    max_size: int = 2
    timeout: float = DEFAULT_POOL_TIMEOUT_S
    """Seconds to wait for a free connection on checkout (and for ``open`` to fill ``min_size``)."""
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S
    statement_timeout_ms: int = Settings.model_fields["statement_timeout_ms"].get_default()
    """The server's limit per statement, as the jedisos engine's (0 = none)."""

    @classmethod
    def from_settings(cls, settings: Settings, *, min_size: int = 1, max_size: int = 2) -> PoolSizing:
        """The jedisos engine's waits (``JEDISOS_DB_POOL_TIMEOUT_S``, ``_CONNECT_TIMEOUT_S``,
        ``_STATEMENT_TIMEOUT_MS``) for a LangGraph pool."""
        return cls(min_size=min_size, max_size=max_size, timeout=settings.pool_timeout_s,
                   connect_timeout=settings.connect_timeout_s, statement_timeout_ms=settings.statement_timeout_ms)

    @property
    def use_limit(self) -> float | None:
        """Longest one use of a checked-out connection may wait for the server: the statement limit plus one
        connect timeout (as the engine's ``command_timeout_s``); None without a statement limit."""
        return command_timeout(self.statement_timeout_ms, self.connect_timeout)

    @property
    def hold_limit(self) -> float | None:
        """Longest one use of the pool may take when the server stops answering: waiting for a connection
        (``timeout``), checking it (``connect_timeout``), then :attr:`use_limit`; None without a statement
        limit (``setup()``'s migrations)."""
        use = self.use_limit
        return None if use is None else self.timeout + self.connect_timeout + use

    def __post_init__(self) -> None:
        if self.min_size < 0:
            raise ConfigError("min_size", f"must be >= 0, got {self.min_size}")
        if self.max_size < max(self.min_size, 1):
            raise ConfigError("max_size", f"must be >= max(min_size, 1), got {self.max_size} (min {self.min_size})")
        check_wait("timeout", self.timeout)
        check_wait("connect_timeout", self.connect_timeout)
        check_wait("statement_timeout_ms", self.statement_timeout_ms / 1000, zero_allowed=True)


def _check_schema(schema: str) -> str:
    # The name goes into a libpq `options` string, where quoting is not available.
    if not _IDENTIFIER.match(schema):
        raise ConfigError("schema", f"must be a lower-case SQL identifier ([a-z_][a-z0-9_]*), got {schema!r}")
    return schema


def connection_kwargs(schema: str = SCHEMA, application_name: str = APPLICATION_NAME,
                      sizing: PoolSizing | None = None) -> dict[str, Any]:
    """psycopg connection arguments every LangGraph connection is opened with."""
    sizing = sizing or PoolSizing()
    return {
        "autocommit": True,
        "prepare_threshold": None,
        "row_factory": dict_row,
        "options": f"-c search_path={_check_schema(schema)}",
        "application_name": application_name,
        "connect_timeout": libpq_connect_timeout(sizing.connect_timeout),
    }


def thread_id_for(session_id: str) -> str:
    """The LangGraph thread id of a JediSOS session: ``jedisos-{session_id}``."""
    if not session_id or not str(session_id).strip():
        raise ConfigError("session_id", "is empty; a thread id needs a session id")
    return f"{THREAD_PREFIX}{session_id}"


def ensure_schema(url: DatabaseURL, schema: str = SCHEMA) -> bool:
    """Create ``schema`` unless it exists; return True when it was created.

    Existence is checked first so a role that owns the schema but may not CREATE in the
    database (the least-privilege ``langgraph_app``) still passes.
    """
    _check_schema(schema)
    with connect(url, application_name=APPLICATION_NAME) as conn:
        if conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [schema]).fetchone():
            return False
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        return True


def migration_version(url: DatabaseURL, schema: str = SCHEMA) -> int | None:
    """Highest applied LangGraph migration (``checkpoint_migrations.v``), None before ``setup()``."""
    _check_schema(schema)
    with connect(url, application_name=APPLICATION_NAME) as conn:
        table = conn.execute("SELECT to_regclass(%s)", [f"{schema}.checkpoint_migrations"]).fetchone()
        if table is None or table[0] is None:
            return None
        row = conn.execute(
            sql.SQL("SELECT max(v) FROM {}.checkpoint_migrations").format(sql.Identifier(schema))
        ).fetchone()
    return None if row is None or row[0] is None else int(row[0])


def _pool_args(url: DatabaseURL, schema: str, sizing: PoolSizing | None, application_name: str) -> dict[str, Any]:
    sizing = sizing or PoolSizing()
    return {
        "conninfo": url.libpq(),
        "min_size": sizing.min_size,
        "max_size": sizing.max_size,
        "timeout": sizing.timeout,
        "kwargs": connection_kwargs(schema, application_name, sizing),
        "name": application_name,
        "open": False,
    }


def _statement_timeout(sizing: PoolSizing) -> sql.Composed:
    # A session SET rather than `options`: the search_path option is the one verified (and PgBouncer-proof
    # via ALTER ROLE) setting there; this one is ours and applied when the pool opens each connection.
    return sql.SQL("SET statement_timeout = {}").format(sizing.statement_timeout_ms)


def _shut_down(conn: Connection[Any] | AsyncConnection[Any]) -> None:
    """Shut the connection's socket down both ways, leaving its descriptor to psycopg: its wait for the
    server wakes at once on end-of-file and fails with ``OperationalError``; the pool then discards it."""
    try:
        fd = conn.pgconn.socket
    except OperationalError:  # closed already
        return
    with contextlib.suppress(OSError), socket.socket(fileno=os.dup(fd)) as sock:
        sock.shutdown(socket.SHUT_RDWR)


@contextmanager
def answer_within(conn: Connection[Any] | AsyncConnection[Any], seconds: float | None, target: DatabaseURL,
                  what: str) -> Iterator[None]:
    """The block's work on ``conn`` ends within ``seconds`` (None: no bound), or the connection is shut down
    and the block raises ``DatabaseUnavailableError`` naming ``target``, ``what`` and the wait.

    psycopg has no client-side statement timeout. Cancelling the waiting task (``asyncio.timeout``) is not
    one: psycopg then sends a cancel request to the server and waits for the query to end, 5 s each, both
    hard-coded, so a hung server held the caller 10 s past its bound. Shutting the socket down ends the wait
    at once, and works where there is no task to cancel (the synchronous pool: a timer thread does it).
    """
    if seconds is None:
        yield
        return
    fired = threading.Event()

    def expire() -> None:
        fired.set()
        _shut_down(conn)

    cancel: Callable[[], None]
    if isinstance(conn, AsyncConnection):
        cancel = asyncio.get_running_loop().call_later(seconds, expire).cancel
    else:
        timer = threading.Timer(seconds, expire)
        timer.daemon = True
        timer.start()
        cancel = timer.cancel
    try:
        yield
    except Exception as exc:
        if fired.is_set():
            silence = TimeoutError(f"no answer within {seconds:.1f} s, the client closed the connection")
            raise faults.unavailable(target, what, seconds, silence) from exc
        raise
    finally:
        cancel()


CHECKING: Final = "checking a pooled connection"
USING: Final = "checkpointing"


@contextmanager
def _faults_of(pool: CheckedAsyncPool | CheckedPool, action: str) -> Iterator[None]:
    """``faults.translating`` for a pool, which reports any failure to connect as a ``PoolTimeout``: when
    its last attempt was refused the credentials, that is what the caller learns (not retryable)."""
    try:
        with faults.translating(pool.target, action):
            yield
    except DatabaseUnavailableError:
        if pool.refusal is None:
            raise
        raise faults.refused(pool.target, pool.refusal) from None


class CheckedAsyncPool(AsyncConnectionPool[Any]):
    """The saver's pool: a connection is checked before it is handed out, and an unreachable server
    (on checkout, open, or mid-statement) is a ``DatabaseUnavailableError`` naming it."""

    def __init__(self, url: DatabaseURL, sizing: PoolSizing | None = None, **kwargs: Any) -> None:
        sizing = sizing or PoolSizing()
        statement = _statement_timeout(sizing)

        async def configure(conn: AsyncConnection[Any]) -> None:
            with answer_within(conn, sizing.connect_timeout, url, "setting the session up"):
                await conn.execute(statement)

        async def check(conn: AsyncConnection[Any]) -> None:
            with answer_within(conn, sizing.connect_timeout, url, CHECKING):
                await AsyncConnectionPool.check_connection(conn)

        self.target = url
        self.use_limit = sizing.use_limit
        self.refusal: Exception | None = None
        """The last connection attempt's error when the server refused the credentials (the pool's workers
        retry in the background; the caller only sees a ``PoolTimeout``)."""
        super().__init__(check=check, configure=configure, **kwargs)

    async def _connect(self, timeout: float | None = None) -> Any:  # noqa: ASYNC109  (psycopg's)
        try:
            conn = await super()._connect(timeout)
        except Exception as exc:
            self.refusal = exc if faults.is_auth_failure(exc) else None
            raise
        self.refusal = None
        return conn

    @asynccontextmanager
    async def connection(self, timeout: float | None = None) -> AsyncIterator[Any]:  # noqa: ASYNC109  (psycopg's signature)
        with _faults_of(self, USING):
            async with super().connection(timeout) as conn:
                with answer_within(conn, self.use_limit, self.target, USING):
                    yield conn

    async def open(self, wait: bool = False, timeout: float = 30.0) -> None:  # noqa: ASYNC109  (psycopg's signature)
        with _faults_of(self, faults.CONNECTING):
            await super().open(wait=wait, timeout=timeout)


class CheckedPool(ConnectionPool[Any]):
    """The synchronous twin of :class:`CheckedAsyncPool`, with the same bounds."""

    def __init__(self, url: DatabaseURL, sizing: PoolSizing | None = None, **kwargs: Any) -> None:
        sizing = sizing or PoolSizing()
        statement = _statement_timeout(sizing)

        def configure(conn: Connection[Any]) -> None:
            with answer_within(conn, sizing.connect_timeout, url, "setting the session up"):
                conn.execute(statement)

        def check(conn: Connection[Any]) -> None:
            with answer_within(conn, sizing.connect_timeout, url, CHECKING):
                ConnectionPool.check_connection(conn)

        self.target = url
        self.use_limit = sizing.use_limit
        self.refusal: Exception | None = None
        super().__init__(check=check, configure=configure, **kwargs)

    def _connect(self, timeout: float | None = None) -> Any:
        try:
            conn = super()._connect(timeout)
        except Exception as exc:
            self.refusal = exc if faults.is_auth_failure(exc) else None
            raise
        self.refusal = None
        return conn

    @contextmanager
    def connection(self, timeout: float | None = None) -> Iterator[Any]:
        with (_faults_of(self, USING), super().connection(timeout) as conn,
              answer_within(conn, self.use_limit, self.target, USING)):
            yield conn

    def open(self, wait: bool = False, timeout: float = 30.0) -> None:
        with _faults_of(self, faults.CONNECTING):
            super().open(wait=wait, timeout=timeout)


def async_pool(url: DatabaseURL, *, schema: str = SCHEMA, sizing: PoolSizing | None = None,
               application_name: str = APPLICATION_NAME) -> CheckedAsyncPool:
    """An unopened ``AsyncConnectionPool`` confined to ``schema``; ``await pool.open()`` it."""
    return CheckedAsyncPool(url, sizing, **_pool_args(url, schema, sizing, application_name))


def sync_pool(url: DatabaseURL, *, schema: str = SCHEMA, sizing: PoolSizing | None = None,
              application_name: str = APPLICATION_NAME) -> CheckedPool:
    """The synchronous twin of :func:`async_pool` (unopened)."""
    return CheckedPool(url, sizing, **_pool_args(url, schema, sizing, application_name))


@asynccontextmanager
async def open_checkpointer(url: DatabaseURL, *, schema: str = SCHEMA, sizing: PoolSizing | None = None,
                            application_name: str = APPLICATION_NAME,
                            setup: bool = True) -> AsyncIterator[AsyncPostgresSaver]:
    """``AsyncPostgresSaver`` on its own pool in ``schema``; the schema is created and
    ``setup()`` run first (both idempotent). The pool closes on exit."""
    ensure_schema(url, schema)
    pool = async_pool(url, schema=schema, sizing=sizing, application_name=application_name)
    await pool.open(wait=True, timeout=(sizing or PoolSizing()).timeout)
    try:
        saver = AsyncPostgresSaver(pool)
        if setup:
            await saver.setup()
        yield saver
    finally:
        await pool.close()


@contextmanager
def open_sync_checkpointer(url: DatabaseURL, *, schema: str = SCHEMA, sizing: PoolSizing | None = None,
                           application_name: str = APPLICATION_NAME, setup: bool = True) -> Iterator[PostgresSaver]:
    """The synchronous twin of :func:`open_checkpointer` (``PostgresSaver`` on a ``ConnectionPool``)."""
    ensure_schema(url, schema)
    pool = sync_pool(url, schema=schema, sizing=sizing, application_name=application_name)
    pool.open(wait=True, timeout=(sizing or PoolSizing()).timeout)
    try:
        saver = PostgresSaver(pool)
        if setup:
            saver.setup()
        yield saver
    finally:
        pool.close()


def setup(url: DatabaseURL, *, schema: str = SCHEMA) -> tuple[int | None, int | None]:
    """Create ``schema`` and run LangGraph's migrations in it; return (version before, after)."""
    ensure_schema(url, schema)
    before = migration_version(url, schema)
    # No statement limit: like Alembic's, LangGraph's migrations may build indexes on a full table.
    with open_sync_checkpointer(url, schema=schema, sizing=PoolSizing(min_size=1, max_size=1, statement_timeout_ms=0)):
        pass
    return before, migration_version(url, schema)


async def delete_sessions(saver: AsyncPostgresSaver, session_ids: Iterable[str]) -> int:
    """Delete every checkpoint of these sessions through ``adelete_thread``; return how many threads."""
    count = 0
    for session_id in session_ids:
        await saver.adelete_thread(thread_id_for(session_id))
        count += 1
    return count


async def prune_sessions(saver: AsyncPostgresSaver, session_ids: Iterable[str], *,
                         strategy: PruneStrategy = "keep_latest") -> int:
    """Prune these sessions' threads through ``aprune`` (``keep_latest`` keeps the newest checkpoint)."""
    thread_ids = [thread_id_for(s) for s in session_ids]
    if thread_ids:
        await saver.aprune(thread_ids, strategy=strategy)
    return len(thread_ids)
