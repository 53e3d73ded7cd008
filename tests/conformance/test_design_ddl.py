"""Design §4 and §5 as written: the documented DDL (fixtures/ddl/documented_section4.sql, which revisions
001-006 build object for object) run on the real server, and what it does and does not enforce.

Every check here runs on the design's own DDL, never on head: the verdicts are about the document.
Where head fixes a flaw, the finding's ``fix`` says how.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

from jedisos_db.harness.verify.plugin import ClaimRecorder
from jedisos_db.runtime.db.connect import connect
from jedisos_db.runtime.owners import SCHEMA
from jedisos_db.runtime.urls import DatabaseURL
from tests.plugins.databases import DatabaseFactory
from tests.runtime.db.test_documented_ddl import DOCUMENTED_DDL

CLOCK_TIMEOUT_S = 30.0


def build_documented(database_factory: DatabaseFactory, hint: str) -> DatabaseURL:
    """A fresh database holding exactly §4's DDL (plus ``vector``, as the design's server has it)."""
    url = database_factory(hint)
    with connect(url) as conn:
        conn.execute(DOCUMENTED_DDL.read_text())  # a fixture file, not user input
    return url


@pytest.fixture(scope="module")
def documented(database_factory: DatabaseFactory) -> DatabaseURL:
    return build_documented(database_factory, "documented_s4")


@pytest.fixture
def conn(documented: DatabaseURL) -> Iterator[psycopg.Connection[Any]]:
    """A transaction on the documented schema, rolled back afterwards: each check starts from empty tables."""
    with connect(documented, autocommit=False) as c:
        yield c
        c.rollback()


def _count(conn: psycopg.Connection[Any], query: str) -> int:
    row = conn.execute(query, [SCHEMA]).fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.claim("S4-ddl-builds")
def test_section_4_ddl_builds_as_written(database_factory: DatabaseFactory, claim: ClaimRecorder) -> None:
    """§4's DDL, block by block from the document, runs on PostgreSQL 18 without an error."""
    url = build_documented(database_factory, "documented_build")
    with connect(url) as c:
        version = str(c.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
        tables = _count(c, "SELECT count(*) FROM pg_tables WHERE schemaname = %s")
        views = _count(c, "SELECT count(*) FROM pg_views WHERE schemaname = %s")
        # Indexes the DDL creates itself, not those behind PRIMARY KEY / UNIQUE.
        indexes = _count(c, "SELECT count(*) FROM pg_indexes i WHERE schemaname = %s AND NOT EXISTS "
                            "(SELECT 1 FROM pg_constraint k WHERE k.conindid = to_regclass(i.schemaname || '.' || "
                            "i.indexname))")
    assert (tables, views, indexes) == (7, 1, 15), (
        f"§4 declares 7 tables, 1 view and 15 CREATE INDEX; the server had {tables}, {views}, {indexes}")
    claim.holds(f"§4's DDL built as written on PostgreSQL {version}: {tables} tables, {views} view, "
                f"{indexes} indexes of its own", tables=tables, views=views, indexes=indexes, server_version=version)


@dataclass(frozen=True)
class Arrow:
    """One relation drawn in §5's diagram, and statements that the relation as drawn forbids."""

    claim: str
    drawn: str
    orphan: str
    """A row on the many side pointing at nothing on the one side."""
    orphan_refused: bool
    """What the documented DDL does with it (a foreign key refuses it)."""
    beyond: tuple[tuple[str, str], ...] = ()
    """(what, statement) the drawn cardinality forbids, run after the set-up rows exist."""
    fix: str | None = None
    """How head keeps the relation, when it does (None: nothing at head enforces it)."""


_TOOL = ("INSERT INTO jedisos.installed_tools (id, name, tier, version) VALUES "
         "('00000000-0000-0000-0000-00000000000{n}', 'tool{n}', {tier}, '1')")
_SERVER = ("INSERT INTO jedisos.mcp_servers (tool_id, server_name, docker_image) VALUES "
           "('00000000-0000-0000-0000-00000000000{n}', 'server{k}', 'img')")
_PACKAGE = ("INSERT INTO jedisos.marketplace_packages (package_name, package_type, installed_tool_id) VALUES "
            "('pkg{k}', 'skill', '00000000-0000-0000-0000-00000000000{n}')")

ARROWS = (
    Arrow("S5-tool-has-at-most-one-server", "installed_tools ||--o| mcp_servers (Tier 2 only)",
          _SERVER.format(n=9, k=0), orphan_refused=True,
          beyond=(("a second MCP server row for one Tier 2 tool",
                   _TOOL.format(n=2, tier=2) + "; " + _SERVER.format(n=2, k=1) + "; " + _SERVER.format(n=2, k=2)),
                  ("an MCP server row for a Tier 1 skill",
                   _TOOL.format(n=1, tier=1) + "; " + _SERVER.format(n=1, k=3))),
          fix="head's ToolRepository.install writes one MCP server row for a Tier 2 tool and none for a Tier 1 "
              "skill (the table still allows more)"),
    Arrow("S5-tool-has-at-most-one-package", "installed_tools ||--o| marketplace_packages (when installed)",
          _PACKAGE.format(n=9, k=0), orphan_refused=True,
          beyond=(("two marketplace packages linked to one tool",
                   _TOOL.format(n=3, tier=1) + "; " + _PACKAGE.format(n=3, k=1) + "; " + _PACKAGE.format(n=3, k=2)),)),
    Arrow("S5-preferences-own-schedules", "user_preferences ||--o{ schedules (per user)",
          "INSERT INTO jedisos.schedules (user_id, name, cron_expr, action_type, action_payload) "
          "VALUES ('nobody', 'n', '0 9 * * *', 'chat', '{}')", orphan_refused=False),
    Arrow("S5-tool-runs-audited", "installed_tools ||--o{ audit_logs (when a tool runs)",
          "INSERT INTO jedisos.audit_logs (event_type, tool_name) VALUES ('tool.executed', 'no-such-tool')",
          orphan_refused=False),
    Arrow("S5-costs-per-user", "cost_tracking }o--|| user_preferences (cost per user)",
          "INSERT INTO jedisos.cost_tracking (model, provider, source, user_id) VALUES ('m', 'p', 'agent', 'nobody')",
          orphan_refused=False),
)


def _accepted(conn: psycopg.Connection[Any], statement: str) -> str | None:
    """None when the server accepts ``statement`` (in a savepoint, rolled back), else its error."""
    try:
        with conn.transaction(force_rollback=True):
            for part in statement.split("; "):
                conn.execute(part.encode())  # fixed statements of this module
    except psycopg.DatabaseError as exc:
        return f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    return None


@pytest.mark.claim("S4-relations-enforced")
@pytest.mark.parametrize("arrow", [pytest.param(a, id=a.claim, marks=pytest.mark.claim(a.claim)) for a in ARROWS])
def test_relation_drawn_in_section_5_against_the_documented_ddl(
        conn: psycopg.Connection[Any], arrow: Arrow, claim: ClaimRecorder) -> None:
    """Each arrow of §5's diagram, tried on §4's DDL: is a row pointing at nothing refused, and is what
    the drawn cardinality forbids refused?"""
    refusal = _accepted(conn, arrow.orphan)
    assert (refusal is not None) == arrow.orphan_refused, (
        f"{arrow.drawn}: expected the orphan row {'refused' if arrow.orphan_refused else 'accepted'}, "
        f"the server {'refused it: ' + refusal if refusal else 'accepted it'}")
    let_through = [what for what, statement in arrow.beyond if _accepted(conn, statement) is None]
    assert let_through == [what for what, _ in arrow.beyond], (
        f"{arrow.drawn}: expected §4's DDL to accept {[w for w, _ in arrow.beyond]}, it accepted {let_through}")
    enforced = "refused a row pointing at nothing" if refusal else "accepted a row pointing at nothing (no constraint)"
    figures = {"orphan_refused": refusal is not None, "cardinality_violations_accepted": len(let_through)}
    relation = f"{arrow.drawn}: §4's DDL {enforced}"
    if refusal:
        claim.holds(f"{relation} ({refusal})", claim="S4-relations-enforced", **figures)
    else:
        claim.fails(relation, claim="S4-relations-enforced", fix=arrow.fix, **figures)
    if refusal and not let_through:
        claim.holds(relation, claim=arrow.claim, **figures)
    else:
        beyond = f"; it also accepted {' and '.join(let_through)}" if let_through else ""
        claim.fails(relation + beyond, claim=arrow.claim, fix=arrow.fix, **figures)


@pytest.mark.claim("S4-uninstall-tool", shows="fails")
def test_design_delete_of_a_tool_the_marketplace_points_at_fails(conn: psycopg.Connection[Any],
                                                                  claim: ClaimRecorder) -> None:
    """§4-7's ``installed_tool_id`` has no ``ON DELETE``: uninstalling a tool the cache links to is refused."""
    conn.execute(_TOOL.format(n=5, tier=1))
    conn.execute(_PACKAGE.format(n=5, k=5))
    error = _accepted(conn, "DELETE FROM jedisos.installed_tools WHERE name = 'tool5'")
    assert (error or "").startswith("ForeignKeyViolation"), (
        f"expected marketplace_packages' foreign key to refuse the design's DELETE of a linked tool, got {error}")
    claim.fails(f"DELETE FROM jedisos.installed_tools of a tool marketplace_packages links to: {error}",
                fix="head's ToolRepository.uninstall unlinks the package and deletes the tool in one transaction "
                    "(runtime/repositories/tools.py)")


def clock_passes(conn: psycopg.Connection[Any], moment: dt.datetime) -> None:
    """Return once the server's clock reads later than ``moment`` (a condition, not a sleep)."""
    deadline = time.monotonic() + CLOCK_TIMEOUT_S
    while not conn.execute("SELECT clock_timestamp() > %s", [moment]).fetchone()[0]:  # type: ignore[index]
        assert time.monotonic() < deadline, f"the server clock did not pass {moment} in {CLOCK_TIMEOUT_S} s"


@pytest.mark.claim("S4-updated-at", shows="fails")
def test_design_ddl_leaves_updated_at_at_creation_time(documented: DatabaseURL, claim: ClaimRecorder) -> None:
    """§4's ``updated_at DEFAULT NOW()`` has no trigger and no ``ON UPDATE``: a plain UPDATE leaves it stale."""
    stale: list[str] = []
    with connect(documented) as c:
        try:
            for table, insert, update in (
                ("user_preferences", "INSERT INTO jedisos.user_preferences (user_id) VALUES ('u-stale')",
                 "UPDATE jedisos.user_preferences SET max_tokens = 1 WHERE user_id = 'u-stale'"),
                ("installed_tools", _TOOL.format(n=7, tier=1),
                 "UPDATE jedisos.installed_tools SET version = '2' WHERE name = 'tool7'"),
            ):
                c.execute(insert)
                created = c.execute(f"SELECT updated_at FROM jedisos.{table}").fetchone()[0]  # type: ignore[index]
                clock_passes(c, created)
                c.execute(update)
                after, now = c.execute(f"SELECT updated_at, now() FROM jedisos.{table}").fetchone()  # type: ignore[misc]
                assert now > created, f"{table}: the UPDATE's transaction time {now} is not after {created}"
                if after == created:
                    stale.append(table)
        finally:
            c.execute("TRUNCATE jedisos.user_preferences, jedisos.installed_tools CASCADE")
    assert stale == ["user_preferences", "installed_tools"], f"expected both stale after UPDATE, stale: {stale}"
    claim.fails(f"after a plain UPDATE, updated_at still held the creation time in {' and '.join(stale)}",
                fix="head stamps updated_at in the models (onupdate) and repositories", stale_tables=len(stale))
