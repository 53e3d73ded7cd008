"""Revisions 001-006: where things land, what each builds, locking, and downgrades (design §6)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from jedisos_db.harness import designs
from jedisos_db.harness.verify.plugin import ClaimRecorder
from jedisos_db.ops import provision
from jedisos_db.runtime.db import migrations
from jedisos_db.runtime.db.connect import connect
from jedisos_db.runtime.owners import SCHEMA, VERSION_TABLE
from jedisos_db.runtime.urls import DatabaseURL
from tests.plugins.databases import DatabaseFactory

# Design §6, "Alembic 설정": which file creates which tables.
SECTION_6 = {
    "001": {"installed_tools", "audit_logs"},
    "002": {"cost_tracking"},
    "003": {"user_preferences"},
    "004": {"schedules"},
    "005": {"marketplace_packages"},
    "006": {"mcp_servers"},
}


def _tables(url: DatabaseURL, schema: str = SCHEMA) -> set[str]:
    with connect(url) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s", [schema]
        ).fetchall()
    return {r[0] for r in rows}


@pytest.mark.claim("S6-revision-plan")
def test_revision_chain_is_001_to_006() -> None:
    """design §6: six revisions, 001 → 006, one head."""
    revs = migrations.history()
    assert [r.revision for r in revs][:6] == list(SECTION_6)
    assert [r.down_revision for r in revs][:6] == [None, "001", "002", "003", "004", "005"]
    assert migrations.head() == revs[-1].revision


@pytest.mark.claim("S1-jedisos-migrations-create-schema")
@pytest.mark.claim("S6-revision-plan")
def test_each_revision_creates_the_tables_section_6_assigns_it(empty_db: DatabaseURL) -> None:
    """design §6: 001 installed_tools+audit_logs, 002 cost_tracking (+view), 003 ... 006 mcp_servers."""
    seen: set[str] = {VERSION_TABLE}
    for rev, expected in SECTION_6.items():
        migrations.upgrade(empty_db, rev)
        now = _tables(empty_db)
        assert now - seen == expected, f"revision {rev}: expected new tables {expected}, server had {now - seen}"
        seen = now


@pytest.mark.claim("S6-version-table")
def test_version_table_is_jedisos_schema_migrations_and_public_holds_no_tables(migrated_db: DatabaseURL,
                                                                              design: designs.Design,
                                                                              claim: ClaimRecorder) -> None:
    """design §1: the version table is jedisos.schema_migrations; nothing of ours lands in public. The database
    is at the revision the suite's design builds to (head, or e.g. p010 for ``--design partitioned``)."""
    with connect(migrated_db) as conn:
        version_tables = conn.execute(
            "SELECT schemaname || '.' || tablename FROM pg_tables WHERE tablename IN (%s, 'alembic_version')",
            [VERSION_TABLE],
        ).fetchall()
        public = conn.execute(
            "SELECT c.relname, c.relkind::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " LEFT JOIN pg_depend d ON d.objid = c.oid AND d.deptype = 'e'"
            " WHERE n.nspname = 'public' AND d.objid IS NULL AND c.relkind IN ('r', 'v', 'm', 'S', 'p')"
        ).fetchall()
    assert version_tables == [(f"{SCHEMA}.{VERSION_TABLE}",)]
    assert public == [], f"public should hold extension objects only, server had {public}"
    built = design.schema.built_revision
    assert migrations.current(migrated_db) == built, f"the {design.name} design builds to revision {built}"
    claim.holds(f"Alembic's only version table is {version_tables[0][0]}, at revision {built} (the {design.name} "
                "design's); no alembic_version and nothing of ours in public", version_tables=len(version_tables))


@pytest.mark.claim("S1-jedisos-migrations-create-schema")
def test_downgrade_base_leaves_only_the_version_table(empty_db: DatabaseURL) -> None:
    migrations.upgrade(empty_db)
    migrations.downgrade(empty_db, "base")
    assert _tables(empty_db) == {VERSION_TABLE}
    with connect(empty_db) as conn:
        views = conn.execute("SELECT viewname FROM pg_views WHERE schemaname = %s", [SCHEMA]).fetchall()
        seqs = conn.execute("SELECT sequencename FROM pg_sequences WHERE schemaname = %s", [SCHEMA]).fetchall()
    assert views == []
    assert seqs == []
    assert migrations.current(empty_db) is None


@pytest.mark.slow
@pytest.mark.claim("S6-upgrade-on-start")
def test_concurrent_cli_upgrades_both_succeed_and_apply_each_revision_once(
    database_factory: DatabaseFactory, server_info: provision.ServerInfo
) -> None:
    """Three `jedisos-db db upgrade` at once on a fresh database: all exit 0, each DDL ran once.

    The URL reaches the children in $JEDISOS_DB_URL: a command line is readable by every user (`ps`)."""
    if "pg_stat_statements" not in server_info.shared_preload_libraries:
        pytest.skip("the server does not preload pg_stat_statements, so statement counts cannot be read")
    url = database_factory("concurrent", bootstrap=False)
    with connect(url) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        conn.execute("SELECT pg_stat_statements_reset()")
    cli = [sys.executable, "-m", "jedisos_db", "db", "upgrade"]
    env = {**os.environ, "JEDISOS_DB_URL": url.libpq()}
    procs = [subprocess.Popen(cli, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env) for _ in range(3)]
    outputs = [p.communicate(timeout=120)[0].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], "\n---\n".join(outputs)
    with connect(url) as conn:
        db = conn.execute("SELECT oid FROM pg_database WHERE datname = current_database()").fetchone()
        assert db is not None
        creates = conn.execute(
            "SELECT query, calls FROM pg_stat_statements WHERE dbid = %s AND query ILIKE 'CREATE TABLE %%'",
            [db[0]],
        ).fetchall()
        versions = conn.execute(f"SELECT version_num FROM {SCHEMA}.{VERSION_TABLE}").fetchall()
    created = {q.split()[2].split("(")[0]: calls for q, calls in creates}
    expected = {f"{SCHEMA}.{t}" for t in _tables(url)}
    assert expected >= {f"{SCHEMA}.{t}" for ts in SECTION_6.values() for t in ts}
    assert set(created) == expected, f"CREATE TABLE statements seen: {created}"
    assert all(calls == 1 for calls in created.values()), f"a table was created more than once: {created}"
    assert versions == [(migrations.head(),)]


def test_migrations_ship_inside_the_package_tree() -> None:
    """The installed CLI must find env.py and versions/ without a source checkout."""
    location = migrations.script_location()
    assert (location / "env.py").is_file()
    names = sorted(p.name for p in (location / "versions").glob("0*.py"))
    assert names[:6] == [
        "001_initial_schema.py", "002_add_cost_tracking.py", "003_add_user_preferences.py",
        "004_add_schedules.py", "005_add_marketplace.py", "006_add_mcp_servers.py",
    ]
    assert Path(migrations.__file__).parents[2].name == "jedisos_db"
