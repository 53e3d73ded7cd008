"""Profile the single-event write (``EventRepository.record``) against a raw asyncpg INSERT, on a real server.

    python -m bench.profile_record [--dsn URL] [--rows N] [--kind audit|cost] [--top K]

Issue 12's point 2: ``record`` must stay within 0.7x a raw single INSERT through the same driver. This
prints that ratio (one run, both paths on the same freshly migrated database, after a warm-up), then
cProfile's top functions by own time for ``record``: what the client spends besides waiting for the
server. Without ``--dsn`` a private embedded server is started in a temporary directory and removed.
Timed figures belong to benchmarks (``pytest bench/test_writes.py``); this is the tool to see *where*.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import pstats
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg

from bench import writers
from jedisos_db.ops import provision
from jedisos_db.runtime import urls
from jedisos_db.runtime.db import migrations
from jedisos_db.runtime.db.engine import create_engine
from jedisos_db.runtime.urls import DatabaseURL

WARMUP = 200


@contextlib.contextmanager
def _database(dsn: str | None) -> Iterator[DatabaseURL]:
    with contextlib.ExitStack() as stack:
        if dsn is None:
            data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="jedisos-profile-")))
            server = provision.EmbeddedServer(data_dir / "data")
            admin = server.start()
            stack.callback(server.stop)
        else:
            admin = urls.parse(dsn)
        url = stack.enter_context(provision.scratch_database(admin, "jedisos_profile_record"))
        migrations.upgrade(url)
        yield url


async def _profile(url: DatabaseURL, kind: str, rows: int, top: int) -> str:
    engine = create_engine(url=url)
    conn = await asyncpg.connect(url.libpq())
    try:
        repo = writers.REPOSITORIES[kind](engine)
        data = writers.generate(kind, rows)
        events = [repo.event.coerce(r) for r in data]
        tuples = writers.tuples(kind, data)
        await writers.single(conn, kind, tuples[:WARMUP])
        for e in events[:WARMUP]:
            await repo.record(e)
        began = time.perf_counter()
        await writers.single(conn, kind, tuples)
        raw_s = time.perf_counter() - began
        began = time.perf_counter()
        for e in events:
            await repo.record(e)
        record_s = time.perf_counter() - began
        profile = cProfile.Profile()
        profile.enable()
        for e in events:
            await repo.record(e)
        profile.disable()
        text = io.StringIO()
        pstats.Stats(profile, stream=text).sort_stats("tottime").print_stats(top)
        return (f"{kind}: raw single INSERT {rows / raw_s:,.0f} rows/s, record {rows / record_s:,.0f} rows/s, "
                f"record = {raw_s / record_s:.3f}x raw (unprofiled, one run)\n\n"
                f"record, profiled ({rows} calls), top {top} by own time:\n{text.getvalue()}")
    finally:
        await conn.close()
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", help="an admin URL of the server to use (default: a private embedded server)")
    parser.add_argument("--rows", type=int, default=2000, help="events per timed pass (default 2000)")
    parser.add_argument("--kind", choices=sorted(writers.REPOSITORIES), default="audit")
    parser.add_argument("--top", type=int, default=25, help="functions to list (default 25)")
    args = parser.parse_args()
    with _database(args.dsn) as url:
        print(asyncio.run(_profile(url, args.kind, args.rows, args.top)))


if __name__ == "__main__":
    main()
