"""Measurement ``writes``: audit and cost writer throughput in the design's database, as rows/s and as a
multiple of raw ``COPY`` measured in the same call (issue 10, point 3).

In a fresh database built by the design, for each of ``audit`` and ``cost``, three paths write the same
``rows`` generated rows (:mod:`jedisos_db.harness.writepaths`, the benchmark suite's paths):

- ``copy``: raw asyncpg ``COPY`` of pre-built tuples — the baseline every ``x_copy`` is taken against;
- ``record_many``: the repository's ``record_many`` of plain dicts, validated inside the timed part;
- ``writer_enqueue``: the EventWriter fed by one producer awaiting each ``record(durability="enqueue")``,
  drained at the end.

Each round runs the three paths one after another, each on an emptied table (the ``TRUNCATE`` is not timed)
and checked to hold exactly ``rows`` rows afterwards; one warm-up round is dropped and rows/s comes from the
median round, so a stall of the shared machine in one round does not decide the figure. Rounds interleave
the paths, so a slow stretch of the machine hits all three alike; ``x_copy`` is the median of each round's
ratio (:func:`paired_ratio`), which holds better than the rates.

Against the run's baseline design (``ctx.baseline``, ``verify --baseline``; not for the baseline itself), a
second fresh database is built by the baseline and every path's write of a round is also made there, right
before or after (the order alternating by round): ``x_baseline`` is the median over rounds of the baseline's
time over this design's. Designs measured one after another are minutes apart on a shared machine, and a
ratio of their rates would carry that drift; two writes of the same round share it.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Final

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from jedisos_db.harness import writepaths
from jedisos_db.harness.designs import Design
from jedisos_db.harness.measure import Context, Measured, Point
from jedisos_db.harness.verify.verdicts import Figure
from jedisos_db.ops import provision
from jedisos_db.runtime import partitions
from jedisos_db.runtime.db.engine import create_engine
from jedisos_db.runtime.errors import StateError
from jedisos_db.runtime.owners import SCHEMA
from jedisos_db.runtime.urls import DatabaseURL

ROWS: Final = 5_000
QUICK_ROWS: Final = 1_000
ROUNDS: Final = 11
QUICK_ROUNDS: Final = 3
PATHS: Final = ("copy", "record_many", "writer_enqueue")

Write = Callable[[], Coroutine[Any, Any, object]]


@dataclass(frozen=True)
class _Result:
    figures: dict[str, Figure]
    series: dict[str, list[Point]]
    notes: list[str]


def measure(design: Design, ctx: Context) -> Measured:
    rows, rounds = (QUICK_ROWS, QUICK_ROUNDS) if ctx.quick else (ROWS, ROUNDS)
    baseline = ctx.baseline if ctx.baseline is not None and ctx.baseline.name != design.name else None
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(provision.scratch_database(ctx.server, design.scratch_name("writes")))
        design.build(url)
        against: tuple[DatabaseURL, Design] | None = None
        if baseline is not None:
            base_url = stack.enter_context(provision.scratch_database(ctx.server,
                                                                      baseline.scratch_name("writes_baseline")))
            baseline.build(base_url)
            against = base_url, baseline
        return asyncio.run(throughput(url, design, rows=rows, rounds=rounds, progress=ctx.progress, baseline=against))


@dataclass(frozen=True)
class _Target:
    """A built database the paths write to, and whose it is (for the notes)."""

    conn: asyncpg.Connection
    engine: AsyncEngine
    whose: str


@contextlib.asynccontextmanager
async def _target(url: DatabaseURL, design: Design, whose: str) -> AsyncIterator[_Target]:
    engine = create_engine(url=url, application_name="jedisos-db-measure-writes")
    try:
        conn = await asyncpg.connect(url.libpq())
        try:
            if design.schema.partitioned:  # the generated rows' months (the last 30 days) need their partitions
                await partitions.ensure_partitions(engine)
            yield _Target(conn, engine, whose)
        finally:
            await conn.close()
    finally:
        await engine.dispose()


async def throughput(url: DatabaseURL, design: Design, *, rows: int, rounds: int,
                     progress: Callable[[int, int], None] | None = None,
                     baseline: tuple[DatabaseURL, Design] | None = None) -> Measured:
    """The three paths for both tables in the built database at ``url`` (see the module doc); with
    ``baseline`` (the URL of a database the baseline design built, and that design), each round also writes
    the same rows there, right before or after, for the ``x_baseline`` figures."""
    out = _Result({"rows": rows, "rounds": rounds}, {}, [])
    out.notes.append(f"rows/s from the median of {rounds} rounds of {rows} rows on an emptied table (one warm-up round "
             "dropped); x_copy = the median over rounds of raw asyncpg COPY's time (pre-built tuples) over the path's.")
    if baseline is not None:
        out.figures["baseline"] = baseline[1].name
        out.notes.append(f"x_baseline = the median over rounds of {baseline[1].name}'s time for the same path and rows "
                         "over this design's, both written in the same round (in turns, alternating which goes "
                         "first) to a fresh database of each design on the same server: above 1 is faster.")
    total = len(writepaths.KINDS) * (rounds + 1)
    async with contextlib.AsyncExitStack() as stack:
        mine = await stack.enter_async_context(_target(url, design, "the design's"))
        base = None if baseline is None else await stack.enter_async_context(
            _target(*baseline, f"the baseline {baseline[1].name}'s"))
        for i, kind in enumerate(writepaths.KINDS):
            def tick(round_: int, offset: int = i * (rounds + 1)) -> None:
                if progress is not None:
                    progress(offset + round_, total)

            await _kind(mine, base, kind, rows=rows, rounds=rounds, into=out, tick=tick)
    return Measured(out.figures, out.series, tuple(out.notes))


async def _paths(target: _Target, kind: str, data: list[writepaths.Row], notes: list[str]) -> dict[str, Write]:
    """The paths that can write ``data`` to ``target``'s table: COPY always, the repository's when the table
    has every column it writes (a note says why not)."""
    columns = await writepaths.table_columns(target.conn, kind)
    prebuilt = writepaths.tuples(kind, data, columns)
    paths: dict[str, Write] = {"copy": lambda: writepaths.copy(target.conn, kind, prebuilt, columns)}
    if columns == writepaths.COLUMNS[kind]:
        repo = writepaths.REPOSITORIES[kind](target.engine)
        events = [repo.event.coerce(r) for r in data]
        paths["record_many"] = lambda: repo.record_many(data)
        paths["writer_enqueue"] = lambda: writepaths.writer_enqueue(repo, events)
    else:
        missing = sorted(set(writepaths.COLUMNS[kind]) - set(columns))
        notes.append(f"{kind}: no record_many/writer_enqueue figures: {target.whose} {writepaths.TABLES[kind]} "
                     f"lacks {', '.join(missing)}, which the repository writes (COPY sent only the columns it has).")
    return paths


async def _kind(mine: _Target, base: _Target | None, kind: str, *, rows: int, rounds: int, into: _Result,
                tick: Callable[[int], None]) -> None:
    """One table's paths, rounds interleaved (and each path's baseline write beside it); its figures, series and
    notes go ``into`` the result."""
    data = writepaths.generate(kind, rows, seed=rounds)
    paths = await _paths(mine, kind, data, into.notes)
    base_paths = {} if base is None else await _paths(base, kind, data, into.notes)
    took: dict[str, list[float]] = {path: [] for path in paths}
    base_took: dict[str, list[float]] = {path: [] for path in paths if path in base_paths}
    for round_ in range(rounds + 1):
        for path, write in paths.items():
            turns = [(took, mine, write)]
            if base is not None and path in base_took:
                turns.append((base_took, base, base_paths[path]))
            for sink, target, write_ in (turns if round_ % 2 == 0 else reversed(turns)):
                sink[path].append(await timed(target.conn, kind, rows, write_))
        tick(round_ + 1)
    for path, seconds in took.items():
        rate = rows / statistics.median(seconds[1:])
        into.figures[f"{kind}_{path}_rows_per_s"] = round(rate, 1)
        if path != "copy":
            into.figures[f"{kind}_{path}_x_copy"] = round(paired_ratio(took["copy"][1:], seconds[1:]), 3)
        if path in base_took:
            into.figures[f"{kind}_{path}_x_baseline"] = round(paired_ratio(base_took[path][1:], seconds[1:]), 3)
        into.series[f"{kind}_{path}_rows_per_s"] = _rates(rows, seconds)
        if path in base_took:
            into.series[f"{kind}_{path}_baseline_rows_per_s"] = _rates(rows, base_took[path])


def _rates(rows: int, seconds: list[float]) -> list[Point]:
    """Each round's rows/s after the warm-up round, by round number."""
    return [(float(i), rows / s) for i, s in enumerate(seconds[1:], 1)]


def paired_ratio(baseline: list[float], candidate: list[float]) -> float:
    """How fast ``candidate`` ran against ``baseline`` (seconds of the same rounds): the median of each round's
    ratio. A round's two writes run seconds apart, so a slow stretch of the shared machine slows both and
    cancels out of their ratio, while a ratio of the two medians compares times taken at different moments."""
    return statistics.median(b / c for b, c in zip(baseline, candidate, strict=True))


async def timed(conn: asyncpg.Connection, kind: str, rows: int, write: Write) -> float:
    """Seconds ``write()`` took on an emptied table; the table must then hold exactly ``rows`` rows."""
    table = f"{SCHEMA}.{writepaths.TABLES[kind]}"
    await conn.execute(f"TRUNCATE {table}")
    started = time.perf_counter()
    await write()
    seconds = time.perf_counter() - started
    count = await conn.fetchval(f"SELECT count(*) FROM {table}")
    if count != rows:
        raise StateError(f"writes: {table} holds {count} rows after writing {rows}")
    return seconds
