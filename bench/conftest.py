"""The benchmark suite (``nox -s bench``): pytest-benchmark on the real server, apart from ``tests/``.

It reuses the test suite's server and database fixtures (one embedded server per session, a
migrated database per module; or an admin server named by ``--test-dsn`` / ``JEDISOS_TEST_DSN``).
Every writer runs in the same session so their ratios to ``COPY`` hold on a noisy machine; the
end of the run prints rows/s and the ratios, and the pgvector recall/QPS table, under the server
settings that produced them.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest

from jedisos_db.ops import provision
from jedisos_db.runtime.db.connect import connect
from jedisos_db.runtime.urls import DatabaseURL

pytest_plugins = ["tests.plugins.server", "tests.plugins.databases"]

_STASH_INFO = pytest.StashKey[provision.ServerInfo]()
_STASH_RATES = pytest.StashKey[dict[str, dict[str, float]]]()
_STASH_TABLES = pytest.StashKey[list[str]]()
_STASH_NOTES = pytest.StashKey[list[str]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("jedisos-db bench")
    group.addoption("--bench-rows", type=int, default=1000,
                    help="rows each writer writes per round (default 1000)")
    group.addoption("--vector-rows", default="20000",
                    help="comma-separated bench table sizes for the pgvector benches (default 20000; "
                         "add 100000 for the large case)")
    group.addoption("--vector-queries", type=int, default=200, help="queries per ef_search step (default 200)")
    group.addoption("--vector-connections", type=int, default=4, help="N of 'QPS at N connections' (default 4)")


@pytest.fixture(scope="module")
def runner() -> Iterator[asyncio.Runner]:
    """An event loop of the module's own: benchmarks are synchronous callables."""
    with asyncio.Runner() as r:
        yield r


@pytest.fixture(scope="module")
def conn(runner: asyncio.Runner, migrated_db: DatabaseURL) -> Iterator[asyncpg.Connection]:
    """A raw asyncpg connection on the module's migrated database (the COPY baseline's driver)."""
    c = runner.run(asyncpg.connect(migrated_db.libpq()))
    yield c
    runner.run(c.close())


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_STASH_RATES] = {}
    config.stash[_STASH_TABLES] = []
    config.stash[_STASH_NOTES] = []


@pytest.fixture(scope="session", autouse=True)
def _print_server(request: pytest.FixtureRequest, server_url: DatabaseURL) -> provision.ServerInfo:
    """The server settings, printed at the top of the run and saved into the benchmark JSON."""
    info = provision.server_info(server_url)
    if info.pgvector_version is None:  # the admin database has no `vector`; report what CREATE EXTENSION gets
        with connect(server_url) as conn:
            row = conn.execute("SELECT default_version FROM pg_available_extensions WHERE name = 'vector'").fetchone()
        info = dataclasses.replace(info, pgvector_version=f"{row[0]} (available)" if row else None)
    request.config.stash[_STASH_INFO] = info
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"\njedisos-db bench server: {format_info(info)}")
    return info


def format_info(info: provision.ServerInfo) -> str:
    settings = ", ".join(f"{k}={v}" for k, v in sorted(info.settings.items()))
    return f"PostgreSQL {info.server_version}, pgvector {info.pgvector_version or '(per database)'}; {settings}"


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict[str, Any]) -> None:
    info = config.stash.get(_STASH_INFO, None)
    if info is not None:
        machine_info["postgresql"] = dataclasses.asdict(info)


class Rates:
    """Rows per second of each writer, grouped, for the end-of-run ratio table."""

    def __init__(self, config: pytest.Config) -> None:
        self._rates = config.stash[_STASH_RATES]
        self._notes = config.stash[_STASH_NOTES]

    def note(self, line: str) -> None:
        """A line for the end-of-run summary (e.g. a latency percentile)."""
        self._notes.append(line)

    def record(self, benchmark: Any, group: str, name: str, rows: int) -> None:
        """Rows/s from the *median* round: on a shared machine one stalled round skews the mean."""
        benchmark.extra_info["rows_per_round"] = rows
        stats = getattr(benchmark, "stats", None)
        if stats is None:  # --benchmark-disable: ran once, nothing measured
            return
        median, fastest = stats.stats.median, stats.stats.min
        benchmark.extra_info["rows_per_second_median"] = rows / median
        benchmark.extra_info["rows_per_second_best"] = rows / fastest
        self._rates.setdefault(group, {})[name] = rows / median
        self._rates.setdefault(f"{group} (best round)", {})[name] = rows / fastest


@pytest.fixture(scope="session")
def rates(request: pytest.FixtureRequest) -> Rates:
    return Rates(request.config)


@pytest.fixture(scope="session")
def vector_tables(request: pytest.FixtureRequest) -> list[str]:
    """Tables of the pgvector suite (rendered by the CLI's renderer), printed at the end of the run."""
    return request.config.stash[_STASH_TABLES]


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    rates = config.stash.get(_STASH_RATES, {})
    info = config.stash.get(_STASH_INFO, None)
    if info is None:
        return
    tr = terminalreporter
    tr.section("jedisos-db bench summary")
    tr.write_line(f"server: {format_info(info)}")
    tr.write_line("(2 shared cores with other work: compare ratios from one run, not absolute figures)")
    for group, by_name in sorted(rates.items()):
        copy = by_name.get("copy")
        unit = "rows deleted/s" if group.startswith("retention") else "rows/s"
        tr.write_line(f"\n{group}: {unit}, median round (ratio to raw COPY in this run)" if "best" not in group
                      else f"\n{group}: {unit} (ratio to raw COPY's best round)")
        single = by_name.get("single_insert")
        for name, rate in sorted(by_name.items(), key=lambda kv: -kv[1]):
            ratio = f"{rate / copy:.3f}x COPY" if copy else "-"
            if single and name == "repository_single":  # the single-event path's own yardstick
                ratio += f"   {rate / single:.3f}x raw single INSERT"
            tr.write_line(f"  {name:<26} {rate:>12,.0f} rows/s   {ratio}")
    notes = config.stash.get(_STASH_NOTES, [])
    if notes:
        tr.write_line("")
        for line in notes:
            tr.write_line(line)
    for table in config.stash.get(_STASH_TABLES, []):
        tr.write_line("")
        for line in table.splitlines():
            tr.write_line(line)
