"""Pool independence under load (design §1 "커넥션 풀 분리": "각 시스템이 독립 커넥션 풀을 사용하므로
한쪽의 부하가 다른 쪽을 블로킹하지 않습니다").

Latencies are printed (run with -s), never asserted; the assertions are structural: the saturated
pool reached its maximum on the server and made callers queue, every operation on the other
pools completed, nothing timed out.
"""

from __future__ import annotations

import pytest

from jedisos_db.harness import pools
from jedisos_db.ops import startup
from tests.plugins.databases import DatabaseFactory
from tests.plugins.hindsight import HindsightFactory

SAMPLES = 200


def _check(report: pools.IndependenceReport, kinds: list[str]) -> None:
    print("\n" + report.render())
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


@pytest.mark.slow
async def test_langgraph_and_jedisos_pools_are_independent(database_factory: DatabaseFactory) -> None:
    """design §1: saturating LangGraph's pool does not stop JediSOS's engine, and the reverse."""
    import asyncio

    url = database_factory("pools", bootstrap=False)
    await asyncio.to_thread(startup.run_steps, url)
    report = await pools.measure(url, samples=SAMPLES)
    _check(report, ["langgraph", "jedisos"])


@pytest.mark.e2e
@pytest.mark.slow
async def test_all_three_pools_are_independent(database_factory: DatabaseFactory,
                                               hindsight_server_factory: HindsightFactory) -> None:
    """design §1: Hindsight (through its REST API), LangGraph and JediSOS, each saturated in turn."""
    import asyncio

    url = database_factory("pools_e2e", bootstrap=False)
    await asyncio.to_thread(startup.run_steps, url)
    hindsight = await asyncio.to_thread(hindsight_server_factory, url)
    settings = hindsight.server.settings
    maximum = settings.pool_max_size + settings.read_pool_max_size
    report = await pools.measure(url, hindsight_url=hindsight.base_url, hindsight_pool_max=maximum, samples=SAMPLES)
    _check(report, ["langgraph", "jedisos", "hindsight"])
    assert 0 < report.server_peaks["hindsight"] <= maximum, (
        f"Hindsight connections seen under load: {report.server_peaks['hindsight']}, its pools allow {maximum}")


@pytest.mark.slow
def test_cli_pools_prints_the_figures(database_factory: DatabaseFactory) -> None:
    """`jedisos-db pools --dsn URL` brings the database up and prints p50/p99 per probe and condition."""
    from typer.testing import CliRunner

    from jedisos_db.cli.main import app

    url = database_factory("pools_cli", bootstrap=False)
    result = CliRunner().invoke(app, ["pools", "--dsn", url, "--samples", "10"])
    assert result.exit_code == 0, result.output
    assert "langgraph  jedisos saturated" in result.output
    assert "jedisos    langgraph saturated" in result.output
    assert "max_connections=" in result.output
