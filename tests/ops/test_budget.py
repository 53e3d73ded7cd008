"""Connection budget of the design's deployment (design §1 "커넥션 풀 분리", "충돌 방지 체크리스트")."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from jedisos_db.cli import render
from jedisos_db.harness.verify.plugin import ClaimRecorder
from jedisos_db.ops import budget, provision, roles
from jedisos_db.runtime.errors import ConfigError
from jedisos_db.runtime.urls import DatabaseURL
from tests.rich_tables import row_of

HEAD_BUDGET = ("at head: `jedisos-db budget` checks the pools against the server, and capping Hindsight's pools "
               "(HINDSIGHT_API_DB_POOL_MAX_SIZE / HINDSIGHT_API_READ_DB_POOL_MAX_SIZE) makes room")


def _record_budget(claim: ClaimRecorder, verdict: budget.BudgetVerdict) -> None:
    claim.figures(demand=verdict.demand, available=verdict.available, max_connections=verdict.max_connections,
                  headroom=verdict.headroom)


def _jedisos_processes_that_fit(max_connections: int) -> int:
    """JediSOS processes (LangGraph + engine each) beside one Hindsight process with its default pool."""
    pools = budget.design_pools(jedisos_processes=1)
    hindsight = [p for p in pools if p.owner == "hindsight"]
    return budget.max_processes([p for p in pools if p.owner != "hindsight"], hindsight,
                                max_connections=max_connections)


@pytest.mark.claim("S1-max-connections-200")
def test_design_max_connections_200_holds_with_hindsight_defaults(claim: ClaimRecorder) -> None:
    """design §1 "충돌 방지 체크리스트": "max_connections=200" is enough for Hindsight's default pool
    (100; its read pool opens only with a read database), LangGraph (max 10) and JediSOS (5 + 10 overflow):
    up to three JediSOS processes beside one Hindsight. PostgreSQL's default 100 is not enough for one."""
    verdict = budget.design_verdict()
    print("\n" + render.to_text(render.budget_verdict(verdict)))
    assert verdict.demand == 100 + 10 + 15
    assert verdict.available == 200 - 3
    assert verdict.fits, verdict
    assert verdict.headroom == 72
    fit = _jedisos_processes_that_fit(200)
    assert fit == (197 - 100) // 25 == 3
    assert budget.design_verdict(jedisos_processes=fit).fits
    assert not budget.design_verdict(jedisos_processes=fit + 1).fits
    at_default = budget.design_verdict(max_connections=100)
    assert (at_default.available, at_default.fits) == (97, False)
    claim.holds(f"Hindsight's default pool (100, no read pool without HINDSIGHT_API_READ_DATABASE_URL), LangGraph 10 "
                f"and JediSOS 5 + 10 ask for {verdict.demand} of {verdict.available} usable at max_connections="
                f"{verdict.max_connections}: up to {fit} JediSOS processes fit beside one Hindsight; at PostgreSQL's "
                f"default 100 ({at_default.available} usable) not even one does",
                jedisos_processes_that_fit=fit)
    _record_budget(claim, verdict)


@pytest.mark.claim("S1-max-connections-200")
def test_a_read_database_makes_hindsight_alone_fill_the_design_server() -> None:
    """design §1: only given a read database does Hindsight open its read pool too; then its default pools
    (100 + 100) alone ask for more than 200 - 3 slots, and no JediSOS process fits."""
    alone = budget.connection_budget(budget.design_pools(jedisos_processes=0), max_connections=200)
    assert (alone.demand, alone.fits) == (100, True)
    assert [p.name for p in alone.pools if p.owner == "hindsight"] == ["hindsight asyncpg pool"]
    with_read = budget.connection_budget(budget.design_pools(jedisos_processes=0, hindsight_read_database=True),
                                         max_connections=200)
    assert (with_read.demand, with_read.fits) == (200, False)


def test_capped_hindsight_pools_make_room_for_jedisos_processes() -> None:
    """The fix the verdict points at: cap Hindsight's pools, size LangGraph for one saver (max 2)."""
    hindsight = budget.design_pools(jedisos_processes=0, hindsight_pool_max=40, hindsight_read_database=True,
                                    hindsight_read_pool_max=20)
    per_process = [budget.PoolDemand("langgraph", 2), budget.PoolDemand("jedisos", 15)]
    n = budget.max_processes(per_process, hindsight, max_connections=200)
    assert n == (197 - 60) // 17
    fits = budget.connection_budget([*hindsight, *(budget.PoolDemand(p.name, p.max_per_process, n)
                                                   for p in per_process)], max_connections=200)
    assert fits.fits
    over = budget.connection_budget([*hindsight, *(budget.PoolDemand(p.name, p.max_per_process, n + 1)
                                                   for p in per_process)], max_connections=200)
    assert not over.fits


def test_bad_budget_inputs_are_typed_errors() -> None:
    with pytest.raises(ConfigError, match="max_connections"):
        budget.connection_budget([], max_connections=0)
    with pytest.raises(ConfigError, match=r"x\.processes"):
        budget.PoolDemand("x", 1, -1)


def test_server_verdict_reads_the_real_settings(server_url: DatabaseURL, server_info: provision.ServerInfo) -> None:
    verdict = budget.server_verdict(server_url, budget.design_pools())
    assert verdict.max_connections == server_info.max_connections
    assert verdict.reserved >= 3


@pytest.mark.slow
@pytest.mark.claim("S1-max-connections-200")
@pytest.mark.parametrize("max_connections", [200, 100])
async def test_design_pools_fit_at_200_and_are_refused_at_postgres_default_100(
        max_connections: int, role_names: dict[str, str], claim: ClaimRecorder) -> None:
    """design §1: opening the design's pools at their ceilings on a real server of that size, as an application
    role (not a superuser, so the reserved slots are closed to it): at max_connections=200 all 125 open; at
    PostgreSQL's default 100 the server refuses with SQLSTATE 53300 (too many clients) after at most 97."""
    with provision.private_server(provision.ServerSettings(max_connections=max_connections)) as admin:
        verdict = budget.server_verdict(admin, budget.design_pools())
        print("\n" + render.to_text(render.budget_verdict(verdict)))
        assert verdict.fits is (max_connections == 200)
        dsn = roles.create_roles(admin, names=role_names).by_owner("jedisos").url(admin).libpq()
        opened: list[asyncpg.Connection] = []
        refused: asyncpg.exceptions.TooManyConnectionsError | None = None
        try:
            for _ in range(verdict.demand):
                try:
                    opened.append(await asyncpg.connect(dsn, server_settings={"application_name": "jedisos-budget"}))
                except asyncpg.exceptions.TooManyConnectionsError as exc:
                    refused = exc
                    break
        finally:
            await asyncio.gather(*(c.close() for c in opened), return_exceptions=True)
    print(f"opened {len(opened)} of {verdict.demand} at max_connections={max_connections}")
    _record_budget(claim, verdict)
    claim.figures(opened_before_refusal=len(opened))
    if verdict.fits:
        assert refused is None, f"budget fits but the server refused after {len(opened)}"
        assert len(opened) == verdict.demand
        claim.holds(f"all {verdict.demand} connections of the documented pools opened on a server with "
                    f"max_connections={verdict.max_connections}")
    else:
        assert refused is not None, f"budget says {verdict.demand} > {verdict.available}, but all opened"
        assert refused.sqlstate == "53300"
        assert len(opened) <= verdict.available
        # At PostgreSQL's default the claim's own caveat ("100 may not be") is what happens.
        claim.holds(f"at PostgreSQL's default max_connections={verdict.max_connections} the documented pools' "
                    f"{verdict.demand} connections are refused with SQLSTATE 53300 after {len(opened)}")


def test_cli_budget_reports_the_fit_and_the_shortfall(server_url: DatabaseURL,
                                                      server_info: provision.ServerInfo) -> None:
    """`jedisos-db budget` prints the design's pools against the server and exits 1 when they do not fit:
    one process more than fit beside Hindsight's default pool, or Hindsight given a read database."""
    from typer.testing import CliRunner

    from jedisos_db.cli.main import app

    fit = _jedisos_processes_that_fit(server_info.max_connections)
    result = CliRunner().invoke(app, ["budget", "--dsn", server_url.libpq(), "--jedisos-processes", str(fit)])
    assert result.exit_code == 0, result.output
    assert "read pool" not in result.output
    result = CliRunner().invoke(app, ["budget", "--dsn", server_url.libpq(), "--jedisos-processes", str(fit + 1)])
    assert result.exit_code == 1, result.output
    assert "DOES NOT FIT" in result.output
    result = CliRunner().invoke(app, ["budget", "--dsn", server_url.libpq(), "--jedisos-processes", str(fit),
                                      "--hindsight-read-database"])
    assert result.exit_code == 1, result.output
    assert row_of(result.output, "hindsight asyncpg read pool")[1:4] == ["100", "1", "100"]
