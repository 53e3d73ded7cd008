"""Start-up order (design §1 "마이그레이션 순서"): the design's order works, so does every other
order of the three owners, and a rerun changes nothing."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from collections.abc import Sequence

import pytest
from typer.testing import CliRunner

from jedisos_db.cli.main import app
from jedisos_db.harness.verify.plugin import ClaimRecorder
from jedisos_db.ops import catalog, hindsight, startup
from jedisos_db.runtime.db import migrations
from jedisos_db.runtime.db.connect import connect
from jedisos_db.runtime.errors import ConfigError
from jedisos_db.runtime.owners import OWNERS
from jedisos_db.runtime.urls import DatabaseURL
from tests.plugins.databases import DatabaseFactory
from tests.plugins.hindsight import HindsightHome
from tests.rich_tables import row_of, table_rows

SCHEMAS = ("jedisos", "langgraph", "hindsight", "public")


def _public(url: DatabaseURL) -> catalog.Snapshot:
    """``public`` as extensions plus any object that is not an extension's member (should be none).

    catalog.snapshot cannot render extension aggregates (pg_get_functiondef), hence this view."""
    with connect(url) as conn:
        exts = conn.execute("SELECT extname, extversion FROM pg_extension").fetchall()
        loose = conn.execute(
            "SELECT 'relation', c.relname FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace "
            "AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e') "
            "UNION ALL SELECT 'function', p.proname FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace "
            "AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')").fetchall()
    snap: catalog.Snapshot = {("extension", str(n)): {"version": str(v)} for n, v in exts}
    snap.update({(str(k), str(n)): {} for k, n in loose})
    return snap


def _state(url: DatabaseURL, hindsight_url: DatabaseURL | None = None) -> dict[str, catalog.Snapshot]:
    """Each schema's catalog in ``url``; schema hindsight's in ``hindsight_url`` when Hindsight has its own server."""
    state = {schema: catalog.snapshot(hindsight_url or url if schema == "hindsight" else url, schema)
             for schema in SCHEMAS if schema != "public"}
    state["public"] = _public(url)
    return state


def objects(state: dict[str, catalog.Snapshot]) -> int:
    """How many catalog objects a state holds, over all schemas (the size of what the diffs compare)."""
    return sum(len(snap) for snap in state.values())


def check_same_catalog(expected: dict[str, catalog.Snapshot], url: DatabaseURL, order: tuple[str, ...],
                       claim: ClaimRecorder, *, hindsight_url: DatabaseURL | None = None) -> None:
    """``url`` (started in ``order``) holds exactly the catalog of ``expected``, schema by schema (schema
    hindsight in ``hindsight_url`` when given)."""
    state = _state(url, hindsight_url)
    for schema, snap in expected.items():
        difference = catalog.diff(snap, state[schema])
        assert not difference, f"order {'-'.join(order)}, schema {schema}: {difference.render()}"
    claim.holds(f"start-up in another order than the design's ended in the same catalog "
                f"({objects(expected)} objects over {len(expected)} schemas, no difference)",
                catalog_objects=objects(expected))


def _tables(url: DatabaseURL, schema: str) -> set[str]:
    with connect(url) as conn:
        return {r[0] for r in conn.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind IN ('r', 'p')", [schema]).fetchall()}


def run_placed(url: DatabaseURL, home: DatabaseURL, order: Sequence[str] = startup.DESIGN_ORDER,
               ) -> list[startup.StartupStep]:
    """The start-up steps on ``url``, Hindsight's in ``home``: where the run places Hindsight (``url`` itself, or
    a database on Hindsight's own server: ``hindsight_home``)."""
    return startup.run_steps(url, order, owner_urls={"hindsight": home})


@pytest.fixture(scope="module")
def design_state(database_factory: DatabaseFactory, hindsight_home: HindsightHome) -> dict[str, catalog.Snapshot]:
    url = database_factory("order_design", bootstrap=False)
    home = hindsight_home(url)
    run_placed(url, home)
    return _state(url, home)


@pytest.mark.claim("S1-migration-order")
def test_design_order_works(database_factory: DatabaseFactory, hindsight_home: HindsightHome,
                            claim: ClaimRecorder) -> None:
    """design §1 "마이그레이션 순서": extension → Hindsight → LangGraph setup() → jedisos Alembic."""
    url = database_factory("order_steps", bootstrap=False)
    steps = run_placed(url, hindsight_home(url))
    assert [s.name for s in steps] == ["extension", "hindsight", "langgraph", "jedisos"]
    by_name = {s.name: s for s in steps}
    assert by_name["extension"].status == "applied"
    assert by_name["langgraph"].status == "applied"
    assert by_name["jedisos"].status == "applied"
    if by_name["hindsight"].status == "skipped":
        assert "not installed" in by_name["hindsight"].detail or "not part" in by_name["hindsight"].detail
    assert migrations.current(url) == migrations.head()
    assert {"checkpoints", "checkpoint_migrations"} <= _tables(url, "langgraph")
    assert _tables(url, "public") == set()
    claim.holds("the design's order ran: " + ", ".join(f"{s.name} {s.status}" for s in steps) +
                f"; jedisos at {migrations.head()}, LangGraph's tables in langgraph, none in public",
                steps_applied=sum(s.status == "applied" for s in steps))


@pytest.mark.claim("S1-any-order")
@pytest.mark.parametrize("order", list(itertools.permutations(OWNERS)), ids="-".join)
def test_every_order_of_the_owners_works(order: tuple[str, ...], database_factory: DatabaseFactory,
                                         hindsight_home: HindsightHome, design_state: dict[str, catalog.Snapshot],
                                         claim: ClaimRecorder) -> None:
    """design §1: the owners do not depend on each other, so any order ends in the same catalog."""
    url = database_factory("order_" + "_".join(o[0] for o in order), bootstrap=False)
    home = hindsight_home(url)
    run_placed(url, home, order)
    check_same_catalog(design_state, url, order, claim, hindsight_url=home)


@pytest.mark.claim("S1-migration-order")
def test_rerun_is_a_no_op(database_factory: DatabaseFactory, hindsight_home: HindsightHome,
                          claim: ClaimRecorder) -> None:
    """design §1: a second start-up run changes nothing (every step unchanged, same catalog)."""
    url = database_factory("order_rerun", bootstrap=False)
    home = hindsight_home(url)
    run_placed(url, home)
    before = _state(url, home)
    again = run_placed(url, home)
    assert [s.status for s in again if s.status != "skipped"] == ["unchanged"] * len(
        [s for s in again if s.status != "skipped"]), again
    after = _state(url, home)
    for schema in SCHEMAS:
        assert not catalog.diff(before[schema], after[schema]), catalog.diff(before[schema], after[schema]).render()
    claim.holds(f"a second start-up run left every step unchanged and the {objects(before)} catalog objects as they "
                f"were", catalog_objects=objects(before), changed_on_rerun=0)


@pytest.mark.claim("S1-migration-order")
def test_cli_up_twice(database_factory: DatabaseFactory) -> None:
    """`jedisos-db up --dsn URL` twice on a fresh database: schemas populated, public without
    tables, the second run a no-op."""
    url = database_factory("order_cli", bootstrap=False)
    first = CliRunner().invoke(app, ["up", "--dsn", url.libpq()])
    assert first.exit_code == 0, first.output
    assert row_of(first.output, "langgraph")[1] == "applied"
    assert row_of(first.output, "jedisos")[1] == "applied"
    second = CliRunner().invoke(app, ["up", "--dsn", url.libpq()])
    assert second.exit_code == 0, second.output
    assert "nothing changed" in second.output
    assert {row[1] for row in table_rows(second.output)[1:]} <= {"unchanged", "skipped"}, second.output
    print("\n" + first.output + second.output)
    assert _tables(url, "jedisos") >= {"installed_tools", "schema_migrations"}
    assert _tables(url, "langgraph") >= {"checkpoints"}
    assert _tables(url, "public") == set()


def test_an_order_must_name_each_owner_once(empty_db: DatabaseURL) -> None:
    with pytest.raises(ConfigError, match="order"):
        startup.run_steps(empty_db, ["jedisos", "jedisos", "langgraph"])
    with pytest.raises(ConfigError, match="owner_urls"):
        startup.run_steps(empty_db, owner_urls={"nobody": empty_db})


@pytest.mark.claim("S1-migration-order")
def test_startup_report_shows_the_second_run_changed_nothing(database_factory: DatabaseFactory) -> None:
    """design §1: `up` twice; the report of the second run says nothing changed, step by step."""
    url = database_factory("order_report", bootstrap=False)
    first = startup.up(url)
    second = startup.up(url)
    assert first.changed
    assert not second.changed
    expected = {"extension": "unchanged", "langgraph": "unchanged", "jedisos": "unchanged"}
    if hindsight.is_installed():  # the e2e environment has the [hindsight] extra; the plain one skips it
        expected["hindsight"] = "unchanged"
    assert {s.name: s.status for s in second.stages if s.status != "skipped"} == expected
    assert second.revision == second.revision_before == migrations.head()


CONCURRENT_UPS = 3
ROUNDS = 5


@pytest.mark.slow
def test_concurrent_ups_on_a_fresh_database_all_succeed(database_factory: DatabaseFactory) -> None:
    """Issue 11: N `up --dsn` at once on one fresh database used to fail (LangGraph's setup() outside the
    lock: DeadlockDetected, UniqueViolation on checkpoint_migrations_pkey). Every step is serialised now."""
    for round_ in range(ROUNDS):
        url = database_factory(f"order_concurrent_{round_}", bootstrap=False)
        env = {**os.environ, "JEDISOS_DB_URL": url.libpq()}  # the URL stays out of argv
        runs = [subprocess.Popen([sys.executable, "-m", "jedisos_db", "up"], env=env, text=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(CONCURRENT_UPS)]
        outputs = [run.communicate(timeout=600)[0] for run in runs]
        failed = [(run.returncode, out) for run, out in zip(runs, outputs, strict=True) if run.returncode != 0]
        assert failed == [], f"round {round_}: {failed}"
        assert migrations.current(url) == migrations.head()
        assert sum("nothing changed" in out for out in outputs) == CONCURRENT_UPS - 1, outputs
