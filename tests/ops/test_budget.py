"""Connection budget of the design's deployment (design §1 "커넥션 풀 분리", "충돌 방지 체크리스트")."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from jedisos_db.cli import render
from jedisos_db.harness.verify.plugin import ClaimRecorder
from jedisos_db.ops import budget, provision
from jedisos_db.runtime.errors import ConfigError
from jedisos_db.runtime.urls import DatabaseURL
from tests.plugins.databases import DatabaseFactory
from tests.plugins.roles import RolesFactory
from tests.rich_tables import row_of

HEAD_BUDGET = ("at head: `jedisos-db budget` checks the pools against the server, and capping Hindsight's pools "
               "(HINDSIGHT_API_DB_POOL_MAX_SIZE / HINDSIGHT_API_READ_DB_POOL_MAX_SIZE) makes room")


def _record_budget(claim: ClaimRecorder, verdict: budget.BudgetVerdict) -> None:
    claim.figures(demand=verdict.demand, available=verdict.available, max_connections=verdict.max_connections,
                  headroom=verdict.headroom)


@pytest.mark.claim("S1-max-connections-200", shows="fails")
def test_design_max_connections_200_is_false_with_hindsight_defaults(claim: ClaimRecorder) -> None:
    """design §1 "충돌 방지 체크리스트": "max_connections=200" is NOT enough once Hindsight's default
    pools (100 + 100 read) sit beside LangGraph (max 10) and JediSOS (5 + 10 overflow)."""
    verdict = budget.design_verdict()
    print("\n" + render.to_text(render.budget_verdict(verdict)))
    assert verdict.demand == 100 + 100 + 10 + 15
    assert verdict.available == 200 - 3
    assert not verdict.fits, verdict
    assert verdict.headroom == -28
    claim.fails(f"the documented pools ask for {verdict.demand} connections (Hindsight 100 + 100, LangGraph 10, "
                f"JediSOS 5 + 10) of {verdict.available} usable at max_connections={verdict.max_connections}",
                fix=HEAD_BUDGET)
    _record_budget(claim, verdict)


@pytest.mark.claim("S1-max-connections-200", shows="fails")
def test_hindsight_defaults_alone_exhaust_the_design_server() -> None:
    """design §1: even one Hindsight process with default pools asks for more than 200 - 3 slots."""
    alone = budget.connection_budget(budget.design_pools(jedisos_processes=0), max_connections=200)
    assert not alone.fits
    assert alone.demand == 200


def test_capped_hindsight_pools_make_room_for_jedisos_processes() -> None:
    """The fix the verdict points at: cap Hindsight's pools, size LangGraph for one saver (max 2)."""
    hindsight = budget.design_pools(jedisos_processes=0, hindsight_pool_max=40, hindsight_read_pool_max=20)
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
@pytest.mark.claim("S1-max-connections-200", shows="fails")
async def test_design_pools_really_exhaust_the_server(server_url: DatabaseURL, database_factory: DatabaseFactory,
                                                     roles_factory: RolesFactory, claim: ClaimRecorder) -> None:
    """design §1: opening the design's pools at their ceilings on the server, as the application
    roles (not superusers, so the reserved slots are closed to them), is refused with SQLSTATE
    53300 (too many clients) exactly when the budget says it does not fit."""
    verdict = budget.server_verdict(server_url, budget.design_pools())
    print("\n" + render.to_text(render.budget_verdict(verdict)))
    db = database_factory("budget")
    dsn = roles_factory(db).by_owner("jedisos").url(db).libpq()
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
    print(f"opened {len(opened)} of {verdict.demand} before the server refused")
    _record_budget(claim, verdict)
    claim.figures(opened_before_refusal=len(opened))
    if verdict.fits:
        assert refused is None, f"budget fits but the server refused after {len(opened)}"
    else:
        assert refused is not None, f"budget says {verdict.demand} > {verdict.available}, but all opened"
        assert refused.sqlstate == "53300"
        assert len(opened) <= verdict.available
        claim.fails(f"opening the documented pools' {verdict.demand} connections on a server with max_connections="
                    f"{verdict.max_connections}: refused with SQLSTATE 53300 after {len(opened)}", fix=HEAD_BUDGET)


def test_cli_budget_reports_the_shortfall(server_url: DatabaseURL) -> None:
    """`jedisos-db budget` prints the design's pools against the server and exits 1 when they do not fit."""
    from typer.testing import CliRunner

    from jedisos_db.cli.main import app

    result = CliRunner().invoke(app, ["budget", "--dsn", server_url.libpq()])
    assert result.exit_code == 1, result.output
    assert "DOES NOT FIT" in result.output
    assert row_of(result.output, "hindsight asyncpg read pool")[1:4] == ["100", "1", "100"]
