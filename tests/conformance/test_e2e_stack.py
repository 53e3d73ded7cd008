"""The three owners with the real Hindsight (design §1, §2, §3): what needs ``hindsight-api-slim``.

Runs in ``nox -s e2e``; without Hindsight installed each test skips with the reason.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import pytest
from typer.testing import CliRunner

from jedisos_db.cli.main import app
from jedisos_db.harness.verify.plugin import ClaimRecorder
from jedisos_db.ops import catalog, startup
from jedisos_db.ops import hindsight as hm
from jedisos_db.runtime.owners import OWNERS
from jedisos_db.runtime.urls import DatabaseURL
from tests.conformance import test_never_direct_sql as never
from tests.conformance.conftest import Stack
from tests.conformance.test_order import _state, _tables, check_same_catalog, run_placed
from tests.plugins.databases import DatabaseFactory
from tests.plugins.hindsight import HindsightHome, apart, server_of
from tests.rich_tables import row_of, table_rows

pytestmark = pytest.mark.e2e


def _require_hindsight() -> None:
    if not hm.is_installed():
        pytest.skip(f"hindsight-api-slim is not installed for {hm.hindsight_python()} "
                    f"(nox -s e2e installs it, or set {hm.ENV_PYTHON})")


@pytest.fixture(autouse=True)
def _hindsight_installed() -> None:
    _require_hindsight()


@pytest.mark.claim("S1-single-instance")
def test_stack_holds_three_populated_schemas(stack: Stack) -> None:
    """design §1: one database, three schemas, each filled by its owner under its own role."""
    assert stack.hindsight_ran, stack.steps
    assert not stack.hindsight_apart, (
        f"Hindsight's schema is in a database of a server of its own ({server_of(stack.hindsight_url)}), not in "
        f"{stack.database} beside langgraph and jedisos ({server_of(stack.url)})")
    assert {"alembic_version", "banks", "memory_units"} <= _tables(stack.url, "hindsight")
    assert {"checkpoints", "checkpoint_migrations"} <= _tables(stack.url, "langgraph")
    assert {"installed_tools", "schema_migrations"} <= _tables(stack.url, "jedisos")
    assert _tables(stack.url, "public") == set()


@pytest.mark.claim("S2-graph-in-postgres")
def test_hindsight_end_to_end_under_its_role(stack: Stack, claim: ClaimRecorder) -> None:
    """design §2: retain → recall finds it → entities listed → bank deleted, via the real REST API."""
    flow = stack.hindsight_flow
    print(f"\nhindsight flow: {flow}")
    recall = flow["recall"]
    assert isinstance(recall, list)
    assert recall, "recall found nothing after retain"
    assert any("Alice" in str(item) for item in recall), recall
    entities = flow["entities"]
    assert isinstance(entities, dict)
    assert {"items", "total"} <= set(entities), entities
    assert "Alice" in {str(e.get("canonical_name")) for e in entities["items"]}, entities
    assert flow["deleted"] == 200
    assert flow["recall_after_delete"] == 404
    claim.partial(f"the real server retained, recalled ({len(recall)} result(s)) and listed {entities['total']} "
                  f"entities on PostgreSQL alone, no graph database; graph traversal itself is not exercised",
                  recalled=len(recall), entities=int(entities["total"]))


@pytest.mark.claim("S2-rest-api-only")
def test_statements_on_hindsight_came_from_hindsight(stack: Stack) -> None:
    """design §2 "직접 SQL 금지": every statement on hindsight objects came from hindsight_app, on
    Hindsight's own tagged connections (hindsight-api / hindsight-migrations)."""
    role = stack.report.by_owner("hindsight").role
    names = never._relations(stack.hindsight_side.url, "hindsight")
    touching = [s for s in stack.statements if never._touches(s, "hindsight", names)]
    print(f"\nstatements on hindsight objects: {len(touching)}; applications "
          f"{sorted({str(s.application) for s in touching if s.application})}")
    assert len(touching) >= 10, "the capture saw too little of Hindsight"
    strangers = [s for s in touching if s.role != role
                 or (s.application is not None and s.application not in (hm.APPLICATION_NAME,
                                                                         hm.MIGRATION_APPLICATION_NAME))]
    assert not strangers, "\n".join(f"{s.source} role={s.role} app={s.application}: {s.text[:120]}"
                                    for s in strangers)


@pytest.mark.claim("S2-rest-api-only")
def test_jedisos_app_is_refused_on_every_real_hindsight_table(stack: Stack, claim: ClaimRecorder) -> None:
    """design §2: 42501 for every read and write by jedisos_app on each of Hindsight's real tables."""
    side = stack.hindsight_side  # Hindsight's server, with jedisos_app there too when it has one of its own
    relations = never._relations(side.url, "hindsight")
    assert len(relations) >= 20, f"the real Hindsight schema has only {len(relations)} relations: {relations}"
    never.check_refused_outside_jedisos(side, "hindsight", claim)


def _started(url: DatabaseURL, home: DatabaseURL, order: Sequence[str] = startup.DESIGN_ORDER,
             ) -> list[startup.StartupStep]:
    """:func:`run_placed`'s steps, every owner's applied (Hindsight installed)."""
    steps = run_placed(url, home, order)
    assert all(s.status == "applied" for s in steps if s.name != "extension"), steps
    return steps


@pytest.fixture(scope="module")
def design_state_with_hindsight(database_factory: DatabaseFactory,
                                hindsight_home: HindsightHome) -> dict[str, catalog.Snapshot]:
    _require_hindsight()  # module fixtures run before the autouse check
    url = database_factory("e2e_order_design", bootstrap=False)
    home = hindsight_home(url)
    _started(url, home)
    state = _state(url, home)
    assert state["hindsight"], f"no schema hindsight in {home.database} ({server_of(home)})"
    if apart(url, home):  # Hindsight's migrations stayed on its server
        assert not _tables(url, "hindsight"), f"Hindsight's tables in {url.database} ({server_of(url)})"
    return state


@pytest.mark.slow
@pytest.mark.claim("S1-any-order")
@pytest.mark.parametrize("order", list(itertools.permutations(OWNERS)), ids="-".join)
def test_every_order_works_with_real_hindsight(order: tuple[str, ...], database_factory: DatabaseFactory,
                                               hindsight_home: HindsightHome,
                                               design_state_with_hindsight: dict[str, catalog.Snapshot],
                                               claim: ClaimRecorder) -> None:
    """design §1 "마이그레이션 순서": with Hindsight's real migrations (where the run places Hindsight), every
    order ends in the same catalog."""
    url = database_factory("e2e_order_" + "_".join(o[0] for o in order), bootstrap=False)
    home = hindsight_home(url)
    _started(url, home, order)
    check_same_catalog(design_state_with_hindsight, url, order, claim, hindsight_url=home)


@pytest.mark.slow
@pytest.mark.claim("S1-migration-order")
def test_cli_up_twice_fills_three_schemas(database_factory: DatabaseFactory) -> None:
    """`jedisos-db up --dsn URL` twice on a fresh database: three populated schemas, public without
    tables, the second run a no-op (issue "must show")."""
    url = database_factory("e2e_cli_up", bootstrap=False)
    first = CliRunner().invoke(app, ["up", "--dsn", url.libpq()])
    second = CliRunner().invoke(app, ["up", "--dsn", url.libpq()])
    print("\n" + first.output + second.output)
    assert first.exit_code == 0, first.output
    assert second.exit_code == 0, second.output
    assert row_of(first.output, "hindsight")[1] == "applied"
    assert {row[1] for row in table_rows(second.output)[1:]} == {"unchanged"}, second.output
    assert "nothing changed" in second.output
    for schema in ("hindsight", "langgraph", "jedisos"):
        assert _tables(url, schema), f"schema {schema} is empty"
    assert _tables(url, "public") == set()
