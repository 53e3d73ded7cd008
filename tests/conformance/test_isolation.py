"""Schema isolation on the stack database (design §1 "스키마 격리", "충돌 방지 체크리스트")."""

from __future__ import annotations

from collections import Counter

import pytest

from jedisos_db.harness.verify.plugin import ClaimRecorder
from jedisos_db.ops import catalog
from jedisos_db.runtime.db import models
from jedisos_db.runtime.db.connect import connect
from jedisos_db.runtime.urls import DatabaseURL
from tests.conformance.conftest import Stack
from tests.plugins.hindsight import server_of

LANGGRAPH_TABLES = {"checkpoints", "checkpoint_blobs", "checkpoint_writes", "checkpoint_migrations"}
VERSION_TABLES = {"alembic_version": "hindsight", "checkpoint_migrations": "langgraph",
                  "schema_migrations": "jedisos"}


def _rows(url: DatabaseURL, query: str, params: list[object] | None = None) -> list[tuple[object, ...]]:
    with connect(url) as conn:
        return [tuple(r) for r in conn.execute(query, params).fetchall()]


def _relations(url: DatabaseURL, schema: str, kinds: str = "rpvm") -> set[str]:
    return {str(r[0]) for r in _rows(
        url, "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
             "WHERE n.nspname = %s AND c.relkind = ANY(%s)", [schema, list(kinds)])}


@pytest.mark.claim("S1-single-instance", "S1-schema-per-owner", "S3-langgraph-tables")
def test_each_schema_holds_exactly_its_owners_objects(stack: Stack, claim: ClaimRecorder) -> None:
    """design §1: langgraph holds LangGraph's four tables, jedisos our models and version table,
    nothing of either lands in the other; each schema's objects belong to its owner's role."""
    langgraph = _relations(stack.url, "langgraph", "rp")
    claim.figures(claim="S3-langgraph-tables", documented_tables=len(LANGGRAPH_TABLES), real_tables=len(langgraph))
    assert langgraph == LANGGRAPH_TABLES, f"langgraph holds {sorted(langgraph)}, the design: {sorted(LANGGRAPH_TABLES)}"
    ours = {t.name for t in models.Base.metadata.tables.values()}
    jedisos = _relations(stack.url, "jedisos")
    assert jedisos == ours | {"schema_migrations"}, f"jedisos holds {sorted(jedisos)}"
    hindsight = _relations(stack.url, "hindsight")
    assert not (hindsight & (LANGGRAPH_TABLES | ours)), hindsight
    owners = _rows(stack.url, "SELECT n.nspname, pg_get_userbyid(c.relowner), count(*) FROM pg_class c "
                              "JOIN pg_namespace n ON n.oid = c.relnamespace "
                              "WHERE n.nspname IN ('jedisos', 'langgraph', 'hindsight') GROUP BY 1, 2")
    expected = {g.schema: g.role for g in stack.report.grants}
    assert all(expected[str(schema)] == role for schema, role, _ in owners), owners
    for cid in ("S1-single-instance", "S1-schema-per-owner"):
        claim.figures(claim=cid, jedisos_relations=len(jedisos), langgraph_relations=len(langgraph),
                      hindsight_relations=len(hindsight))
    if stack.hindsight_ran and stack.hindsight_apart:
        there = _relations(stack.hindsight_url, "hindsight")
        claim.fails(f"database {stack.database} holds jedisos ({len(jedisos)} relations) and langgraph "
                    f"({len(langgraph)}) only: Hindsight's schema ({len(there)} relations) is on a server of its own ("
                    f"{server_of(stack.hindsight_url)}, not {server_of(stack.url)}), as this design places it",
                    claim="S1-single-instance", hindsight_relations_elsewhere=len(there))
    elif stack.hindsight_ran:
        claim.holds(f"database {stack.database} holds jedisos ({len(jedisos)} relations), langgraph ({len(langgraph)}) "
                    f"and hindsight ({len(hindsight)}) side by side on one server", claim="S1-single-instance")
    else:
        claim.partial(f"database {stack.database} holds jedisos ({len(jedisos)} relations) and langgraph "
                      f"({len(langgraph)}) on one server; Hindsight is not installed (pip install '.[hindsight]'), "
                      f"so its schema was not built", claim="S1-single-instance")
    claim.holds(f"each schema holds only its owner's relations ({len(jedisos)} jedisos, {len(langgraph)} langgraph, "
                f"{len(hindsight)} hindsight), each owned by its owner's role", claim="S1-schema-per-owner")
    claim.holds(f"langgraph holds exactly the four documented tables: {', '.join(sorted(langgraph))}",
                claim="S3-langgraph-tables")


@pytest.mark.claim("S1-schema-per-owner")
def test_no_foreign_key_crosses_schemas(stack: Stack, claim: ClaimRecorder) -> None:
    """design §1: the owners share no foreign keys, so each can migrate or drop its schema alone."""
    fks = _rows(stack.url, """
        SELECT con.conname, src.nspname, dst.nspname FROM pg_constraint con
        JOIN pg_class sc ON sc.oid = con.conrelid JOIN pg_namespace src ON src.oid = sc.relnamespace
        JOIN pg_class dc ON dc.oid = con.confrelid JOIN pg_namespace dst ON dst.oid = dc.relnamespace
        WHERE con.contype = 'f' AND src.nspname IN ('jedisos', 'langgraph', 'hindsight', 'public')""")
    assert fks, "no foreign keys at all: the check would be vacuous"
    crossing = [fk for fk in fks if fk[1] != fk[2]]
    assert not crossing, f"foreign keys crossing schemas: {crossing}"
    claim.holds(f"none of the {len(fks)} foreign keys crosses a schema", foreign_keys=len(fks), crossing_keys=0)


@pytest.mark.claim("S1-schema-per-owner")
@pytest.mark.claim("S6-version-table")
def test_the_three_version_tables_stay_apart(stack: Stack) -> None:
    """design §1: hindsight.alembic_version, langgraph.checkpoint_migrations and
    jedisos.schema_migrations each live in their owner's schema only."""
    query = ("SELECT c.relname, n.nspname FROM pg_class c JOIN pg_namespace n "
             "ON n.oid = c.relnamespace WHERE c.relname = ANY(%s) AND c.relkind = 'r'")
    found = [row for url in [stack.url, *([stack.hindsight_side.url] if stack.hindsight_apart else [])]
             for row in _rows(url, query, [list(VERSION_TABLES)])]
    wrong = [(t, s) for t, s in found if VERSION_TABLES[str(t)] != s]
    assert not wrong, f"version tables outside their schema: {wrong}"
    present = {str(t) for t, _ in found}
    assert {"checkpoint_migrations", "schema_migrations"} <= present
    hindsight_ran = any(s.name == "hindsight" and s.status != "skipped" for s in stack.steps)
    assert ("alembic_version" in present) == hindsight_ran


@pytest.mark.claim("S1-schema-per-owner", "S1-vector-once")
def test_public_holds_extensions_only(stack: Stack, claim: ClaimRecorder) -> None:
    """design §1 "pgvector 확장": public holds the shared extensions and nothing else."""
    loose = catalog.loose_in_public(stack.url)
    assert not loose, f"public holds non-extension objects: {loose}"
    exts = {str(r[0]) for r in _rows(stack.url, "SELECT e.extname FROM pg_extension e "
                                                "WHERE e.extnamespace = 'public'::regnamespace")}
    assert "vector" in exts, f"no vector extension in public, only {sorted(exts)}"
    # Hindsight on a server of its own: its database there has a vector extension of its own.
    sides = [stack, stack.hindsight_side] if stack.hindsight_apart else [stack]
    found = [_rows(side.url, """
        SELECT (SELECT count(*) FROM pg_extension WHERE extname = 'vector'),
               (SELECT count(DISTINCT c.relnamespace) FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
                 WHERE a.atttypid = 'vector'::regtype AND c.relnamespace <> 'public'::regnamespace)""")[0]
             for side in sides]
    vectors, users = (sum(int(str(row[i])) for row in found) for i in (0, 1))
    where = "" if len(sides) == 1 else f" (one in each database, on each of {len(sides)} servers)"
    claim.holds(f"public holds only the extensions {', '.join(sorted(exts))} and no other object",
                claim="S1-schema-per-owner", public_extensions=len(exts), public_other_objects=0)
    claim.holds(f"{vectors} vector extension, in public, serves the vector columns of {users} schema(s){where}",
                claim="S1-vector-once", vector_extensions=vectors, schemas_using_vector=users)


@pytest.mark.claim("S1-no-name-collisions")
def test_no_name_collides(stack: Stack, claim: ClaimRecorder) -> None:
    """design §1 "테이블/인덱스/시퀀스 이름 충돌": no relation, index or sequence name is used in
    two of the three schemas, so an unqualified name can never reach another owner's object."""
    names = _rows(stack.url, "SELECT c.relname, n.nspname FROM pg_class c JOIN pg_namespace n "
                             "ON n.oid = c.relnamespace WHERE n.nspname IN ('jedisos', 'langgraph', 'hindsight', "
                             "'public') AND c.relkind IN ('r', 'p', 'v', 'm', 'i', 'I', 'S')")
    counts = Counter(str(n) for n, _ in names)
    collisions = {n: sorted(str(s) for m, s in names if m == n) for n, c in counts.items() if c > 1}
    assert len(names) > 20
    assert not collisions, f"names used in more than one schema: {collisions}"
    claim.holds(f"{len(names)} relation, index and sequence names across the schemas, none used twice",
                names=len(names), collisions=0)
