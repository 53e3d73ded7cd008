"""Connection faults, whichever library meets them, reach the caller as one error.

Three drivers sit under the data layer (asyncpg under SQLAlchemy and the raw COPY path, psycopg
for one-off work and LangGraph's pool) and each reports an unreachable server its own way:
``OSError`` (refused, ``FileNotFoundError`` for a vanished unix socket), a bare ``TimeoutError``
from a black-hole address or a hung server, asyncpg's ``ConnectionDoesNotExistError``, psycopg's
``OperationalError`` / ``PoolTimeout``, SQLAlchemy's pool ``TimeoutError`` and its wrapped
``DBAPIError`` flagged as a disconnect. :func:`is_connection_fault` is the one classifier, and
:class:`translating` the one place they become
:class:`~jedisos_db.runtime.errors.DatabaseUnavailableError` (``retryable``), saying which server
(redacted URL), doing what, how long it waited, and the driver's reason (kept as ``__cause__``).

They are applied at every boundary: the engine (:func:`install`: SQLAlchemy's ``do_connect`` and
``handle_error`` events cover every ORM and Core path), the raw COPY of the repositories, the
psycopg ``connect`` and the LangGraph checkpointer.

A server refusing the credentials (:func:`is_auth_failure`) is not a fault: nothing changes by waiting, so
at the same boundaries it becomes :class:`~jedisos_db.runtime.errors.AuthenticationError` (not retryable),
naming the role and never the password (:func:`refused`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from types import TracebackType
from typing import Any, Final

import asyncpg
import psycopg
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, ExceptionContext
from sqlalchemy.ext.asyncio import AsyncEngine

from jedisos_db.runtime.errors import AuthenticationError, DatabaseUnavailableError
from jedisos_db.runtime.urls import DatabaseURL

FAULT_SQLSTATES: Final = frozenset({"53300", "57P01", "57P02", "57P03"})
"""Server answers that mean "not now" rather than "not this": too many connections, admin or crash
shutdown, cannot connect now (starting up or recovering). Class ``08`` (connection exception) too."""
_MAX_CHAIN: Final = 8
_BUSY: Final = "another operation"


def _sqlstate(exc: BaseException) -> str | None:
    state = getattr(exc, "sqlstate", None)
    return state if isinstance(state, str) else None


def _is_fault_here(exc: BaseException) -> bool:
    """This exception alone (not its causes) says the server was not reachable."""
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, OSError | TimeoutError | sa_exc.TimeoutError | asyncpg.PostgresConnectionError):
        return True
    state = _sqlstate(exc)
    if state is not None and (state.startswith("08") or state in FAULT_SQLSTATES):
        return True
    # asyncpg's protocol left mid-operation by a message the server sent unasked (the FATAL of a killed
    # backend arriving between two statements). SQLAlchemy never uses one connection concurrently, so in
    # this package the state means a connection the server broke, not a caller's misuse.
    if isinstance(exc, asyncpg.InterfaceError | asyncpg.InternalClientError) and _BUSY in str(exc):
        return True
    # psycopg raises OperationalError without a SQLSTATE when it has no server to ask (refused,
    # timed out, closed under it, pool timeout); with one it is a server answer (e.g. a deadlock).
    return isinstance(exc, psycopg.OperationalError) and state is None


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, then what it wraps: SQLAlchemy's ``orig``, then the ``__cause__`` chain."""
    seen: BaseException | None = exc
    for _ in range(_MAX_CHAIN):
        if seen is None:
            return
        yield seen
        orig = getattr(seen, "orig", None)
        seen = orig if isinstance(orig, BaseException) and orig is not seen else seen.__cause__


_REFUSED: Final = re.compile(r"authentication failed for user|no pg_hba\.conf entry|pg_hba\.conf rejects|"
                             r"no password supplied|role \"[^\"]*\" does not exist|is not permitted to log in")
"""What libpq and the server say when they refuse credentials (SQLSTATE class 28, or libpq's own words):
psycopg reports a failed connection without a SQLSTATE, so its text is all there is. A server whose
``lc_messages`` is not English says it otherwise; such a refusal stays a :class:`DatabaseUnavailableError`."""


def is_auth_failure(exc: BaseException) -> bool:
    """True when ``exc`` (or what it wraps) is the server refusing the credentials (never retryable)."""
    for e in _chain(exc):
        state = _sqlstate(e)
        if state is not None and state.startswith("28"):
            return True
        if isinstance(e, psycopg.OperationalError) and state is None and _REFUSED.search(str(e)):
            return True
    return False


def is_connection_fault(exc: BaseException) -> bool:
    """True when ``exc`` (or what it wraps) means the server could not be reached or went away."""
    if isinstance(exc, DatabaseUnavailableError):
        return True
    return not is_auth_failure(exc) and any(_is_fault_here(e) for e in _chain(exc))


def reason(exc: BaseException) -> str:
    """The driver's own words on one line; the class name when it said nothing (a bare ``TimeoutError``)."""
    for e in _chain(exc):
        text = " ".join(str(e).split())
        if text:
            return f"{type(e).__name__}: {text}"
    return f"{type(exc).__name__} (no message)"


CONNECTING: Final = "connecting"


def unavailable(target: DatabaseURL | str, action: str, waited: float,
                cause: BaseException) -> DatabaseUnavailableError:
    """The error a connection fault becomes: which server, doing what, after how long, and why."""
    what = f"cannot connect to {target}" if action == CONNECTING else f"lost {target} while {action}"
    return DatabaseUnavailableError(f"database unavailable: {what} (after {waited:.1f} s): {reason(cause)}")


def refused(target: DatabaseURL | str, cause: BaseException) -> AuthenticationError:
    """The error a refusal of credentials becomes: which server and role, and the server's words (which name
    the role, never the password)."""
    user = target.username if isinstance(target, DatabaseURL) else None
    return AuthenticationError(f"authentication failed: {target} refused role {user or '(default)'}: "
                               f"{reason(cause)}; fix the credentials (retrying will not help)", user=user)


class translating:  # a context manager, named like contextlib's
    """``with`` / ``async with``: a connection fault inside becomes :class:`DatabaseUnavailableError`
    naming ``target``, ``action`` and the time since the block began, a refusal of the credentials
    :class:`AuthenticationError`; other errors pass untouched."""

    def __init__(self, target: DatabaseURL | str, action: str, *, driver: Any = None) -> None:
        self.target = target
        self.action = action
        self.driver = driver
        """A pooled asyncpg connection used through the raw driver (COPY, prepared INSERT): closed at once
        on a fault, since SQLAlchemy never saw the error and would otherwise hand it to the next caller."""
        self.started = time.monotonic()

    def __enter__(self) -> translating:
        self.started = time.monotonic()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc is None or isinstance(exc, DatabaseUnavailableError | AuthenticationError) \
                or not isinstance(exc, Exception):
            return
        if self.driver is not None and is_connection_fault(exc):
            self.driver.terminate()
        if is_auth_failure(exc):
            # from None: psycopg's error keeps the connection attempt, password included, on ``pgconn``.
            raise refused(self.target, exc) from None
        if is_connection_fault(exc):
            raise unavailable(self.target, self.action, time.monotonic() - self.started, exc) from exc

    async def __aenter__(self) -> translating:
        return self.__enter__()

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.__exit__(kind, exc, tb)


def target_of(engine: AsyncEngine) -> str:
    """The server ``engine`` talks to, for a message (password hidden)."""
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=True)


def install(engine: AsyncEngine, target: DatabaseURL) -> None:
    """Make every connection fault of ``engine`` a :class:`DatabaseUnavailableError` naming ``target``.

    ``do_connect`` wraps opening a connection (asyncpg's ``OSError`` / ``TimeoutError`` there never
    reach ``handle_error``: SQLAlchemy only routes DBAPI errors through it at connect). ``handle_error``
    covers statements, commits and rollbacks; it leaves the pre-ping alone, so a connection found dead
    on checkout is replaced rather than reported.
    """
    sync = engine.sync_engine

    @event.listens_for(sync, "do_connect")
    def _connect(dialect: Any, record: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
        with translating(target, CONNECTING):
            return dialect.connect(*cargs, **cparams)

    @event.listens_for(sync, "before_cursor_execute")
    def _stamp(conn: Connection, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        conn.info[_STARTED] = time.monotonic()

    @event.listens_for(sync, "handle_error")
    def _error(context: ExceptionContext) -> None:
        # SQLAlchemy's own judgement counts too: it asks asyncpg whether the connection is closed, which
        # catches a backend killed between two statements (asyncpg then reports a protocol-state error).
        if not (context.is_disconnect or is_connection_fault(context.original_exception)):
            return
        context.is_disconnect = True  # the connection is not to be reused (a timed-out one is mid-protocol)
        if context.connection is not None and not context.connection.invalidated:
            _abort(context.connection.connection)
        if context.is_pre_ping:  # a dead pooled connection: the pool replaces it, the caller never sees this
            return
        started = context.connection.info.get(_STARTED) if context.connection is not None else None
        waited = time.monotonic() - started if isinstance(started, float) else 0.0
        raise unavailable(target, "running a statement", waited, context.original_exception)


def _abort(dbapi_connection: Any) -> None:
    """Close a faulty connection at once: SQLAlchemy's invalidation of an asyncpg connection first tries
    a graceful close for up to 2 s, which a hung server makes the caller wait out in full."""
    driver = getattr(dbapi_connection, "driver_connection", None)
    terminate = getattr(driver, "terminate", None)
    if callable(terminate):
        terminate()


_STARTED: Final = "jedisos_statement_started"
"""Key in a connection's ``info``: when its last statement was sent (what a fault's wait is counted from)."""
