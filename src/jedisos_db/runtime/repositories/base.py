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
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Generic, Protocol, Self, TypeVar, cast

import asyncpg
from sqlalchemy import Column, DateTime, Table, Text, Uuid, delete, func, literal, select, text, update
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.util import await_only, greenlet_spawn

from jedisos_db.runtime.db import faults
from jedisos_db.runtime.db.engine import schema_of
from jedisos_db.runtime.db.models import IDEMPOTENCY_KEY, KEYED, Base
from jedisos_db.runtime.errors import (
    ConflictError,
    DatabaseUnavailableError,
    DuplicateError,
    InvalidInputError,
    JedisosDBError,
    MissingReferenceError,
    NotFoundError,
)
from jedisos_db.runtime.repositories.validation import uuid_value

ModelT = TypeVar("ModelT", bound=Base)

UNIQUE_VIOLATION = "23505"
FOREIGN_KEY_VIOLATION = "23503"
CHECK_VIOLATION = "23514"
INTEGRITY_CLASS = "23"
"""SQLSTATE class 23: integrity constraint violations."""

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
T = TypeVar("T")


class Repository(Generic[ModelT]):
    """Base of the repository of one table: holds the engine and a session factory whose objects
    stay readable after commit. Subclasses set :attr:`model` (and :attr:`noun`, :attr:`constraints`)."""

    model: type[ModelT]
    noun: ClassVar[str] = "row"
    """What one row is called in a :class:`NotFoundError` ("no tool with id ...")."""
    constraints: ClassVar[Mapping[str, str]] = {}
    """Constraint name -> the field a violation of it is reported on."""
    key_field: ClassVar[str] = "id"
    """What the caller calls the primary key (``tool_id``), for the error when it is not a UUID."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        # Rendered once: rendering a URL (hashing one too) costs a third of a single-row write's client time.
        self._target = faults.target_of(engine)
        self._schema = schema_of(engine)

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
        column = getattr(self.model, by)
        if isinstance(column.type, Uuid):  # 'abc' would reach asyncpg and fail there, untyped
            key = uuid_value(self.key_field if by == "id" else by, key, required=True)
        return column == key

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
        primary = _primary(self.model)
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
        primary = _primary(self.model)
        key = values.get(IDEMPOTENCY_KEY)
        stmt = pg_insert(self.model).values(values)
        if key is not None:
            stmt = stmt.on_conflict_do_nothing(index_elements=[IDEMPOTENCY_KEY], index_where=text(KEYED))
        async with self._transaction(session) as s:
            new_id = (await s.execute(stmt.returning(primary))).scalar_one_or_none()
            if new_id is None:  # the key was written before: that write's id
                new_id = (await s.execute(select(primary).where(_table(self.model).c[IDEMPOTENCY_KEY] == key))
                          ).scalar_one()
            return new_id

    @contextlib.contextmanager
    def _violations(self) -> Iterator[None]:
        """A constraint violation asyncpg raises itself (``COPY``, the prepared ``INSERT``: no SQLAlchemy in
        between) as the same typed error :func:`translate` gives."""
        try:
            yield
        except JedisosDBError:
            raise
        except Exception as exc:
            if str(getattr(exc, "sqlstate", None) or "").startswith(INTEGRITY_CLASS):
                raise translate_driver(exc, self.constraints) from None
            raise

    def _within_driver(self, work: Callable[[Any], Awaitable[T]]) -> T:
        """``work(driver)`` on a pooled asyncpg connection outside any transaction (each statement commits on
        its own), run in one greenlet: checkout, the work and checkin cost one switch, not three.

        No ORM session, no ``BEGIN``/``COMMIT`` round trips: for writes that are one statement, hence atomic
        already (one ``INSERT``, one ``COPY``). SQLAlchemy never sees the raw driver's errors: a fault here is
        translated, and the connection closed so the pool's checkout check replaces it.
        """
        target = self._target
        with faults.translating(target, faults.CONNECTING):  # the pool's own wait (pool_timeout) too
            raw = self._engine.sync_engine.raw_connection()
        try:
            driver = raw.driver_connection
            with faults.translating(target, "writing", driver=driver), self._violations():
                return await_only(work(driver))
        finally:
            raw.close()

    async def _on_driver(self, work: Callable[[Any], Awaitable[T]]) -> T:
        """``work(driver)`` on a pooled connection (:meth:`_within_driver`), tried once more on another
        connection when the first failed before sending anything: a server that cut a pooled connection may
        have been heard (its goodbye read) but not seen closed yet, and asyncpg then refuses to start."""
        try:
            return await greenlet_spawn(self._within_driver, work)
        except DatabaseUnavailableError as exc:
            if not isinstance(exc.__cause__, asyncpg.InternalClientError):
                raise
        return await greenlet_spawn(self._within_driver, work)

    async def _copy_rows(self, batch: _Batch, *, session: AsyncSession | None = None) -> int:
        """Write a validated ``batch`` into the table with one ``COPY``, all or nothing.

        A None in a stamped column becomes the transaction's ``now()``, what the column default gives.
        Without ``session`` the COPY runs on a pooled connection as one statement of its own.
        """
        if session is not None:
            async with self._transaction(session) as s:
                conn = await s.connection()
                raw = await conn.get_raw_connection()
                async with faults.translating(self._target, "copying rows",
                                              driver=raw.driver_connection):
                    with self._violations():
                        return await self._copy(raw.driver_connection, batch, in_transaction=True)
        return await self._on_driver(lambda driver: self._copy(driver, batch, in_transaction=False))

    async def _copy(self, driver: Any, batch: _Batch, *, in_transaction: bool) -> int:
        """Send ``batch``; a batch with a None among given times needs the transaction's ``now()`` first,
        so that read and the write share one transaction."""
        if not batch.mixed:
            return await self._send(driver, batch, None)
        async with contextlib.AsyncExitStack() as stack:
            if not in_transaction:
                await stack.enter_async_context(driver.transaction())
            return await self._send(driver, batch, await driver.fetchval("SELECT now()"))

    async def _send(self, driver: Any, batch: _Batch, now: Any) -> int:
        """One statement writing ``batch`` (``now`` fills its mixed stamped columns); returns the number of rows
        written (a keyed row already stored is not written again)."""
        rows = batch.filled(now) if batch.mixed else batch.rows
        if not batch.keyed:
            await driver.copy_records_to_table(self.model.__tablename__, schema_name=self._schema,
                                               columns=batch.columns, records=rows)
            return len(rows)
        # Keyed rows: one INSERT of the batch as arrays (one per column, unnested back into rows) that skips
        # every key already stored, by an earlier try or earlier in this batch. COPY cannot skip a row.
        status = await driver.execute(
            _keyed_insert_sql(self.model, self._schema, batch.columns, self._engine.dialect),
            *(list(values) for values in zip(*rows, strict=True)))
        return int(status.rsplit(" ", 1)[-1])


@dataclass(frozen=True, slots=True)
class _Batch:
    """Validated rows as one statement sends them: only the columns that carry a value.

    A stamped column (``timestamp``: None means the write's time) that is None in every row is left out, and so
    is an idempotency key no row has: the column defaults fill them, with no round trip (and an unkeyed batch
    still writes to a database below revision 010). One None among given times needs the transaction's
    ``now()`` (``mixed``: positions in :attr:`columns`).
    """

    columns: tuple[str, ...]
    rows: list[Row]
    mixed: tuple[int, ...]
    keyed: bool

    @classmethod
    def of_columns(cls, model: type[Base], values: Sequence[Sequence[Any]]) -> _Batch:
        """The batch of column lists in :func:`copy_columns` order (what a column-wise validator gives)."""
        keep, mixed, keyed = _layout(model, values.__getitem__)
        return cls(tuple(copy_columns(model)[i] for i in keep), list(zip(*(values[i] for i in keep), strict=True)),
                   mixed, keyed)

    @classmethod
    def of_rows(cls, model: type[Base], rows: list[Row]) -> _Batch:
        """The batch of rows in :func:`copy_columns` order (each an event's :attr:`RowEvent.row`)."""
        keep, mixed, keyed = _layout(model, lambda i: [r[i] for r in rows])
        columns = copy_columns(model)
        if len(keep) < len(columns):
            pick = cast(Callable[[Row], Row], operator.itemgetter(*keep))
            rows = [pick(r) for r in rows]
        return cls(tuple(columns[i] for i in keep), rows, mixed, keyed)

    def filled(self, now: Any) -> list[Row]:
        rows = self.rows
        for i in self.mixed:
            rows = [r if r[i] is not None else (*r[:i], now, *r[i + 1:]) for r in rows]
        return rows


def _layout(model: type[Base], column: Callable[[int], Sequence[Any]]) -> tuple[list[int], tuple[int, ...], bool]:
    """Which columns of ``model`` a batch sends (positions in :func:`copy_columns`), which of those are mixed
    stamped columns (positions among those sent), and whether it carries idempotency keys; ``column(i)`` gives
    the batch's values of column ``i``."""
    names = copy_columns(model)
    key_at = _key_index(model)
    optional = [i for i, name in enumerate(names) if name in stamped_columns(model)]
    if key_at is not None:
        optional.append(key_at)
    values = {i: column(i) for i in optional}
    left_out = {i for i, vs in values.items() if vs.count(None) == len(vs)}
    keep = [i for i in range(len(names)) if i not in left_out]
    mixed = tuple(keep.index(i) for i in optional if i != key_at and i not in left_out and None in values[i])
    return keep, mixed, key_at is not None and key_at not in left_out


FIRST_CHUNK: Final = 64
"""Rows in the first chunk of a streamed batch; each next chunk is twice the last (up to :data:`MAX_CHUNK`)."""
MAX_CHUNK: Final = 256
"""The largest chunk of a streamed batch: small enough that the socket takes all of it at once, so the server
parses it while the client validates the next."""


def chunks(n: int) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` of each chunk a batch of ``n`` rows streams in. Small first, so the server starts early,
    then doubling up to :data:`MAX_CHUNK`; never more than half the rows left, so the chunks shrink again at the
    end and the server's work after the client's last row is one small chunk."""
    start, size = 0, FIRST_CHUNK
    while start < n:
        left = n - start
        take = left if left < 2 * FIRST_CHUNK else min(size, max(FIRST_CHUNK, left // 2))
        yield start, start + take
        start, size = start + take, min(2 * size, MAX_CHUNK)


TEXT_NULL: Final = "\\N"
"""NULL in ``COPY``'s text format."""


def text_column(values: Sequence[Any]) -> list[str]:
    """A column's validated values as ``COPY`` text fields: the value's text, with backslash, tab, newline and
    carriage return escaped, and :data:`TEXT_NULL` for None. Numbers, datetimes (their text carries the
    offset), UUIDs and addresses have none of those characters; the escaping runs only on a column that needs
    it, which a JSON document with an escaped quote does."""
    texts = [v if v is None or type(v) is str else str(v) for v in values]
    nulls = None in texts
    joined = "\x00".join([t for t in texts if t is not None] if nulls else cast(list[str], texts))
    if "\\" in joined or "\t" in joined or "\n" in joined or "\r" in joined:
        texts = [t if t is None else t.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
                 .replace("\r", "\\r") for t in texts]
    return [TEXT_NULL if t is None else t for t in texts] if nulls else cast(list[str], texts)


def text_chunk(values: Sequence[Sequence[Any]]) -> bytes:
    """Validated column lists as the lines of a text-format ``COPY``."""
    lines = map("\t".join, zip(*map(text_column, values), strict=True))
    return ("\n".join(lines) + "\n").encode()


class EventRepository(Repository[ModelT], Generic[ModelT, EventT]):
    """The repository of an append-only event table (audit log, LLM costs): events are validated
    when built, then written with one ``INSERT`` (:meth:`record`) or ``COPY`` (:meth:`record_many`)."""

    event: type[EventT]

    @staticmethod
    def fast_columns(items: list[Any]) -> Sequence[Sequence[Any]] | None:
        """The column lists (in :func:`copy_columns` order) of a batch of plain dicts, checked column by column;
        None when the row-by-row path must decide (it names the offending row). By default every row is built."""
        return None

    async def record(self, event: EventT | Mapping[str, Any], *, session: AsyncSession | None = None) -> int:
        """Insert one event; returns its id.

        Without ``session`` it is one prepared ``INSERT`` on a pooled connection, committed on its own:
        one round trip, no ORM (the single-event path JediSOS takes on every turn).
        """
        row = self.event.coerce(event).row
        if session is not None:
            return int(await self._insert_row(row, session=session))
        key_at = _key_index(self.model)
        key = None if key_at is None else row[key_at]
        if key_at is not None and key is None:
            # No key: the column is left out, as an unkeyed COPY leaves it (NULL anyway), so the same code writes
            # to a database below revision 010.
            row = (*row[:key_at], *row[key_at + 1:])
        schema = self._schema

        async def insert(driver: Any) -> int:
            new_id = await driver.fetchval(_insert_sql(self.model, schema, keyed=key is not None), *row)
            if new_id is None:  # the key was written before: that write's id
                new_id = await driver.fetchval(_keyed_id_sql(self.model, schema), key)
            return int(new_id)

        return await self._on_driver(insert)

    async def write_rows(self, rows: list[Row], *, session: AsyncSession | None = None) -> int:
        """Write rows already validated (each an event's :attr:`RowEvent.row`) with one ``COPY``: the batch
        writer's path. Returns the number written (keyed rows already stored are skipped)."""
        return await self._copy_rows(_Batch.of_rows(self.model, rows), session=session) if rows else 0

    async def record_many(self, events: Iterable[EventT | Mapping[str, Any]], *,
                          session: AsyncSession | None = None) -> int:
        """Write all ``events``; returns the number written. All or nothing.

        Events with an ``idempotency_key`` already stored (an earlier try of the same batch) are skipped, so a
        batch retried after an ambiguous failure writes each event once; rows without keys go by ``COPY``.

        An invalid event raises :class:`InvalidInputError` with its row index, and nothing is written.
        A list of plain dicts takes the column-wise :meth:`fast_columns` (same rules, checked per column).
        Without ``session``, a batch of more than two :func:`chunks` of plain dicts without keys streams into one
        ``COPY`` (text format, :func:`text_chunk`): each chunk is validated and sent while the server parses the one
        before, so the client's work and the server's overlap instead of adding up; an invalid row in a later
        chunk aborts the COPY, which leaves nothing. Otherwise every event is validated before anything is sent.
        """
        items = events if isinstance(events, list) else list(events)
        if session is None and len(items) > 2 * FIRST_CHUNK and all(type(d) is dict for d in items):
            keep = self._streamed_columns(cast(list[dict[str, Any]], items))
            if keep is not None:
                return await self._on_driver(lambda driver: self._stream(driver, cast(list[dict[str, Any]], items),
                                                                         keep))
        return await self._copy_rows(self._batch(items), session=session) if items else 0

    def _batch(self, items: list[Any]) -> _Batch:
        """``items`` validated, as the batch one statement sends: column-wise when :meth:`fast_columns` can
        decide, else from the events' rows as they are (no transposing back and forth)."""
        values = self.fast_columns(items)
        return _Batch.of_columns(self.model, values) if values is not None else \
            _Batch.of_rows(self.model, self._rows(items))

    def _columns(self, items: list[Any], start: int = 0) -> Sequence[Sequence[Any]]:
        """``items`` validated, as column lists in :func:`copy_columns` order (a streamed chunk)."""
        values = self.fast_columns(items)
        return values if values is not None else list(zip(*self._rows(items, start), strict=True))

    def _rows(self, items: list[Any], start: int = 0) -> list[Row]:
        """Each item's row, validated one by one; an error names its index in the whole batch (``start`` +
        position)."""
        event = self.event
        return [e.row if type(e) is event else event.coerce(e, start + i).row for i, e in enumerate(items)]

    def _streamed_columns(self, items: list[dict[str, Any]]) -> list[int] | None:
        """The columns (positions in :func:`copy_columns`) a streamed batch of plain dicts sends, chosen before
        its first row is validated; None when it cannot stream: a batch with idempotency keys (COPY cannot skip
        a stored key), or one None among given times (that needs the transaction's ``now()`` first)."""
        names = copy_columns(self.model)
        keep, mixed, keyed = _layout(self.model, lambda i: [d.get(names[i]) for d in items])
        return None if mixed or keyed else keep

    async def _stream(self, driver: Any, items: list[dict[str, Any]], keep: list[int]) -> int:
        """One ``COPY`` fed chunk by chunk: each chunk is validated and sent while the server parses the one
        before (:meth:`record_many`). An invalid row raises from the feed, which aborts the COPY: nothing stays."""
        names = copy_columns(self.model)
        pick = operator.itemgetter(*keep)

        async def feed() -> AsyncIterator[bytes]:
            for start, stop in chunks(len(items)):
                yield text_chunk(pick(self._columns(items[start:stop], start)))

        await driver.copy_to_table(self.model.__tablename__, schema_name=self._schema, source=feed(),
                                   columns=[names[i] for i in keep], format="text")
        return len(items)


_ON_KEY_CONFLICT: Final = f"ON CONFLICT ({IDEMPOTENCY_KEY}) WHERE {KEYED} DO NOTHING"
"""Skips a row whose idempotency key is stored (the partial unique index of revision 010)."""


@functools.cache
def _key_index(model: type[Base]) -> int | None:
    """Where the idempotency key sits in a row of ``model``; None for a table without one."""
    columns = copy_columns(model)
    return columns.index(IDEMPOTENCY_KEY) if IDEMPOTENCY_KEY in columns else None


@functools.cache
def _insert_sql(model: type[Base], schema: str, *, keyed: bool = False) -> str:
    """The single-row ``INSERT ... RETURNING`` of :func:`copy_columns` as positional parameters; a stamped
    column takes ``now()`` where its parameter is NULL (what the column default gives). ``keyed``: a stored
    key returns no row instead of failing; without it, the key column is left out (``record`` drops it from
    the row)."""
    columns = tuple(c for c in copy_columns(model) if keyed or c != IDEMPOTENCY_KEY)
    stamped = stamped_columns(model)
    values = [f"coalesce(${i}, now())" if name in stamped else f"${i}" for i, name in enumerate(columns, 1)]
    return (f"INSERT INTO {schema}.{model.__tablename__} ({', '.join(columns)}) "
            f"VALUES ({', '.join(values)}) {_ON_KEY_CONFLICT if keyed else ''} RETURNING {_primary(model).name}")


@functools.cache
def _keyed_insert_sql(model: type[Base], schema: str, columns: tuple[str, ...], dialect: Dialect) -> str:
    """``INSERT ... SELECT FROM unnest($1::type[], ...) ON CONFLICT DO NOTHING`` of ``columns``."""
    table = _table(model)
    arrays = ", ".join(f"${i}::{table.c[name].type.compile(dialect=dialect)}[]" for i, name in enumerate(columns, 1))
    return (f"INSERT INTO {schema}.{model.__tablename__} ({', '.join(columns)}) "
            f"SELECT * FROM unnest({arrays}) {_ON_KEY_CONFLICT}")


@functools.cache
def _keyed_id_sql(model: type[Base], schema: str) -> str:
    return f"SELECT {_primary(model).name} FROM {schema}.{model.__tablename__} WHERE {IDEMPOTENCY_KEY} = $1"


def _primary(model: type[Base]) -> Column[Any]:
    return next(iter(_table(model).primary_key.columns))


def _driver_error(exc: DBAPIError) -> BaseException | None:
    return exc.orig.__cause__ if exc.orig is not None and exc.orig.__cause__ is not None else exc.orig


def translate(exc: IntegrityError, constraints: Mapping[str, str]) -> InvalidInputError:
    """Map a unique or foreign-key violation to :class:`DuplicateError` / :class:`MissingReferenceError`."""
    return translate_driver(_driver_error(exc), constraints)


_PARTITION_KEY = re.compile(r'Partition key of the failing row contains \((?:")?([^")]+)')


def translate_driver(cause: BaseException | None, constraints: Mapping[str, str]) -> InvalidInputError:
    """As :func:`translate`, from the driver's own exception.

    A row no partition accepts (a partitioned design, e.g. a month not created yet) is a conflict with the
    table's state, naming the partition key.
    """
    sqlstate = getattr(cause, "sqlstate", None)
    if sqlstate == CHECK_VIOLATION and "no partition" in str(cause):
        key = _PARTITION_KEY.search(getattr(cause, "detail", None) or "")
        return ConflictError(key[1] if key else "partition key",
                             f"no partition accepts this value ({cause}); create it first "
                             "(jedisos_db.runtime.partitions.ensure_partitions)")
    constraint = getattr(cause, "constraint_name", None) or "?"
    field = constraints.get(constraint, constraint)
    detail = (getattr(cause, "detail", None) or "").strip()
    if sqlstate == UNIQUE_VIOLATION:
        return DuplicateError(field, f"already exists ({detail or constraint})")
    if sqlstate == FOREIGN_KEY_VIOLATION:
        return MissingReferenceError(field, f"refers to a row that does not exist ({detail or constraint})")
    return InvalidInputError(field, f"violates {constraint}: {detail or cause}")
