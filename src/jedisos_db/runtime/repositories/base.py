"""The one repository base: generic over its model, able to join the caller's transaction.

Every public method of a repository takes ``session: AsyncSession | None = None``. Given a session,
it runs inside it and never commits: the caller owns the transaction, so the writes of several
repositories commit or roll back together (``async with repo.begin() as s: ...``, or any
``AsyncSession`` on the same database). Without one, the method opens its own transaction and
commits it. A constraint violation comes out as a typed error either way; inside a caller's
transaction PostgreSQL has then aborted it, and the caller must roll back.

The helpers every table needs live here once: the row by key or :class:`NotFoundError`, ``UPDATE
... RETURNING`` or :class:`NotFoundError` (stamping ``updated_at``: the design's DDL has no trigger
for it), ``DELETE ... RETURNING``, and ``COPY`` of validated rows whose column order is derived
from the model (:func:`copy_columns`).
"""

from __future__ import annotations

import contextlib
import functools
import operator
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, ClassVar, Generic, Protocol, Self, TypeVar, cast

import asyncpg
from sqlalchemy import Column, DateTime, Table, Text, delete, func, insert, literal, select, update
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.util import greenlet_spawn

from jedisos_db.runtime.db.engine import schema_of
from jedisos_db.runtime.db.models import Base
from jedisos_db.runtime.errors import (
    DatabaseUnavailableError,
    DuplicateError,
    InvalidInputError,
    JedisosDBError,
    MissingReferenceError,
    NotFoundError,
)

ModelT = TypeVar("ModelT", bound=Base)

UNIQUE_VIOLATION = "23505"
FOREIGN_KEY_VIOLATION = "23503"

Row = tuple[Any, ...]


def _table(model: type[Base]) -> Table:
    return cast(Table, model.__table__)


def _server_generated(column: Column[Any]) -> bool:
    table = column.table
    return (column is table.autoincrement_column or column.identity is not None or column.computed is not None
            or (column.primary_key and column.server_default is not None))


@functools.cache
def copy_columns(model: type[Base]) -> tuple[str, ...]:
    """The columns a ``COPY`` (and a positional row) of ``model`` carries, in the table's order.

    All but those the server generates: a serial, identity or computed column, or a primary key
    with a server default (``gen_random_uuid()``). Every COPY column order comes from here.
    """
    return tuple(c.name for c in _table(model).columns if not _server_generated(c))


@functools.cache
def stamped_columns(model: type[Base]) -> frozenset[str]:
    """Timestamp columns with a server default (``now()``): in a row, None there means "the write's time"."""
    return frozenset(c.name for c in _table(model).columns if isinstance(c.type, DateTime)
                     and c.server_default is not None)


@functools.cache
def _json_columns(model: type[Base]) -> frozenset[str]:
    return frozenset(c.name for c in _table(model).columns if isinstance(c.type, JSONB))


def row_maker(model: type[Base]) -> Callable[[Mapping[str, Any]], Row]:
    """A function taking a mapping of checked values to the row in :func:`copy_columns` order.

    ``operator.itemgetter`` builds the tuple in C: batch writers call this once per row.
    """
    columns = copy_columns(model)
    if len(columns) == 1:
        return lambda values: (values[columns[0]],)
    return cast(Callable[[Mapping[str, Any]], Row], operator.itemgetter(*columns))


class RowEvent(Protocol):
    """A validated event that knows its row (in :func:`copy_columns` order) and how to be coerced."""

    @property
    def row(self) -> Row: ...

    @classmethod
    def coerce(cls, item: Any, index: int | None = None) -> Self: ...


EventT = TypeVar("EventT", bound=RowEvent)


class Repository(Generic[ModelT]):
    """Base of the repository of one table: holds the engine and a session factory whose objects
    stay readable after commit. Subclasses set :attr:`model` (and :attr:`noun`, :attr:`constraints`)."""

    model: type[ModelT]
    noun: ClassVar[str] = "row"
    """What one row is called in a :class:`NotFoundError` ("no tool with id ...")."""
    constraints: ClassVar[Mapping[str, str]] = {}
    """Constraint name -> the field a violation of it is reported on."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncSession]:
        """A new transaction to pass as ``session=``: commits when the block ends, rolls back on an error."""
        async with self._sessions.begin() as session:
            yield session

    @asynccontextmanager
    async def _transaction(self, session: AsyncSession | None = None) -> AsyncIterator[AsyncSession]:
        """``session`` (the caller's transaction, never committed here) or a new one, committed at the end."""
        try:
            if session is not None:
                yield session
            else:
                async with self._sessions.begin() as own:
                    yield own
        except IntegrityError as exc:
            raise translate(exc, self.constraints) from None

    def _missing(self, key: Any, by: str = "id") -> NotFoundError:
        shown = repr(key) if isinstance(key, str) else str(key)
        return NotFoundError(f"{self.model.__tablename__}: no {self.noun} with {by} {shown}")

    def _where(self, key: Any, by: str) -> Any:
        return getattr(self.model, by) == key

    async def _find(self, key: Any, *, by: str = "id", lock: bool = False,
                    session: AsyncSession | None = None) -> ModelT | None:
        """The row whose ``by`` column equals ``key``, or None; ``lock`` holds it (``FOR UPDATE``)
        until the transaction ends, for a read-modify-write in one transaction."""
        stmt = select(self.model).where(self._where(key, by))
        if lock:
            # populate_existing: an object the session already holds is refreshed from the locked row.
            stmt = stmt.with_for_update().execution_options(populate_existing=True)
        async with self._transaction(session) as s:
            return (await s.execute(stmt)).scalar_one_or_none()

    async def _get(self, key: Any, *, by: str = "id", lock: bool = False,
                   session: AsyncSession | None = None) -> ModelT:
        """As :meth:`_find`, but a missing row raises :class:`NotFoundError`."""
        row = await self._find(key, by=by, lock=lock, session=session)
        if row is None:
            raise self._missing(key, by)
        return row

    async def _update(self, key: Any, values: Mapping[str, Any], *, by: str = "id",
                      session: AsyncSession | None = None) -> ModelT:
        """``UPDATE ... RETURNING`` the row (``updated_at`` stamped where the table has it), or
        :class:`NotFoundError`."""
        if "updated_at" in _table(self.model).c:
            values = {**values, "updated_at": func.now()}
        stmt = (update(self.model).where(self._where(key, by)).values(**values).returning(self.model)
                .execution_options(populate_existing=True))
        async with self._transaction(session) as s:
            row = (await s.execute(stmt)).scalar_one_or_none()
        if row is None:
            raise self._missing(key, by)
        return row

    async def _delete(self, key: Any, *, by: str = "id", session: AsyncSession | None = None) -> bool:
        """``DELETE ... RETURNING``: True when a row was deleted."""
        primary = next(iter(_table(self.model).primary_key.columns))
        stmt = delete(self.model).where(self._where(key, by)).returning(primary)
        async with self._transaction(session) as s:
            return (await s.execute(stmt)).first() is not None

    async def count(self, *, session: AsyncSession | None = None) -> int:
        """Rows in the table."""
        async with self._transaction(session) as s:
            return int((await s.execute(select(func.count()).select_from(self.model))).scalar_one())

    async def _insert_row(self, row: Sequence[Any], *, session: AsyncSession | None = None) -> Any:
        """Insert one validated row (in :func:`copy_columns` order, JSON as text); returns its primary key.

        None in a stamped column leaves it to the column default, the transaction's ``now()``.
        """
        stamped, json = stamped_columns(self.model), _json_columns(self.model)
        values: dict[str, Any] = {}
        for name, value in zip(copy_columns(self.model), row, strict=True):
            if value is None and name in stamped:
                continue
            # The row holds JSON already encoded (what COPY sends); cast it rather than encode it twice.
            values[name] = sql_cast(literal(value, Text), JSONB) if name in json and value is not None else value
        primary = next(iter(_table(self.model).primary_key.columns))
        async with self._transaction(session) as s:
            return (await s.execute(insert(self.model).values(values).returning(primary))).scalar_one()

    @asynccontextmanager
    async def _driver(self) -> AsyncIterator[Any]:
        """A pooled asyncpg connection outside any transaction (each statement commits on its own).

        No ORM session, no ``BEGIN``/``COMMIT`` round trips: for writes that are one statement, hence
        atomic already (one ``INSERT``, one ``COPY``).
        """
        with database_faults(self._engine):
            # The pool's connection itself: an AsyncConnection around it costs as much as the INSERT.
            raw = await self._engine.raw_connection()
            try:
                yield raw.driver_connection
            finally:
                await greenlet_spawn(raw.close)

    async def _copy_rows(self, rows: list[Row], *, session: AsyncSession | None = None) -> int:
        """``COPY`` validated ``rows`` (in :func:`copy_columns` order) into the table, all or nothing.

        A None in a stamped column becomes the transaction's ``now()``, what the column default gives.
        Without ``session`` the COPY runs on a pooled connection as one statement of its own.
        """
        if session is not None:
            async with self._transaction(session) as s:
                conn = await s.connection()
                raw = await conn.get_raw_connection()
                with database_faults(self._engine):
                    return await self._copy(raw.driver_connection, rows, in_transaction=True)
        async with self._driver() as driver:
            return await self._copy(driver, rows, in_transaction=False)

    async def _copy(self, driver: Any, rows: list[Row], *, in_transaction: bool) -> int:
        columns = copy_columns(self.model)
        stamped = [i for i, name in enumerate(columns) if name in stamped_columns(self.model)]
        # A stamped column that is None in every row is left out: its default (now()) fills it, with no round
        # trip. One None among given times needs the transaction's now() first, so one transaction holds both.
        unstamped = [i for i in stamped if all(r[i] is None for r in rows)]
        mixed = [i for i in stamped if i not in unstamped and any(r[i] is None for r in rows)]
        if unstamped:
            keep = [i for i in range(len(columns)) if i not in unstamped]
            columns = tuple(columns[i] for i in keep)
            pick = operator.itemgetter(*keep)
            rows = [pick(r) for r in rows]
            mixed = [keep.index(i) for i in mixed]
        async with contextlib.AsyncExitStack() as stack:
            if mixed and not in_transaction:
                await stack.enter_async_context(driver.transaction())
            if mixed:
                now = await driver.fetchval("SELECT now()")
                for i in mixed:
                    rows = [r if r[i] is not None else (*r[:i], now, *r[i + 1:]) for r in rows]
            await driver.copy_records_to_table(self.model.__tablename__, schema_name=schema_of(self._engine),
                                               columns=columns, records=rows)
        return len(rows)


class EventRepository(Repository[ModelT], Generic[ModelT, EventT]):
    """The repository of an append-only event table (audit log, LLM costs): events are validated
    when built, then written with one ``INSERT`` (:meth:`record`) or one ``COPY`` (:meth:`record_many`)."""

    event: type[EventT]

    @staticmethod
    def fast_rows(items: list[Any]) -> list[Row] | None:
        """The rows of a batch of plain dicts, checked column by column; None when the row-by-row path
        must decide (it names the offending row). Subclasses supply one; by default every row is built."""
        return None

    async def record(self, event: EventT | Mapping[str, Any], *, session: AsyncSession | None = None) -> int:
        """Insert one event; returns its id.

        Without ``session`` it is one prepared ``INSERT`` on a pooled connection, committed on its own:
        one round trip, no ORM (the single-event path JediSOS takes on every turn).
        """
        row = self.event.coerce(event).row
        if session is not None:
            return int(await self._insert_row(row, session=session))
        async with self._driver() as driver:
            return int(await driver.fetchval(_insert_sql(self.model, schema_of(self._engine)), *row))

    async def write_rows(self, rows: list[Row], *, session: AsyncSession | None = None) -> int:
        """Write rows already validated (each an event's :attr:`RowEvent.row`) with one ``COPY``: the batch
        writer's path. Returns the number written."""
        return await self._copy_rows(rows, session=session) if rows else 0

    async def record_many(self, events: Iterable[EventT | Mapping[str, Any]], *,
                          session: AsyncSession | None = None) -> int:
        """Write all ``events`` with one ``COPY``; returns the number written. All or nothing.

        Every event is validated before anything is sent; an invalid one raises with its row index.
        A list of plain dicts takes the column-wise :meth:`fast_rows` (same rules, checked per column).
        """
        items = events if isinstance(events, list) else list(events)
        rows = self.fast_rows(items)
        if rows is None:
            event = self.event
            rows = [e.row if type(e) is event else event.coerce(e, i).row for i, e in enumerate(items)]
        if not rows:
            return 0
        return await self._copy_rows(rows, session=session)


@functools.cache
def _insert_sql(model: type[Base], schema: str) -> str:
    """The single-row ``INSERT ... RETURNING`` of :func:`copy_columns` as positional parameters; a stamped
    column takes ``now()`` where its parameter is NULL (what the column default gives)."""
    columns = copy_columns(model)
    stamped = stamped_columns(model)
    values = [f"coalesce(${i}, now())" if name in stamped else f"${i}" for i, name in enumerate(columns, 1)]
    primary = next(iter(_table(model).primary_key.columns)).name
    return (f"INSERT INTO {schema}.{model.__tablename__} ({', '.join(columns)}) "
            f"VALUES ({', '.join(values)}) RETURNING {primary}")


def _connection_fault(exc: BaseException) -> bool:
    """True for a lost, refused or timed-out connection (and a statement cancelled by the server), from
    SQLAlchemy or straight from asyncpg."""
    if isinstance(exc, DBAPIError):
        cause = _driver_error(exc)
        return exc.connection_invalidated or (cause is not None and cause is not exc and _connection_fault(cause))
    if isinstance(exc, asyncpg.InterfaceError):
        return "connection is closed" in str(exc)
    return isinstance(exc, OSError | asyncpg.PostgresConnectionError | asyncpg.exceptions.OperatorInterventionError)


@contextlib.contextmanager
def database_faults(engine: AsyncEngine) -> Iterator[None]:
    """Re-raise a connection fault as :class:`DatabaseUnavailableError` (retryable), naming the server."""
    try:
        yield
    except JedisosDBError:
        raise
    except Exception as exc:
        if not _connection_fault(exc):
            raise
        reason = str(exc) or type(exc).__name__
        raise DatabaseUnavailableError(f"database at {engine.url.render_as_string()} unavailable: {reason}") from exc


def _driver_error(exc: DBAPIError) -> BaseException | None:
    return exc.orig.__cause__ if exc.orig is not None and exc.orig.__cause__ is not None else exc.orig


def translate(exc: IntegrityError, constraints: Mapping[str, str]) -> InvalidInputError:
    """Map a unique or foreign-key violation to :class:`DuplicateError` / :class:`MissingReferenceError`."""
    cause = _driver_error(exc)
    sqlstate = getattr(cause, "sqlstate", None)
    constraint = getattr(cause, "constraint_name", None) or "?"
    field = constraints.get(constraint, constraint)
    detail = (getattr(cause, "detail", None) or "").strip()
    if sqlstate == UNIQUE_VIOLATION:
        return DuplicateError(field, f"already exists ({detail or constraint})")
    if sqlstate == FOREIGN_KEY_VIOLATION:
        return MissingReferenceError(field, f"refers to a row that does not exist ({detail or constraint})")
    return InvalidInputError(field, f"violates {constraint}: {detail or cause}")
