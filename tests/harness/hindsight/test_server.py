"""The real Hindsight server run offline: its migrations own schema ``hindsight``, its pools are its own."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import httpx
import pytest

from jedisos_db.harness.hindsight import server as hs
from jedisos_db.harness.verify.plugin import ClaimRecorder
from jedisos_db.ops import catalog
from jedisos_db.ops import hindsight as hm
from jedisos_db.runtime.db.connect import connect
from jedisos_db.runtime.errors import HindsightServerError
from jedisos_db.runtime.urls import DatabaseURL
from tests.plugins.databases import DatabaseFactory
from tests.plugins.hindsight import HindsightHome, RunningHindsight

pytestmark = pytest.mark.e2e


@pytest.mark.claim("S1-hindsight-needs-pgvector", "S1-hindsight-schema-env", "S1-vector-once")
@pytest.mark.claim("S8-env-vars")
def test_migrations_fill_schema_hindsight_and_leave_public_to_extensions(hindsight_server: RunningHindsight,
                                                                        claim: ClaimRecorder) -> None:
    """Design §1 (migration order, Hindsight first) and §2: Hindsight's Alembic owns ``hindsight``."""
    with connect(hindsight_server.database_url) as conn:
        tables = {r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'hindsight'").fetchall()}
        public = conn.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm') "
            "AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e')").fetchall()
        extensions = dict(conn.execute(
            "SELECT e.extname, n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace"
        ).fetchall())
        trusted = conn.execute("SELECT bool_or(v.trusted) FROM pg_available_extension_versions v "
                               "WHERE v.name = 'vector' AND v.installed").fetchone()
    assert {"alembic_version", "banks", "memory_units", "entities"} <= tables, sorted(tables)
    assert public == [], f"public must hold extensions only, found relations {public}"
    assert {name: extensions.get(name) for name in ("vector", "pg_trgm", "btree_gin")} == dict.fromkeys(
        ("vector", "pg_trgm", "btree_gin"), "public"), extensions
    claim.partial(f"Hindsight's migrations installed vector, pg_trgm and btree_gin in public and filled {len(tables)} "
                  f"tables in hindsight; its raw asyncpg SQL and <=> operator are not checked here",
                  claim="S1-hindsight-needs-pgvector", hindsight_tables=len(tables))
    claim.holds(f"with HINDSIGHT_API_DATABASE_SCHEMA=hindsight its migrations created schema hindsight and "
                f"{len(tables)} tables in it", claim="S1-hindsight-schema-env", hindsight_tables=len(tables))
    vector_trusted = bool(trusted and trusted[0])
    if vector_trusted:
        claim.holds("one vector extension in public, created once, serves Hindsight's schema", claim="S1-vector-once")
    else:
        claim.partial("one vector extension in public serves Hindsight's schema, but vector is not a trusted "
                      "extension: a superuser must create it before Hindsight's own role can run its migrations",
                      claim="S1-vector-once", vector_trusted=vector_trusted)


@pytest.mark.claim("S1-hindsight-migrates-on-start")
def test_second_migration_run_changes_nothing(hindsight_server: RunningHindsight) -> None:
    """Design §1: start-up is repeatable; Hindsight's own migrations are a no-op the second time."""
    before = catalog.snapshot(hindsight_server.database_url, hm.SCHEMA)
    again = hm.run_migrations(hindsight_server.database_url, schema=hm.SCHEMA)
    after = catalog.snapshot(hindsight_server.database_url, hm.SCHEMA)
    assert again.schema == hm.SCHEMA
    difference = catalog.diff(before, after)
    assert not difference.changes, difference


@pytest.mark.claim("S1-hindsight-own-pool")
def test_server_connections_are_its_own_and_tagged(hindsight_server: RunningHindsight) -> None:
    """Design §1 (each owner its own pool): the API's connections carry application_name hindsight-api."""
    database = hindsight_server.database_url.database
    with connect(hindsight_server.database_url) as conn:
        tags = conn.execute(
            "SELECT application_name, count(*) FROM pg_stat_activity WHERE datname = %s "
            "AND backend_type = 'client backend' AND pid <> pg_backend_pid() GROUP BY 1",
            [database]).fetchall()
    counts = dict(tags)
    assert counts.get(hm.APPLICATION_NAME, 0) >= 1, f"connections by application_name: {counts}"
    assert counts.get(hm.APPLICATION_NAME, 0) <= hindsight_server.server.pools_max, counts


def test_server_runs_the_installed_release_offline(hindsight_server: RunningHindsight) -> None:
    environ = hindsight_server.server.environ()
    assert environ["HINDSIGHT_API_LLM_PROVIDER"] == "mock"
    assert environ["HINDSIGHT_API_EMBEDDINGS_TEI_URL"].startswith("http://127.0.0.1:")
    response = httpx.get(hindsight_server.base_url + "/version", timeout=10)
    assert response.status_code == 200
    assert version("hindsight-api-slim") in response.text, response.text
    assert hindsight_server.server.startup_seconds is not None
    assert "postgres:" not in repr(hindsight_server.server) or "***" in repr(hindsight_server.server)


@pytest.mark.usefixtures("hindsight_installed")
def test_migrations_on_a_missing_database_fail_with_the_reason(hindsight_admin_url: DatabaseURL) -> None:
    missing = hindsight_admin_url.with_database("jedisos_test_no_such_db")
    with pytest.raises(HindsightServerError, match="jedisos_test_no_such_db") as failure:
        hm.run_migrations(missing)
    assert "failed" in str(failure.value)


@pytest.mark.usefixtures("hindsight_installed")
def test_a_server_that_cannot_start_reports_its_log_tail(hindsight_admin_url: DatabaseURL) -> None:
    """The real server exits on a database it cannot open; the error carries the reason from its log."""
    missing = hindsight_admin_url.with_database("jedisos_test_no_such_db")
    server = hs.HindsightServer(missing, settings=hs.HindsightSettings(startup_timeout=90))
    try:
        with pytest.raises(HindsightServerError, match="exited with code") as failure:
            server.start()
    finally:
        server.stop()
    assert 'database "jedisos_test_no_such_db" does not exist' in str(failure.value)
    assert not server.running


@pytest.mark.usefixtures("hindsight_installed")
@pytest.mark.claim("S1-hindsight-schema-env", "S1-hindsight-migrates-on-start")
def test_the_server_migrates_its_schema_on_start_when_asked(database_factory: DatabaseFactory,
                                                           hindsight_home: HindsightHome, tmp_path: Path) -> None:
    """Design §1 step 2: "Hindsight 서버 시작 → Alembic으로 hindsight 스키마 마이그레이션 (자동)" — true,
    with HINDSIGHT_API_RUN_MIGRATIONS_ON_STARTUP (its default); we run them explicitly first instead."""
    url = hindsight_home(database_factory("hindsight_self_migrating"))
    settings = hs.HindsightSettings(run_migrations_on_startup=True)
    with hs.HindsightServer(url, settings=settings, log_path=tmp_path / "api.log"):
        with connect(url) as conn:
            rows = conn.execute("SELECT version_num FROM hindsight.alembic_version").fetchall()
        assert len(rows) == 1, rows
