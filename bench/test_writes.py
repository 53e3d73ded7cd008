"""Audit and cost write paths, in one run so their ratios hold (design §4-3, §4-4).

Each round writes the same ``--bench-rows`` generated rows; rows/s = rows / mean round time.
The summary at the end of the run prints each writer's rows/s as a ratio to raw ``COPY``
(the issue's target: the repositories' batched writers at >= 0.8x COPY).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bench import writers
from bench.conftest import Rates
from jedisos_db.runtime.db.engine import create_engine
from jedisos_db.runtime.owners import SCHEMA
from jedisos_db.runtime.urls import DatabaseURL

KINDS = ["audit", "cost"]




@pytest.fixture(scope="module")
def engine(runner: asyncio.Runner, migrated_db: DatabaseURL) -> Iterator[AsyncEngine]:
    eng = create_engine(url=migrated_db)
    yield eng
    runner.run(eng.dispose())


@pytest.fixture
def rows(request: pytest.FixtureRequest) -> int:
    return int(request.config.getoption("--bench-rows"))


def _bench(benchmark: Any, runner: asyncio.Runner, conn: asyncpg.Connection, kind: str,
           make: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Time ``make()`` per round on an emptied table (TRUNCATE is setup, not timed)."""

    def setup() -> None:
        runner.run(conn.execute(f"TRUNCATE {SCHEMA}.{writers.TABLES[kind]}"))

    benchmark.pedantic(lambda: runner.run(make()), setup=setup, rounds=5, warmup_rounds=1)


def _check(runner: asyncio.Runner, conn: asyncpg.Connection, kind: str, n: int) -> None:
    count = runner.run(conn.fetchval(f"SELECT count(*) FROM {SCHEMA}.{writers.TABLES[kind]}"))
    assert count == n, f"{kind}: expected {n} rows written by the last round, the table has {count}"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("path", ["copy", "single_insert"])
def test_raw_driver(benchmark: Any, runner: asyncio.Runner, conn: asyncpg.Connection, kind: str, path: str,
                    rows: int, rates: Rates) -> None:
    """Pre-built tuples through asyncpg: one COPY (the baseline every ratio is taken against), or one INSERT each."""
    write = writers.copy if path == "copy" else writers.single
    benchmark.group = f"{kind} writes"
    data = writers.tuples(kind, writers.generate(kind, rows))
    _bench(benchmark, runner, conn, kind, lambda: write(conn, kind, data))
    _check(runner, conn, kind, rows)
    rates.record(benchmark, f"{kind} writes", path, rows)


@pytest.mark.parametrize("kind", KINDS)
def test_orm_per_row(benchmark: Any, runner: asyncio.Runner, conn: asyncpg.Connection, engine: AsyncEngine,
                     kind: str, rows: int, rates: Rates) -> None:
    benchmark.group = f"{kind} writes"
    data = writers.generate(kind, rows)
    _bench(benchmark, runner, conn, kind, lambda: writers.orm_per_row(engine, kind, data))
    _check(runner, conn, kind, rows)
    rates.record(benchmark, f"{kind} writes", "orm_per_row", rows)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "path", ["repository_single", "repository_batch", "repository_batch+validate", "repository_batch_dicts"]
)
def test_repository(benchmark: Any, runner: asyncio.Runner, conn: asyncpg.Connection, engine: AsyncEngine,
                    kind: str, path: str, rows: int, rates: Rates) -> None:
    repo = writers.repository_writers(engine, kind)
    if isinstance(repo, str):
        pytest.skip(repo)
    one_by_one, batch, to_events = repo
    benchmark.group = f"{kind} writes"
    data = writers.generate(kind, rows)
    events = to_events(data)
    if path == "repository_batch+validate":
        # Building the events (where the repository validates) inside the timed section.
        _bench(benchmark, runner, conn, kind, lambda: batch(to_events(data)))
    elif path == "repository_batch_dicts":
        # Plain dicts straight to record_many: validated column by column inside the timed section.
        _bench(benchmark, runner, conn, kind, lambda: batch(data))
    else:
        write = batch if path == "repository_batch" else one_by_one
        _bench(benchmark, runner, conn, kind, lambda: write(events))
    _check(runner, conn, kind, rows)
    rates.record(benchmark, f"{kind} writes", path, rows)
