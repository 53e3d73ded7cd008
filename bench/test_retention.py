"""Design §7's retention DELETEs on a table holding 400 days of rows (10x ``--bench-rows``)."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import asyncpg
import pytest

from bench import writers
from bench.conftest import Rates
from jedisos_db.harness import datagen
from jedisos_db.runtime.owners import SCHEMA

# The statements of design §7, verbatim but for the schema qualification they already carry.
STATEMENTS = {
    "audit": ("DELETE FROM jedisos.audit_logs WHERE timestamp < NOW() - INTERVAL '90 days' "
              "AND severity IN ('debug', 'info')"),
    "cost": "DELETE FROM jedisos.cost_tracking WHERE timestamp < NOW() - INTERVAL '365 days'",
}




@pytest.mark.parametrize("kind", ["audit", "cost"])
def test_retention_delete(benchmark: Any, runner: asyncio.Runner, conn: asyncpg.Connection, kind: str,
                          request: pytest.FixtureRequest, rates: Rates) -> None:
    n = 10 * int(request.config.getoption("--bench-rows"))
    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=400)
    rows = (datagen.audit_rows(n, start=start, span_days=400) if kind == "audit"
            else datagen.cost_rows(n, start=start, span_days=400))
    data = writers.tuples(kind, rows)
    cutoff_days = 90 if kind == "audit" else 365
    now = dt.datetime.now(dt.UTC)
    expected = sum(1 for r in rows if r["timestamp"] < now - dt.timedelta(days=cutoff_days)
                   and (kind == "cost" or r["severity"] in ("debug", "info")))
    deleted: list[str] = []

    def setup() -> None:
        runner.run(conn.execute(f"TRUNCATE {SCHEMA}.{writers.TABLES[kind]}"))
        runner.run(writers.copy(conn, kind, data))
        runner.run(conn.execute(f"VACUUM ANALYZE {SCHEMA}.{writers.TABLES[kind]}"))

    benchmark.group = "retention deletes"
    benchmark.pedantic(lambda: deleted.append(runner.run(conn.execute(STATEMENTS[kind]))), setup=setup, rounds=3)
    # Rows near the cut-off may cross it while the bench runs: allow a handful either way.
    got = int(deleted[-1].split()[-1])
    assert abs(got - expected) <= max(5, n // 1000), f"{kind}: expected ~{expected} rows deleted, got {got}"
    rates.record(benchmark, "retention deletes", f"{kind} ({n} rows, {got} deleted)", got)
