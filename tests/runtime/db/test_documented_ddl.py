"""The migrations build exactly the DDL the design documents (design §4), object by object."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from jedisos_db.harness.verify.plugin import ClaimRecorder
from jedisos_db.ops import catalog
from jedisos_db.runtime.db import migrations
from jedisos_db.runtime.db.connect import connect
from jedisos_db.runtime.owners import SCHEMA, VERSION_TABLE
from jedisos_db.runtime.urls import DatabaseURL
from tests.plugins.databases import DatabaseFactory

DOCUMENTED_DDL = Path(__file__).resolve().parents[3] / "fixtures" / "ddl" / "documented_section4.sql"
DOCUMENTED_REVISION = "006"
"""Revisions after 006 are this project's fixes to the design; the documented DDL ends at 006."""


def _apply(url: DatabaseURL, ddl: str) -> None:
    with connect(url) as conn:
        conn.execute(ddl)  # a fixture file, not user input


@pytest.fixture(scope="module")
def migrated_snapshot(database_factory: DatabaseFactory) -> catalog.Snapshot:
    url = database_factory("ddl_migrated")
    migrations.upgrade(url, DOCUMENTED_REVISION)
    return catalog.snapshot(url, SCHEMA, ignore=[VERSION_TABLE])


def _documented_snapshot(database_factory: DatabaseFactory, ddl: str) -> catalog.Snapshot:
    url = database_factory("ddl_documented")
    _apply(url, ddl)
    return catalog.snapshot(url, SCHEMA)


@pytest.mark.claim("S6-migrations-match-ddl")
def test_migrations_equal_documented_ddl(database_factory: DatabaseFactory, migrated_snapshot: catalog.Snapshot,
                                         claim: ClaimRecorder) -> None:
    """design §4 (DDL) and §6 (migrations 001-006): same columns, indexes, constraints, view, sequences."""
    documented = _documented_snapshot(database_factory, DOCUMENTED_DDL.read_text())
    result = catalog.diff(documented, migrated_snapshot)
    assert not result, result.render()
    kinds = {kind for kind, _ in documented}
    # The comparison really covered every kind of object the DDL declares.
    assert {"relation", "column", "index", "constraint", "view", "sequence"} <= kinds
    # 15 CREATE INDEX in §4, plus the indexes behind 7 primary keys and 4 UNIQUE columns.
    assert sum(1 for kind, _ in documented if kind == "index") == 15 + 7 + 4
    claim.holds(f"revisions 001-{DOCUMENTED_REVISION} built the same {len(documented)} catalog objects as §4's DDL "
                "(columns, indexes, constraints, view, sequences), no difference", objects=len(documented),
                differences=0)


def test_diff_reports_a_changed_index_predicate(database_factory: DatabaseFactory,
                                                migrated_snapshot: catalog.Snapshot) -> None:
    """The comparison can fail: one partial-index predicate changed is reported with both sides."""
    ddl = DOCUMENTED_DDL.read_text().replace(
        "WHERE severity IN ('warning', 'error', 'critical')", "WHERE severity IN ('error', 'critical')"
    )
    assert ddl != DOCUMENTED_DDL.read_text()
    result = catalog.diff(_documented_snapshot(database_factory, ddl), migrated_snapshot)
    rendered = result.render()
    assert [c.name for c in result.changes] == ["idx_audit_severity"], rendered
    assert "changed index idx_audit_severity" in rendered
    assert "'warning'" in rendered  # the server's side of the predicate is shown
    assert "expected" in rendered
    assert "server had" in rendered


def test_diff_reports_changed_default_missing_and_extra_objects(
    database_factory: DatabaseFactory, migrated_snapshot: catalog.Snapshot
) -> None:
    """A changed default, a dropped index and an added column each appear, named, in the diff."""
    ddl = DOCUMENTED_DDL.read_text()
    ddl = ddl.replace("status          VARCHAR(50) NOT NULL DEFAULT 'stopped'",
                      "status          VARCHAR(50) NOT NULL DEFAULT 'running'")
    ddl = re.sub(r"CREATE INDEX idx_cost_source [^;]+;", "", ddl)
    ddl += "\nALTER TABLE jedisos.schedules ADD COLUMN timezone TEXT;\n"
    result = catalog.diff(_documented_snapshot(database_factory, ddl), migrated_snapshot)
    rendered = result.render()
    by_name = {(c.status, c.kind, c.name) for c in result.changes}
    assert ("changed", "column", "mcp_servers.status") in by_name, rendered
    assert ("extra", "index", "idx_cost_source") in by_name, rendered
    assert ("missing", "column", "schedules.timezone") in by_name, rendered
    assert "default: expected \"'running'::character varying\", server had \"'stopped'::character varying\"" \
        in rendered
