"""Audit and cost write paths, in one run so their ratios hold (design §4-3, §4-4).

Each round writes the same ``--bench-rows`` generated rows; rows/s = rows / median round time.
The summary at the end of the run prints each writer's rows/s as a ratio to raw ``COPY`` (issue 12's
goals: batched dicts >= 0.8x COPY; the EventWriter from one producer awaiting each event in enqueue mode
>= 0.5x, with 8 producers in commit mode >= 0.05x; ``record`` >= 0.7x a raw single INSERT), and the
enqueue p99 latency.

Why the batched-dict ratio holds: validating a dict costs the client 2-4 us, against the server's 6-12 us to
write the row. Validated first and sent after, the two add up (0.6-0.8x COPY), and on 2 shared cores the
client's share of CPU swings with every other process (issue 12 saw 1.07x to 0.51x). asyncpg's binary COPY
cannot overlap them: it sends nothing before 512 KB of rows are encoded. A large batch of dicts therefore
streams as a text-format COPY (``EventRepository.record_many``): each chunk of 64-256 rows is validated,
written as COPY text and sent while the server parses the one before, so the batch takes about as long as
the slower of client and server, and the server's share no longer waits for the client's.
"""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bench import writers
from bench.conftest import Rates
from jedisos_db.harness import designs
from jedisos_db.harness.latency import Samples
from jedisos_db.harness.measure import writes
from jedisos_db.runtime.db.engine import create_engine
from jedisos_db.runtime.owners import SCHEMA
from jedisos_db.runtime.repositories.writer import EventWriter
from jedisos_db.runtime.urls import DatabaseURL

KINDS = ["audit", "cost"]
PRODUCERS = 8


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
    one_by_one, batch, to_events = writers.repository_writers(engine, kind)
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


@pytest.mark.parametrize("kind", KINDS)
def test_repository_batch_keyed(benchmark: Any, runner: asyncio.Runner, conn: asyncpg.Connection,
                                engine: AsyncEngine, kind: str, rows: int, rates: Rates) -> None:
    """Pre-built events that each carry an idempotency key: the retry-safe INSERT ... ON CONFLICT path."""
    repo = writers.REPOSITORIES[kind](engine)
    events = [repo.event.coerce({**r, "idempotency_key": f"{kind}-{i}"}) for i, r in
              enumerate(writers.generate(kind, rows))]
    benchmark.group = f"{kind} writes"
    _bench(benchmark, runner, conn, kind, lambda: _discard(repo.record_many(events)))
    _check(runner, conn, kind, rows)
    rates.record(benchmark, f"{kind} writes", "repository_batch_keyed", rows)


async def _discard(write: Coroutine[Any, Any, int]) -> None:
    await write


@pytest.mark.parametrize("kind", KINDS)
def test_writer_enqueue(benchmark: Any, runner: asyncio.Runner, conn: asyncpg.Connection, engine: AsyncEngine,
                        kind: str, rows: int, rates: Rates) -> None:
    """One producer awaiting each ``record(event, durability="enqueue")``, the writer drained at the end."""
    repo = writers.REPOSITORIES[kind](engine)
    events = [repo.event.coerce(r) for r in writers.generate(kind, rows)]
    latencies: list[int] = []

    async def produce() -> None:
        latencies.clear()
        await writers.writer_enqueue(repo, events, latencies)

    benchmark.group = f"{kind} writes"
    _bench(benchmark, runner, conn, kind, produce)
    _check(runner, conn, kind, rows)
    rates.record(benchmark, f"{kind} writes", "writer_enqueue", rows)
    calls = Samples([ns / 1e9 for ns in latencies])
    benchmark.extra_info["enqueue_p99_us"] = calls.p99_ms * 1000
    rates.note(f"{kind} writer enqueue latency (last round, {len(latencies)} calls): p50 {calls.p50_ms * 1000:.1f} "
               f"us, p99 {calls.p99_ms * 1000:.1f} us, max {max(latencies) / 1000:.1f} us")


@pytest.mark.parametrize("kind", KINDS)
def test_writer_commit(benchmark: Any, runner: asyncio.Runner, conn: asyncpg.Connection, engine: AsyncEngine,
                       kind: str, rows: int, rates: Rates) -> None:
    """PRODUCERS concurrent producers, each awaiting the commit of every event it records."""
    repo = writers.REPOSITORIES[kind](engine)
    events = [repo.event.coerce(r) for r in writers.generate(kind, rows)]

    async def produce() -> None:
        async with EventWriter(repo) as writer:
            async def producer(share: list[Any]) -> None:
                for event in share:
                    await writer.record(event, durability="commit")

            await asyncio.gather(*(producer(events[i::PRODUCERS]) for i in range(PRODUCERS)))

    benchmark.group = f"{kind} writes"
    _bench(benchmark, runner, conn, kind, produce)
    _check(runner, conn, kind, rows)
    rates.record(benchmark, f"{kind} writes", f"writer_commit_{PRODUCERS}_producers", rows)


PAIRED_ROUNDS = 11


def test_paired_ratios(runner: asyncio.Runner, migrated_db: DatabaseURL, rows: int, rates: Rates) -> None:
    """COPY, ``record_many`` of dicts and the enqueue writer interleaved round by round (the ``writes``
    measurement of ``verify --design``): each path's x COPY as the median of its per-round ratios, which a
    slow stretch of the shared machine moves far less than the ratios of separately timed benchmarks above."""
    measured = runner.run(writes.throughput(migrated_db, designs.load("recommended"), rows=rows,
                                            rounds=PAIRED_ROUNDS))
    for kind in KINDS:
        ratios = {path: float(measured.figures[f"{kind}_{path}_x_copy"]) for path in writes.PATHS[1:]}
        assert all(r > 0 for r in ratios.values()), ratios
        rates.note(f"{kind}, paired rounds ({PAIRED_ROUNDS} x {rows} rows, COPY at "
                   f"{float(measured.figures[f'{kind}_copy_rows_per_s']):,.0f} rows/s): "
                   + ", ".join(f"{path} {r:.3f}x COPY" for path, r in ratios.items()))


SINGLE_ROWS = 500
"""Events per round of the paired single-event comparison (each one INSERT and one commit)."""


def test_paired_single_insert(runner: asyncio.Runner, conn: asyncpg.Connection, engine: AsyncEngine, rows: int,
                              rates: Rates) -> None:
    """``record`` one event at a time against a raw single INSERT through asyncpg (issue 12's goal: >= 0.7x),
    interleaved round by round like :func:`test_paired_ratios`: the median of the per-round ratios."""
    n = min(rows, SINGLE_ROWS)
    for kind in KINDS:
        one_by_one, _, to_events = writers.repository_writers(engine, kind)
        data = writers.generate(kind, n)
        events, tuples = to_events(data), writers.tuples(kind, data)

        async def raw_round(kind: str = kind, tuples: list[tuple[Any, ...]] = tuples) -> float:
            return await writes.timed(conn, kind, n, lambda: writers.single(conn, kind, tuples))

        async def record_round(kind: str = kind, events: list[Any] = events,
                               write: Callable[[list[Any]], Coroutine[Any, Any, None]] = one_by_one) -> float:
            return await writes.timed(conn, kind, n, lambda: write(events))

        rounds = [(runner.run(raw_round()), runner.run(record_round())) for _ in range(PAIRED_ROUNDS + 1)][1:]
        raw, record = [r for r, _ in rounds], [r for _, r in rounds]  # the first round warmed both up
        ratio = writes.paired_ratio(raw, record)
        assert ratio > 0
        rates.note(f"{kind}, paired rounds ({PAIRED_ROUNDS} x {n} events): record {ratio:.3f}x raw single INSERT "
                   f"({n / statistics.median(raw):,.0f} vs {n / statistics.median(record):,.0f} rows/s)")
