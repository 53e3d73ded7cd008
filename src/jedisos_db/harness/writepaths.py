"""The write paths of the audit and cost tables, each writing the same generated rows: what the
pytest-benchmark suite (``bench/test_writes.py``) times and the per-design ``writes`` measurement
(:mod:`jedisos_db.harness.measure.writes`) compares, one copy for both.

- ``single``: one INSERT per event on one asyncpg connection (autocommit), the simplest writer;
- ``copy``: raw ``COPY`` of pre-built tuples through asyncpg's ``copy_records_to_table`` — the ceiling;
- ``orm_per_row``: naive SQLAlchemy ORM, one session and commit per event — the floor;
- ``repository_single`` / ``repository_batch``: the reference data layer's repositories
  (``record`` and ``record_many``);
- ``writer_enqueue``: the :class:`~jedisos_db.runtime.repositories.writer.EventWriter` fed by one producer
  awaiting each ``record(event, durability="enqueue")``, drained at the end.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from jedisos_db.harness import datagen
from jedisos_db.runtime.db import models
from jedisos_db.runtime.owners import SCHEMA
from jedisos_db.runtime.repositories.audit import AuditLogRepository
from jedisos_db.runtime.repositories.base import EventRepository, copy_columns
from jedisos_db.runtime.repositories.cost import CostRepository
from jedisos_db.runtime.repositories.writer import EventWriter

Row = dict[str, Any]

KINDS = ("audit", "cost")
MODELS: dict[str, type[models.Base]] = {"audit": models.AuditLog, "cost": models.CostRecord}
TABLES = {kind: model.__tablename__ for kind, model in MODELS.items()}
COLUMNS = {kind: copy_columns(model) for kind, model in MODELS.items()}
REPOSITORIES: dict[str, type[EventRepository[Any, Any]]] = {"audit": AuditLogRepository, "cost": CostRepository}


def generate(kind: str, n: int, seed: int = 0, **options: Any) -> list[Row]:
    """``n`` generated rows of ``kind`` (``options`` go to the datagen generator: users, start, span_days)."""
    return datagen.audit_rows(n, seed=seed, **options) if kind == "audit" else datagen.cost_rows(n, seed=seed,
                                                                                                 **options)


def tuples(kind: str, rows: Sequence[Row], columns: Sequence[str] | None = None) -> list[tuple[Any, ...]]:
    """Positional rows for ``COPY`` in ``columns`` order (default: the repository's, :data:`COLUMNS`)."""
    # asyncpg's jsonb codec takes text.
    return datagen.as_tuples(rows, columns or COLUMNS[kind], {"details": json.dumps})


def insert_sql(kind: str) -> str:
    cols = COLUMNS[kind]
    return (f"INSERT INTO {SCHEMA}.{TABLES[kind]} ({', '.join(cols)}) "
            f"VALUES ({', '.join(f'${i}' for i in range(1, len(cols) + 1))})")


async def single(conn: asyncpg.Connection, kind: str, rows: Sequence[tuple[Any, ...]]) -> None:
    stmt = insert_sql(kind)
    for r in rows:
        await conn.execute(stmt, *r)


async def copy(conn: asyncpg.Connection, kind: str, rows: Sequence[tuple[Any, ...]],
               columns: Sequence[str] | None = None) -> None:
    """Raw ``COPY`` of pre-built tuples (in ``columns`` order, default :data:`COLUMNS`)."""
    await conn.copy_records_to_table(TABLES[kind], schema_name=SCHEMA, columns=list(columns or COLUMNS[kind]),
                                     records=rows)


async def table_columns(conn: asyncpg.Connection, kind: str) -> tuple[str, ...]:
    """The repository's COPY columns the database's table has (a design below head may lack some)."""
    present = {r[0] for r in await conn.fetch(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2",
        SCHEMA, TABLES[kind])}
    return tuple(c for c in COLUMNS[kind] if c in present)


async def record_rows(engine: AsyncEngine, conn: asyncpg.Connection, kind: str, rows: Sequence[Row]) -> bool:
    """Write ``rows`` through the repository's ``record_many`` when the database's table has every column it
    writes (True); else raw ``COPY`` of the columns the table has (False: the repository cannot write there)."""
    columns = await table_columns(conn, kind)
    if columns == COLUMNS[kind]:
        await REPOSITORIES[kind](engine).record_many(list(rows))
        return True
    await copy(conn, kind, tuples(kind, rows, columns), columns)
    return False


async def orm_per_row(engine: AsyncEngine, kind: str, rows: Sequence[Row]) -> None:
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    model = MODELS[kind]
    for r in rows:
        async with sessions() as session:
            session.add(model(**r))
            await session.commit()


def repository_writers(engine: AsyncEngine, kind: str) -> tuple[
        Callable[[Sequence[Any]], Coroutine[Any, Any, None]], Callable[[Sequence[Any]], Coroutine[Any, Any, None]],
        Callable[[Sequence[Row]], list[Any]]]:
    """(record-one-by-one, record_many, rows -> events) of the repository."""
    repo = REPOSITORIES[kind](engine)

    async def one_by_one(events: Sequence[Any]) -> None:
        for e in events:
            await repo.record(e)

    async def batch(events: Sequence[Any]) -> None:
        await repo.record_many(events)

    def to_events(rows: Sequence[Row]) -> list[Any]:
        return [repo.event.coerce(r) for r in rows]

    return one_by_one, batch, to_events


async def writer_enqueue(repository: EventRepository[Any, Any], events: Sequence[Any],
                         latencies: list[int] | None = None) -> None:
    """One producer awaiting each ``record(event, durability="enqueue")`` of a fresh EventWriter, drained at the
    end; each call's nanoseconds are appended to ``latencies`` when given."""
    async with EventWriter(repository) as writer:
        for event in events:
            started = time.perf_counter_ns()
            await writer.record(event, durability="enqueue")
            if latencies is not None:
                latencies.append(time.perf_counter_ns() - started)
