"""Every design builds from an empty database as its file says; the partitioned one is checked like ours
(catalog, nothing outside its schema, pytest-alembic's built-ins) and the same repositories write to it."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner

from jedisos_db.cli.main import app
from jedisos_db.harness import designs
from jedisos_db.harness.measure import migrations as measure_migrations
from jedisos_db.ops import catalog
from jedisos_db.runtime import partitions
from jedisos_db.runtime.db import migrations
from jedisos_db.runtime.db.connect import connect
from jedisos_db.runtime.db.engine import create_engine
from jedisos_db.runtime.errors import ConflictError, MigrationError
from jedisos_db.runtime.owners import SCHEMA, VERSION_TABLE
from jedisos_db.runtime.repositories.audit import AuditEvent, AuditLogRepository
from jedisos_db.runtime.repositories.cost import CostEvent, CostRepository
from jedisos_db.runtime.urls import DatabaseURL
from tests.plugins.databases import DatabaseFactory
from tests.rich_tables import row_of

pytestmark = pytest.mark.slow
DAY = dt.timedelta(days=1)


@pytest.mark.parametrize("name", designs.builtin_names())
def test_each_design_builds_as_its_file_says(database_factory: DatabaseFactory, name: str) -> None:
    design = designs.load(name)
    url = database_factory(f"build_{name}")
    design.build(url)
    assert design.check_catalog(url) == []
    want = "006" if name == "documented" else migrations.head(versions=design.schema.versions)
    assert migrations.current(url) == want


def test_the_catalog_check_can_fail(database_factory: DatabaseFactory) -> None:
    """A head database is not what the partitioned design says; a table in public is reported."""
    url = database_factory("check_fails")
    designs.load("recommended").build(url)
    with connect(url) as conn:
        conn.execute("CREATE TABLE public.stray (id int)")
    problems = designs.load("partitioned").check_catalog(url)
    assert "public holds relation stray, not an extension's" in problems
    assert "jedisos.audit_logs: relkind 'r', the design says 'p'" in problems
    assert "jedisos.cost_tracking: relkind 'r', the design says 'p'" in problems


def _partitions(url: DatabaseURL) -> list[str]:
    with connect(url) as conn:
        return [str(n) for (n,) in conn.execute(
            "SELECT c.relname FROM pg_class c WHERE c.relispartition "
            "AND c.relnamespace = to_regnamespace(%s)", [SCHEMA]).fetchall()]


@pytest.fixture(scope="module")
def partitioned_db(database_factory: DatabaseFactory) -> DatabaseURL:
    url = database_factory("partitioned")
    designs.load("partitioned").build(url)
    return url


def test_partitioned_catalog_is_head_but_for_the_partitioning(database_factory: DatabaseFactory,
                                                              partitioned_db: DatabaseURL) -> None:
    """Only the two tables' kind, primary keys and (now partitioned) indexes differ from head."""
    head = database_factory("head_for_diff")
    migrations.upgrade(head)
    part = catalog.snapshot(partitioned_db, SCHEMA, ignore=[VERSION_TABLE, *_partitions(partitioned_db)])
    result = catalog.diff(catalog.snapshot(head, SCHEMA, ignore=[VERSION_TABLE]), part)
    changed = {(c.status, c.kind, c.name) for c in result.changes}
    indexes = {"audit_logs_pkey", "idx_audit_timestamp", "idx_audit_event_type", "idx_audit_user",
               "idx_audit_severity", "cost_tracking_pkey", "idx_cost_timestamp", "idx_cost_model",
               "idx_cost_source", "idx_cost_user", "idx_audit_idempotency_key", "idx_cost_idempotency_key"}
    assert changed == {("changed", "relation", "audit_logs"), ("changed", "relation", "cost_tracking"),
                       ("changed", "constraint", "audit_logs.audit_logs_pkey"),
                       ("changed", "constraint", "cost_tracking.cost_tracking_pkey"),
                       *(("changed", "index", i) for i in indexes)}, result.render()
    pkey = next(c for c in result.changes if c.name == "audit_logs.audit_logs_pkey")
    assert pkey.actual == {**(pkey.expected or {}), "definition": 'PRIMARY KEY (id, "timestamp", severity)'}
    names = _partitions(partitioned_db)
    assert partitions.AUDIT_KEPT in names
    assert "audit_logs_purgeable" in names


def test_partitioned_migration_downgrades_to_head_and_back(database_factory: DatabaseFactory) -> None:
    design = designs.load("partitioned")
    url = database_factory("partitioned_down")
    design.build(url)
    migrations.downgrade(url, migrations.head(), versions=design.schema.versions)
    assert designs.load("recommended").check_catalog(url) == []
    assert _partitions(url) == []
    migrations.upgrade(url, "head", versions=design.schema.versions)
    assert design.check_catalog(url) == []


def test_a_partitioned_upgrade_stopped_while_moving_rows_resumes_and_loses_none(
        database_factory: DatabaseFactory) -> None:
    """p010 swaps each table and commits, then moves the old rows over in batches: a batch that fails (here a
    trigger refusing one row) stops the run at 010 with the batches before it committed; once the row is dealt
    with, running the upgrade again skips the swaps, moves the rest and drops the emptied tables."""
    design = designs.load("partitioned")
    url = database_factory("partitioned_resume")
    migrations.upgrade(url, "010", versions=design.schema.versions)
    filled = measure_migrations.fill(url, design, users=1)
    with connect(url) as conn:
        conn.execute(f"""CREATE FUNCTION {SCHEMA}.refuse_poison() RETURNS trigger LANGUAGE plpgsql AS
                         $$ BEGIN RAISE EXCEPTION 'poison row'; END $$""")
        conn.execute(f"CREATE TRIGGER refuse_poison BEFORE INSERT ON {SCHEMA}.cost_tracking FOR EACH ROW "
                     f"WHEN (NEW.model = 'poison') EXECUTE FUNCTION {SCHEMA}.refuse_poison()")
        conn.execute(f"ALTER TABLE {SCHEMA}.cost_tracking DISABLE TRIGGER refuse_poison")
        conn.execute(f"INSERT INTO {SCHEMA}.cost_tracking (model, provider, cost_usd, source) "
                     "VALUES ('poison', 'p', 0, 'agent')")  # the newest id: moved in the last batch
        conn.execute(f"ALTER TABLE {SCHEMA}.cost_tracking ENABLE TRIGGER refuse_poison")
    with pytest.raises(MigrationError, match="poison row"):
        migrations.upgrade(url, "head", versions=design.schema.versions)
    assert migrations.current(url) == "010"
    with connect(url) as conn:
        aside = conn.execute(f"SELECT count(*) FROM {SCHEMA}.cost_tracking_unpartitioned").fetchone()
        moved = conn.execute(f"SELECT count(*) FROM {SCHEMA}.cost_tracking").fetchone()
        assert aside is not None
        assert moved is not None
        assert 0 < moved[0] < filled["cost_tracking"]  # some batches committed before the refused one
        assert aside[0] + moved[0] == filled["cost_tracking"] + 1
        conn.execute(f"DELETE FROM {SCHEMA}.cost_tracking_unpartitioned WHERE model = 'poison'")
        conn.execute(f"DROP TRIGGER refuse_poison ON {SCHEMA}.cost_tracking")
        conn.execute(f"DROP FUNCTION {SCHEMA}.refuse_poison()")
    migrations.upgrade(url, "head", versions=design.schema.versions)
    assert migrations.current(url) == migrations.head(versions=design.schema.versions)
    assert design.check_catalog(url) == []
    with connect(url) as conn:
        for table, rows in filled.items():
            stored = conn.execute(f"SELECT count(*) FROM {SCHEMA}.{table}").fetchone()
            assert stored is not None
            assert stored[0] == rows


@pytest.fixture(scope="module")
async def part_engine(partitioned_db: DatabaseURL) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(url=partitioned_db)
    try:
        yield engine
    finally:
        await engine.dispose()


async def _count(engine: AsyncEngine, sql: str) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text(sql))).scalar_one())


async def test_the_same_repositories_write_to_the_partitioned_tables(part_engine: AsyncEngine) -> None:
    now = dt.datetime.now(dt.UTC)
    audit = AuditLogRepository(part_engine)
    first = await audit.record(AuditEvent("login", severity="info", user_id="u1"))
    assert await audit.record_many([{"event_type": "tool_executed", "severity": s, "user_id": "u1", "timestamp": now}
                                    for s in ("debug", "warning", "critical")]) == 3
    rows = await audit.query(user_id="u1")
    assert first in {r.id for r in rows}
    assert sorted(r.severity for r in rows) == ["critical", "debug", "info", "warning"]
    assert await _count(part_engine, f"SELECT count(*) FROM {SCHEMA}.{partitions.AUDIT_KEPT}") == 2
    costs = CostRepository(part_engine)
    await costs.record_many([CostEvent("m", "p", cost_usd="0.5", source="agent", user_id="u1", timestamp=now)] * 2)
    summary = await costs.daily_summary(user_id="u1")
    assert sum(r.call_count for r in summary) == 2


async def test_retention_drops_whole_expired_months_and_keeps_what_the_rules_keep(part_engine: AsyncEngine) -> None:
    now = dt.datetime.now(dt.UTC)
    old, recent = now - 200 * DAY, now - 10 * DAY
    await partitions.ensure_partitions(part_engine, first=now - 500 * DAY, last=now)
    audit, costs = AuditLogRepository(part_engine), CostRepository(part_engine)
    await audit.record_many([{"event_type": "e", "severity": s, "user_id": "r", "timestamp": t}
                             for s in ("info", "debug", "error") for t in (old, recent)])
    await costs.record_many([CostEvent("m", "p", cost_usd="1", source="agent", user_id="r", timestamp=t)
                             for t in (now - 500 * DAY, recent)])
    before = {r.date: r.call_count for r in await costs.daily_summary(user_id="r")}
    design = designs.load("partitioned")
    gone = await design.purge(part_engine, "audit_logs", rest=0)  # resting: test_partition_purge.py
    assert gone.rows == 2
    assert gone.batches >= 1
    left = await audit.query(user_id="r")
    assert sorted((r.severity, r.timestamp < now - 90 * DAY) for r in left) == [
        ("debug", False), ("error", False), ("error", True), ("info", False)]
    cost_gone = await design.purge(part_engine, "cost_tracking", rest=0)
    assert cost_gone.rows == 1
    assert {r.date: r.call_count for r in await costs.daily_summary(user_id="r")} == before
    again = await design.purge(part_engine, "audit_logs", rest=0)
    assert (again.rows, again.batches) == (0, 0)


def test_migration_sql_is_what_the_build_ran(database_factory: DatabaseFactory) -> None:
    """The script squawk lints: the schema changes in order, no reads, no version-table bookkeeping."""
    part = designs.load("partitioned").migration_sql(database_factory("sql_partitioned"))
    assert "PARTITION BY LIST (severity)" in part
    assert part.index("CREATE TABLE jedisos.installed_tools") < part.index("PARTITION BY LIST (severity)")
    statements = [s.strip() for s in part.split(";\n\n") if s.strip()]
    assert not [s for s in statements if s.upper().startswith("SELECT") or VERSION_TABLE in s]
    documented = designs.load("documented").migration_sql(database_factory("sql_documented"))
    assert "CREATE VIEW jedisos.daily_cost_summary" in documented
    assert "daily_cost_rollup" not in documented  # 006 stops before revision 007


def test_the_cli_lists_designs_and_rejects_a_typo_in_one_line(tmp_path: Path, server_url: DatabaseURL) -> None:
    mine = tmp_path / "small.toml"
    mine.write_text('name = "small"\nextends = "recommended"\ndescription = "x"\n[server]\nmax_connections = 70\n')
    result = CliRunner().invoke(app, ["designs", "--design", "documented", "--design", str(mine)])
    assert result.exit_code == 0, result.output
    assert row_of(result.output, "documented")[:5] == ["documented", "revision 006", "200", "125", "main +72"]
    assert row_of(result.output, "small")[:5] == ["small", "revision head", "70", "78", "main -11"]
    mine.write_text('name = "small"\nextends = "recommended"\ndescription = "x"\n[server]\nmax_conections = 100\n')
    result = CliRunner().invoke(app, ["designs", "--design", str(mine)])
    assert result.exit_code == 1
    assert result.output.strip().count("\n") == 0, result.output
    assert "server.max_conections: unknown key (did you mean 'max_connections'?)" in result.output
    out = tmp_path / "sql"
    result = CliRunner().invoke(app, ["designs", "--design", "recommended", "--sql", str(out), "--dsn",
                                      server_url.libpq()], env={"JEDISOS_DB_URL": ""})
    assert result.exit_code == 0, result.output
    assert "CREATE TRIGGER cost_tracking_roll_up_deleted" in (out / "recommended.sql").read_text()


async def test_a_row_no_partition_accepts_is_a_typed_error_and_nothing_is_written(part_engine: AsyncEngine) -> None:
    """A month with no partition (none are made 5 years ahead) is refused, naming the key, by record and COPY."""
    audit = AuditLogRepository(part_engine)
    before = await audit.count()
    future = dt.datetime.now(dt.UTC) + 5 * 365 * DAY
    with pytest.raises(ConflictError) as one:
        await audit.record(AuditEvent("login", timestamp=future))
    with pytest.raises(ConflictError) as many:
        await audit.record_many([AuditEvent("login"), AuditEvent("login", timestamp=future)])
    for caught in (one, many):
        assert caught.value.field == "timestamp", caught.value
        assert "ensure_partitions" in caught.value.rule
    assert await audit.count() == before


def test_the_partitioned_chain_continues_ours_and_leaves_it_unchanged() -> None:
    assert migrations.head(versions=designs.load("partitioned").schema.versions) == "p010"
    assert migrations.head() == "010"


OBJECTS_BY_SCHEMA = """
    SELECT n.nspname, count(*) FROM (
        SELECT c.relnamespace AS ns, c.oid FROM pg_class c
        UNION ALL SELECT p.pronamespace, p.oid FROM pg_proc p
        UNION ALL SELECT t.typnamespace, t.oid FROM pg_type t) o
    JOIN pg_namespace n ON n.oid = o.ns
    WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = o.oid AND d.deptype = 'e')
    GROUP BY n.nspname"""


def _objects(url: DatabaseURL) -> tuple[dict[str, int], set[str]]:
    with connect(url) as conn:
        counts = {str(s): int(n) for s, n in conn.execute(OBJECTS_BY_SCHEMA).fetchall()}
        schemas = {str(s) for (s,) in conn.execute("SELECT nspname FROM pg_namespace").fetchall()}
    return counts, schemas


@pytest.mark.parametrize("name", designs.builtin_names())
def test_each_design_creates_nothing_outside_its_schema(database_factory: DatabaseFactory, name: str) -> None:
    """Issue 10: a design's migrations (the partitioned variant's included) touch no schema but jedisos."""
    url = database_factory(f"outside_{name}")
    before, schemas = _objects(url)
    designs.load(name).build(url)
    after, schemas_after = _objects(url)
    assert schemas_after == schemas
    assert {s: n for s, n in after.items() if s != SCHEMA} == {s: n for s, n in before.items() if s != SCHEMA}
    assert after[SCHEMA] > before.get(SCHEMA, 0)
