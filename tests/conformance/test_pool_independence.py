"""Pool independence under load (design §1 "커넥션 풀 분리": "각 시스템이 독립 커넥션 풀을 사용하므로
한쪽의 부하가 다른 쪽을 블로킹하지 않습니다").

Latencies are printed (run with -s), never asserted; the assertions are structural: the saturated
pool reached its maximum on the server and made callers queue, every operation on the other
pools completed, nothing timed out.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from jedisos_db.cli import render
from jedisos_db.cli.main import app
from jedisos_db.harness import pools
from jedisos_db.harness.verify.plugin import ClaimRecorder
from jedisos_db.ops import startup
from jedisos_db.runtime import checkpointer, urls
from jedisos_db.runtime.db import migrations
from jedisos_db.runtime.db.connect import connect
from jedisos_db.runtime.urls import DatabaseURL
from tests.plugins.databases import DatabaseFactory
from tests.plugins.hindsight import HindsightFactory, HindsightHome, apart
from tests.rich_tables import table_rows

SAMPLES = 200
SECRET = "pools-s3cret"


def _with_password(url: DatabaseURL) -> DatabaseURL:
    """``url`` carrying a password (the embedded server trusts its socket, so any password logs in)."""
    return url if url.has_password else url.with_user(url.username or "postgres", SECRET)


def _secret_of(url: DatabaseURL) -> str:
    return str(make_url(url.libpq()).password)


def test_load_processes_get_the_url_in_their_environment_only() -> None:
    """A password in argv is readable by every user of the machine (`ps`, /proc/*/cmdline)."""
    url = urls.parse("postgresql://app:pw-x1@db/j")
    for kind in ("langgraph", "jedisos"):
        argv, env = pools.load_command(kind, url, pools.LoadSettings())
        assert not [a for a in argv if "pw-x1" in a or "postgresql" in a], argv
        assert env[pools.ENV_TARGET] == url.libpq()
        assert argv[-2] == kind
        json.loads(argv[-1])  # the settings, nothing else
    argv, env = pools.load_command("hindsight", "http://127.0.0.1:8888", pools.LoadSettings())
    assert env[pools.ENV_TARGET] == "http://127.0.0.1:8888"
    assert "http://127.0.0.1:8888" not in argv

def _check(report: pools.IndependenceReport, kinds: list[str], claim: ClaimRecorder) -> None:
    """The structural facts of independence, asserted; the latencies recorded as the claim's figures."""
    print("\n" + render.to_text(render.pools_report(report)))
    figures: dict[str, float | int] = {}
    for lat in report.latencies:
        key = lat.probe + ("_idle" if lat.condition == "idle" else "_with_" + lat.condition.split()[0] + "_saturated")
        figures[f"{key}_p50_ms"] = round(lat.p50_ms, 2)
        figures[f"{key}_p99_ms"] = round(lat.p99_ms, 2)
    figures.update({f"{kind}_pool_max": sat.max_size for kind, sat in report.saturations.items() if kind in kinds})
    claim.figures(**figures)  # type: ignore[arg-type]  # the names are probe/condition keys, never claim=
    for kind in kinds:
        sat = report.saturations[kind]
        assert not sat.errors, f"load on {kind} failed: {sat.errors}"
        assert sat.timeouts == 0, f"{kind} pool timed out under its own load"
        assert sat.operations > 0
        if kind != "hindsight":
            assert report.server_peaks[kind] == sat.max_size, (
                f"{kind}: the server saw {report.server_peaks[kind]} load connections, pool max {sat.max_size}")
            assert sat.peak_in_use == sat.max_size
            assert sat.waited > 0, f"{kind}: the load never had to wait for a connection; not saturated"
        for other in kinds:
            if other == kind:
                continue
            lat = report.get(other, f"{kind} saturated")
            assert not lat.errors, f"{other} failed while {kind} was saturated: {lat.errors[:3]}"
            assert len(lat.samples) == SAMPLES
    worst = max((lat for lat in report.latencies if lat.condition != "idle"), key=lambda lat: lat.p99_ms)
    idle = report.get(worst.probe, "idle")
    claim.holds(f"with each of {', '.join(kinds)} saturated in turn at its pool maximum, all {SAMPLES} probes of "
                f"the other pools completed; worst case {worst.probe} under {worst.condition}: p50 "
                f"{worst.p50_ms:.1f} ms / p99 {worst.p99_ms:.1f} ms against {idle.p50_ms:.1f} / {idle.p99_ms:.1f} ms "
                f"idle")


@pytest.mark.slow
@pytest.mark.claim("S1-pool-independence")
async def test_langgraph_and_jedisos_pools_are_independent(database_factory: DatabaseFactory,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           claim: ClaimRecorder) -> None:
    """design §1: saturating LangGraph's pool does not stop JediSOS's engine, and the reverse.

    Run with a password in the URL: the load processes really started must not carry it in argv."""
    url = _with_password(database_factory("pools", bootstrap=False))
    await asyncio.to_thread(startup.run_steps, url)
    started: list[tuple[str, ...]] = []
    real_exec = asyncio.create_subprocess_exec

    async def recording_exec(*argv: str, **kwargs: Any) -> asyncio.subprocess.Process:
        started.append(tuple(argv))
        return await real_exec(*argv, **kwargs)

    monkeypatch.setattr(asyncio, "create_subprocess_exec", recording_exec)  # pools calls it through the module
    report = await pools.measure(url, samples=SAMPLES)
    _check(report, ["langgraph", "jedisos"], claim)
    assert [argv[-2] for argv in started] == ["langgraph", "jedisos"]
    leaked = [argv for argv in started if any(_secret_of(url) in a or url.host in a for a in argv)]
    assert not leaked, f"a load process got the URL on its command line: {leaked}"


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.claim("S1-pool-independence")
async def test_all_three_pools_are_independent(database_factory: DatabaseFactory,
                                               hindsight_server_factory: HindsightFactory,
                                               hindsight_home: HindsightHome, claim: ClaimRecorder) -> None:
    """design §1: Hindsight (through its REST API), LangGraph and JediSOS, each saturated in turn (Hindsight on
    its own server's database when the design places it there)."""
    url = database_factory("pools_e2e", bootstrap=False)
    await asyncio.to_thread(startup.run_steps, url)
    home = await asyncio.to_thread(hindsight_home, url)
    hindsight = await asyncio.to_thread(hindsight_server_factory, home)
    maximum = hindsight.server.pools_max
    report = await pools.measure(url, hindsight_url=hindsight.base_url, hindsight_pool_max=maximum, samples=SAMPLES)
    claim.figures(hindsight_server_peak=report.server_peaks["hindsight"])
    if apart(url, home):  # two servers: Hindsight's load must not reach the main one at all
        assert report.server_peaks["hindsight"] == 0, (
            f"{report.server_peaks['hindsight']} Hindsight connections on the main server; it has a server of its own")
        claim.figures(hindsight_server_apart=True)
        _check(report, ["langgraph", "jedisos", "hindsight"], claim)
        return
    _check(report, ["langgraph", "jedisos", "hindsight"], claim)
    claim.figures(hindsight_pools_max=maximum)
    # Counted on this test's database only: the 13-14 "of 12" seen before were the idle connections of the
    # session's other Hindsight servers (other databases, the same application_name) added to this one's.
    assert 0 < report.server_peaks["hindsight"] <= maximum, (
        f"Hindsight connections seen under load: {report.server_peaks['hindsight']}, its pools allow {maximum}")


@pytest.mark.slow
@pytest.mark.claim("S1-pool-independence")
def test_cli_pools_prints_the_figures(database_factory: DatabaseFactory) -> None:
    """`jedisos-db pools --dsn URL` on a database at the start-up state prints p50/p99 per probe and
    condition, and migrates nothing."""
    url = database_factory("pools_cli", bootstrap=False)
    startup.run_steps(url)
    before = (migrations.current(url), checkpointer.migration_version(url))
    result = CliRunner().invoke(app, ["pools", "--dsn", url.libpq(), "--samples", "10"])
    assert result.exit_code == 0, result.output
    probed = {(row[0], row[1]): row for row in table_rows(result.output)}
    assert probed[("langgraph", "jedisos saturated")][2] == "10"
    assert probed[("jedisos", "langgraph saturated")][2] == "10"
    assert {kind for kind, *_ in table_rows(result.output)} >= {"saturated", "langgraph", "jedisos"}
    assert "max_connections=" in result.output
    assert (migrations.current(url), checkpointer.migration_version(url)) == before


def test_cli_pools_runs_no_migration_and_names_what_is_missing(empty_db: DatabaseURL) -> None:
    """On a fresh database `jedisos-db pools` refuses in one line; schema_migrations stays absent and
    LangGraph stays unset (it is a probe, not `jedisos-db up`)."""
    result = CliRunner().invoke(app, ["pools", "--dsn", empty_db.libpq(), "--samples", "1"],
                                env={"JEDISOS_DB_URL": None})
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert "the jedisos schema is at base (no schema_migrations)" in lines[0]
    assert "LangGraph is not set up" in lines[0]
    assert "jedisos-db up" in lines[0]
    with connect(empty_db) as conn:
        found = conn.execute("SELECT to_regclass('jedisos.schema_migrations'), "
                             "to_regclass('langgraph.checkpoint_migrations')").fetchone()
    assert found == (None, None)
