"""The write paths the audit and cost benches compare, each writing the same generated rows.

- ``single``: one INSERT per event on one asyncpg connection (autocommit), the simplest writer;
- ``copy``: raw ``COPY`` through asyncpg's ``copy_records_to_table`` — the ceiling;
- ``orm_per_row``: naive SQLAlchemy ORM, one session and commit per event — the floor;
- ``repository_single`` / ``repository_batch``: the reference data layer's repositories
  (``record`` and ``record_many``), when ``jedisos_db.runtime.repositories`` is installed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from jedisos_db.harness import datagen
from jedisos_db.runtime.db import models
from jedisos_db.runtime.owners import SCHEMA
from jedisos_db.runtime.repositories.base import copy_columns

Row = dict[str, Any]

MODELS: dict[str, type[models.Base]] = {"audit": models.AuditLog, "cost": models.CostRecord}
TABLES = {kind: model.__tablename__ for kind, model in MODELS.items()}
COLUMNS = {kind: copy_columns(model) for kind, model in MODELS.items()}


def generate(kind: str, n: int, seed: int = 0) -> list[Row]:
    return datagen.audit_rows(n, seed=seed) if kind == "audit" else datagen.cost_rows(n, seed=seed)


def tuples(kind: str, rows: Sequence[Row]) -> list[tuple[Any, ...]]:
    # asyncpg's jsonb codec takes text.
    return datagen.as_tuples(rows, COLUMNS[kind], {"details": json.dumps})


def insert_sql(kind: str) -> str:
    cols = COLUMNS[kind]
    return (f"INSERT INTO {SCHEMA}.{TABLES[kind]} ({', '.join(cols)}) "
            f"VALUES ({', '.join(f'${i}' for i in range(1, len(cols) + 1))})")


async def single(conn: asyncpg.Connection, kind: str, rows: Sequence[tuple[Any, ...]]) -> None:
    stmt = insert_sql(kind)
    for r in rows:
        await conn.execute(stmt, *r)


async def copy(conn: asyncpg.Connection, kind: str, rows: Sequence[tuple[Any, ...]]) -> None:
    await conn.copy_records_to_table(TABLES[kind], schema_name=SCHEMA, columns=list(COLUMNS[kind]), records=rows)


async def orm_per_row(engine: AsyncEngine, kind: str, rows: Sequence[Row]) -> None:
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    model = MODELS[kind]
    for r in rows:
        async with sessions() as session:
            session.add(model(**r))
            await session.commit()


def repository_writers(engine: AsyncEngine, kind: str) -> tuple[
        Callable[[Sequence[Any]], Coroutine[Any, Any, None]], Callable[[Sequence[Any]], Coroutine[Any, Any, None]],
        Callable[[Sequence[Row]], list[Any]]] | str:
    """(record-one-by-one, record_many, rows -> events) of the repository, or why it is absent."""
    try:
        if kind == "audit":
            from jedisos_db.runtime.repositories.audit import AuditEvent as Event
            from jedisos_db.runtime.repositories.audit import AuditLogRepository as Repo
        else:
            from jedisos_db.runtime.repositories.cost import CostEvent as Event
            from jedisos_db.runtime.repositories.cost import CostRepository as Repo
    except ImportError as exc:
        return f"jedisos_db.runtime.repositories (the data layer's writers) cannot be imported: {exc}"
    repo = Repo(engine)

    async def one_by_one(events: Sequence[Any]) -> None:
        for e in events:
            await repo.record(e)

    async def batch(events: Sequence[Any]) -> None:
        await repo.record_many(events)

    def to_events(rows: Sequence[Row]) -> list[Any]:
        return [Event(**r) for r in rows]

    return one_by_one, batch, to_events
