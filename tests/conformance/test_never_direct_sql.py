"""JediSOS never touches ``hindsight`` or ``langgraph`` by direct SQL (design §2, §3, §10
"직접 SQL 금지"), proven three ways: (a) source scan, (b) statements the server saw, (c) privileges."""

from __future__ import annotations

import re
from pathlib import Path

import psycopg
import pytest

from jedisos_db.harness.verify.plugin import ClaimRecorder
from jedisos_db.ops import roles
from jedisos_db.runtime.db.connect import connect
from jedisos_db.runtime.urls import DatabaseURL
from tests.conformance.conftest import Stack, Statement
from tests.conformance.source_scan import SANCTIONED, scan_source, scan_tree

SRC = Path(__file__).resolve().parents[2] / "src"


def _relations(url: DatabaseURL, schema: str) -> list[str]:
    with connect(url) as conn:
        return [r[0] for r in conn.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v', 'm') ORDER BY 1", [schema]).fetchall()]


def _touches(statement: Statement, schema: str, names: list[str]) -> bool:
    alternatives = "|".join(re.escape(n) for n in [*names, schema])
    pattern = (rf'(?i)\b(from|join|into|update|table|on|truncate|schema)\s+'
               rf'("?{re.escape(schema)}"?\s*\.\s*)?"?({alternatives})"?\b')
    return re.search(pattern, statement.text) is not None


# (a) ----------------------------------------------------------------------------------------


@pytest.mark.claim("S10-no-direct-sql")
def test_source_scan_finds_no_direct_sql_outside_the_sanctioned_modules(claim: ClaimRecorder) -> None:
    """design §2/§3: no SQL or SQLAlchemy construct in src/ names hindsight/langgraph objects,
    except the LangGraph checkpointer factory and the Hindsight package."""
    findings = scan_tree(SRC)
    files = len(list(SRC.rglob("*.py")))
    claim.figures(scan_files=files, scan_findings=len(findings), scan_sanctioned_patterns=len(SANCTIONED))
    assert findings == [], "direct SQL on foreign schemas:\n" + "\n".join(map(str, findings))
    claim.holds(f"(a) the source scan of {files} modules in src/ found no SQL on hindsight or langgraph outside "
                f"the {len(SANCTIONED)} sanctioned owner modules")


def test_source_scan_sees_the_sanctioned_module_it_excuses() -> None:
    """The scan is not vacuous: without the exemption, checkpointer.py is reported."""
    checkpointer_py = SRC / "jedisos_db" / "runtime" / "checkpointer.py"
    assert any(checkpointer_py.match(p) for p in SANCTIONED)
    found = scan_source(checkpointer_py.read_text(), str(checkpointer_py))
    assert found, "the scanner misses the SQL that checkpointer.py legitimately holds"


@pytest.mark.parametrize("planted", [
    'q = "SELECT * FROM hindsight.memory_units"',
    'q = f"DELETE FROM langgraph.checkpoints WHERE thread_id = {tid}"',
    'q = text("update \\"hindsight\\".\\"banks\\" set name = :n")',
    "t = Table('checkpoints', MetaData(), schema='langgraph')",
    "class M(Base):\n    __table_args__ = {'schema': 'hindsight'}",
    "stmt = sql.SQL('SELECT 1 FROM {}.x').format(sql.Identifier('langgraph'))",
    'conn.execute("SET search_path TO hindsight")',
    'q = "INSERT INTO checkpoint_writes VALUES (1)"',
])
@pytest.mark.claim("S10-no-direct-sql")
def test_source_scan_fails_on_a_planted_sample(planted: str) -> None:
    """The scanner can fail: each planted construct is reported."""
    assert scan_source(planted, "planted.py"), f"not detected: {planted}"


@pytest.mark.parametrize("innocent", [
    'HINDSIGHT_SCHEMA = "hindsight"',
    'msg = "LangGraph saver in schema langgraph"',
    'q = "SELECT * FROM jedisos.installed_tools"',
])
def test_source_scan_leaves_innocent_code_alone(innocent: str) -> None:
    assert scan_source(innocent, "innocent.py") == []


# (b) ----------------------------------------------------------------------------------------


@pytest.mark.claim("S3-langgraph-api-only", "S10-no-direct-sql")
def test_statements_touching_langgraph_came_from_langgraph(stack: Stack, claim: ClaimRecorder) -> None:
    """design §3: every statement the server saw on ``langgraph`` objects came from LangGraph's own
    tagged connections (role langgraph_app, application_name jedisos-langgraph)."""
    role = stack.report.by_owner("langgraph").role
    names = _relations(stack.url, "langgraph")
    touching = [s for s in stack.statements if _touches(s, "langgraph", names)]
    by_source = {src: sum(1 for s in touching if s.source == src) for src in ("pg_stat_statements", "log")}
    print(f"\nstatements on langgraph objects: {by_source}; roles {sorted({s.role for s in touching})}, "
          f"applications {sorted({str(s.application) for s in touching if s.application})}")
    sources = {src for src, reason in (("pg_stat_statements", stack.pgss_captured), ("log", stack.log_captured))
               if reason is None}
    if not sources:
        pytest.skip(f"no statement capture on this server: {stack.pgss_captured}; {stack.log_captured}")
    assert {s.source for s in touching} == sources
    for source in sources:
        assert by_source[source] >= 5, f"{source} saw too little of LangGraph: {by_source}"
    strangers = [s for s in touching if s.role != role
                 or (s.application is not None and s.application != "jedisos-langgraph")]
    claim.figures(statements_on_langgraph=len(touching), statements_on_langgraph_from_others=len(strangers))
    assert not strangers, "statements on langgraph from other connections:\n" + "\n".join(
        f"  {s.source} role={s.role} app={s.application}: {s.text[:120]}" for s in strangers)
    claim.holds(f"(b) all {len(touching)} statements the server saw on langgraph objects "
                f"({', '.join(sorted(sources))}) came from {role} on LangGraph's own connections")


@pytest.mark.claim("S2-rest-api-only", "S10-no-direct-sql")
def test_statements_touching_hindsight_came_from_hindsight(stack: Stack, claim: ClaimRecorder) -> None:
    """design §2: every statement the server saw on ``hindsight`` objects came from Hindsight's role."""
    role = stack.report.by_owner("hindsight").role
    names = _relations(stack.url, "hindsight")
    touching = [s for s in stack.statements if _touches(s, "hindsight", names)]
    strangers = [s for s in touching if s.role != role]
    claim.figures(statements_on_hindsight=len(touching), statements_on_hindsight_from_others=len(strangers))
    assert not strangers, "statements on hindsight from other connections:\n" + "\n".join(
        f"  {s.source} role={s.role} app={s.application}: {s.text[:120]}" for s in strangers)
    claim.holds(f"(b) all {len(touching)} statements the server saw on hindsight objects came from {role}")


@pytest.mark.claim("S10-no-direct-sql")
def test_jedisos_statements_stay_in_jedisos(stack: Stack, claim: ClaimRecorder) -> None:
    """design §10: what jedisos_app sent names only its own objects."""
    jedisos = stack.report.by_owner("jedisos").role
    mine = [s for s in stack.statements if s.role == jedisos]
    assert any("installed_tools" in s.text for s in mine), "the JediSOS write was not captured"
    for schema in ("langgraph", "hindsight"):
        names = _relations(stack.url, schema)
        bad = [s.text[:120] for s in mine if _touches(s, schema, names)]
        assert not bad, f"jedisos_app touched {schema}: {bad}"
    claim.holds(f"(b) none of the {len(mine)} statements {jedisos} sent named a langgraph or hindsight object",
                jedisos_statements=len(mine), jedisos_statements_on_foreign_schemas=0)


def test_the_log_carries_application_names(stack: Stack) -> None:
    """The statement log tags each connection (log_line_prefix %a): LangGraph's and JediSOS's apart."""
    if stack.log_captured is not None:
        pytest.skip(stack.log_captured)
    apps = {s.application for s in stack.statements if s.source == "log"}
    assert {"jedisos-langgraph", "jedisos-app", "jedisos-db-migrations"} <= apps, apps


# (c) ----------------------------------------------------------------------------------------


def _attempts(schema: str, relation: str | None) -> list[str]:
    target = f'"{schema}"."{relation}"' if relation else f'"{schema}".jedisos_probe'
    return [
        f"SELECT * FROM {target} LIMIT 1",
        f"INSERT INTO {target} DEFAULT VALUES",
        f"UPDATE {target} SET ctid = ctid" if relation else f"UPDATE {target} SET x = 1",
        f"DELETE FROM {target}",
        f"TRUNCATE {target}",
        f'CREATE TABLE "{schema}".jedisos_probe (x int)',
    ]


@pytest.mark.parametrize("schema", [
    pytest.param("langgraph", marks=pytest.mark.claim("S3-langgraph-api-only", "S10-no-direct-sql")),
    pytest.param("hindsight", marks=pytest.mark.claim("S2-rest-api-only", "S10-no-direct-sql")),
])
def test_jedisos_app_is_refused_everywhere_outside_jedisos(stack: Stack, schema: str, claim: ClaimRecorder) -> None:
    """design §2/§3 "직접 SQL 금지": under the least-privilege roles, every read and write by
    jedisos_app into hindsight/langgraph fails with SQLSTATE 42501."""
    # Hindsight's schema is where Hindsight is: on its own server (with jedisos_app there too) for such a design.
    check_refused_outside_jedisos(stack.hindsight_side if schema == "hindsight" else stack, schema, claim)


def check_refused_outside_jedisos(stack: Stack, schema: str, claim: ClaimRecorder) -> None:
    """Every read and write jedisos_app tries on each relation of ``schema`` is refused with 42501."""
    relations = _relations(stack.url, schema)
    if schema == "langgraph":
        assert set(relations) >= {"checkpoints", "checkpoint_blobs", "checkpoint_writes", "checkpoint_migrations"}
    targets: list[str | None] = list(relations) or [None]  # no relation yet: probe a new table's name
    statements = [q for rel in targets for q in _attempts(schema, rel)]
    outcomes: dict[str, str] = {}
    with psycopg.connect(stack.owner_urls["jedisos"].libpq(), autocommit=True) as conn:
        for query in statements:
            try:
                conn.execute(query)
                outcomes[query] = "succeeded"
            except psycopg.Error as exc:
                outcomes[query] = exc.sqlstate or "?"
    wrong = {q: o for q, o in outcomes.items() if o != "42501"}
    assert not wrong, f"expected 42501 for every statement, server answered: {wrong}"
    assert len(outcomes) >= 6
    figures = {f"refused_on_{schema}": len(outcomes), f"allowed_on_{schema}": 0}
    # Figure names are never claim= or fix=, which is all mypy fears of a dict's keys here.
    claim.holds(f"(c) all {len(outcomes)} reads and writes jedisos_app tried on {len(relations)} {schema} "
                f"relations were refused with 42501", **figures)  # type: ignore[arg-type]


@pytest.mark.claim("S10-no-direct-sql")
def test_owner_roles_cannot_reach_each_other(stack: Stack, claim: ClaimRecorder) -> None:
    """design §1: isolation holds in every direction, not just for jedisos_app."""
    leaks = roles.privilege_leaks(stack.url, stack.report)
    claim.figures(privilege_leaks=len(leaks))
    assert leaks == [], f"roles with rights outside their schema: {leaks}"
    with (psycopg.connect(stack.owner_urls["langgraph"].libpq(), autocommit=True) as conn,
          pytest.raises(psycopg.errors.InsufficientPrivilege)):
        conn.execute("SELECT * FROM jedisos.installed_tools")
    with (psycopg.connect(stack.owner_urls["hindsight"].libpq(), autocommit=True) as conn,
          pytest.raises(psycopg.errors.InsufficientPrivilege)):
        conn.execute("SELECT * FROM langgraph.checkpoints")
    claim.holds(f"(c) none of the {len(stack.report.grants)} owner roles has USAGE or CREATE on another owner's schema")


def test_the_stack_ran_under_the_roles(stack: Stack) -> None:
    """The whole stack ran under the roles: each schema and every object in it belongs to its owner."""
    assert stack.graph_messages == ["hi", "echo: hi"]
    with connect(stack.url) as conn:
        rows = conn.execute(
            "SELECT n.nspname, c.relname, pg_get_userbyid(c.relowner) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = ANY(%s)",
            [list(roles.OWNERS)]).fetchall()
    expected = {g.schema: g.role for g in stack.report.grants}
    wrong = [(s, r, o) for s, r, o in rows if o != expected[s]]
    assert rows, "nothing was created"
    assert not wrong, f"objects not owned by their schema's role: {wrong}"
