"""docs/design-claims.md cannot rot: its ids are the ones issue 9 names, once each, every test it cites
exists (with the e2e marker it is listed with) and carries ``claim(id)`` for the row citing it, and every
``claim`` mark in tests/ names a row of the page that cites that test (as pytest itself collects them)."""

from __future__ import annotations

import contextlib
import importlib
import io
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from jedisos_db.harness.capacity import model as capacity
from jedisos_db.harness.verify import plugin
from jedisos_db.harness.verify.claims import CATALOG, NOT_CHECKED, Claim, parse

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / CATALOG

# The ids issue 9 ("jedisos-db verify") names, verbatim; S7-volume-<table> rows come from the design's table.
ISSUE_9_IDS = (
    "S1-single-instance", "S1-schema-per-owner", "S1-langgraph-schema-param", "S1-langgraph-asyncpg-pool",
    "S1-pool-independence", "S1-migration-order", "S1-any-order", "S1-no-name-collisions", "S1-vector-once",
    "S1-max-connections-200", "S1-one-dump-backs-up-all", "S2-hindsight-tables", "S2-recall-route",
    "S2-retain-route", "S2-entities-route", "S2-embedding-dim-384", "S2-bank-per-user", "S3-langgraph-tables",
    "S3-setup-creates-tables", "S4-ddl-builds", "S4-relations-enforced", "S4-uninstall-tool", "S4-updated-at",
    "S6-migrations-match-ddl", "S6-version-table", "S7-volume-total", "S7-audit-retention",
    "S7-cost-retention-keeps-summary", "S7-langgraph-retention-api", "S8-env-vars", "S9-full-dump",
    "S9-jedisos-dump", "S9-hindsight-dump", "S10-no-direct-sql", "S10-engine-pool", "S10-dependency-pins",
)

_ID = re.compile(r"^S(?P<section>\d+)-[a-z0-9][a-z0-9_-]*$")


@pytest.fixture(scope="module")
def claims() -> list[Claim]:
    return parse(DOC.read_text(encoding="utf-8"))


def volume_ids() -> set[str]:
    """One id per row of the design's §7 volume table, as the capacity model parses it."""
    return {f"S7-volume-{row.table}" for row in capacity.parse_section7().rows}


def test_issue_9_ids_each_appear_exactly_once(claims: list[Claim]) -> None:
    ids = [c.id for c in claims]
    for wanted in (*ISSUE_9_IDS, *sorted(volume_ids())):
        assert ids.count(wanted) == 1, f"{wanted}: listed {ids.count(wanted)} times in {DOC.name}"


def test_ids_are_unique_and_match_their_section(claims: list[Claim]) -> None:
    ids = [c.id for c in claims]
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})
    for c in claims:
        m = _ID.match(c.id)
        assert m is not None, f"{c.id}: not of the form S<section>-<lowercase-name>"
        assert m["section"] == c.section, f"{c.id}: listed under section {c.section}"
        assert c.text, f"{c.id}: no claim text"


def test_each_claim_names_its_checks_or_says_it_has_none(claims: list[Claim]) -> None:
    for c in claims:
        if c.where == NOT_CHECKED:
            continue
        leftover = c.unparsed_where()
        assert c.checks(), f"{c.id}: neither test node ids nor {NOT_CHECKED!r}: {c.where!r}"
        assert leftover == "", f"{c.id}: unparsed text in 'where it is checked': {leftover!r}"


def _resolve(node: str) -> tuple[Any, set[str]]:
    """The test function a node id names, imported the way pytest imports it (tests is a package)."""
    path, *names = node.split("::")
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    owner: Any = module
    marks = _marks(module)
    for name in names:
        owner = getattr(owner, name, None)
        assert owner is not None, f"{node}: {name} not found"
        marks |= _marks(owner)
    return owner, marks


def _marks(obj: object) -> set[str]:
    """Names of the marks set on a module, class or function (``pytestmark`` is one mark or a list)."""
    marks = getattr(obj, "pytestmark", [])
    return {mark.name for mark in (marks if isinstance(marks, list) else [marks])}


def test_every_cited_test_exists_with_the_marker_it_is_listed_with(claims: list[Claim]) -> None:
    for c in claims:
        for node, listed_e2e in c.checks():
            path = node.split("::")[0]
            assert (ROOT / path).is_file(), f"{c.id}: {path} does not exist"
            assert Path(path).name.startswith("test_"), f"{c.id}: {path} is not a test module"
            function, marks = _resolve(node)
            assert callable(function), f"{c.id}: {node} is not a function"
            assert node.rsplit("::", 1)[-1].startswith("test_"), f"{c.id}: {node} is not a test"
            assert ("e2e" in marks) == listed_e2e, (
                f"{c.id}: {node} is {'' if 'e2e' in marks else 'not '}marked e2e; list it "
                f"{'with' if 'e2e' in marks else 'without'} *(e2e)*")


def test_the_checks_catch_a_rotten_doc() -> None:
    """The parser and resolver fail on a missing test, a wrong section and a missing e2e mark."""
    rotten = parse("\n".join([
        "| `S1-x` | 2 | claim | `tests/test_cli.py::test_no_such_test` | |",
        "| `S2-y` | 2 | claim | `tests/conformance/test_e2e_stack.py::test_stack_holds_three_populated_schemas` | |",
    ]))
    assert [c.id for c in rotten] == ["S1-x", "S2-y"]
    with pytest.raises(AssertionError, match="S1-x: listed under section 2"):
        test_ids_are_unique_and_match_their_section(rotten)
    with pytest.raises(AssertionError, match="test_no_such_test not found"):
        test_every_cited_test_exists_with_the_marker_it_is_listed_with(rotten[:1])
    with pytest.raises(AssertionError, match="is marked e2e"):
        test_every_cited_test_exists_with_the_marker_it_is_listed_with(rotten[1:])
    with pytest.raises(AssertionError, match="S1-single-instance: listed 0 times"):
        test_issue_9_ids_each_appear_exactly_once(rotten)


# --- the page against pytest's own collection ------------------------------------------------------

Marks = Mapping[str, tuple[str, ...]]
"""Collected node id -> the claim ids its ``claim`` marks name (module, class, function and param marks)."""


class _ClaimMarks:
    """In-process plugin: every collected item's claim ids, read the way verify's plugin reads them."""

    def __init__(self) -> None:
        self.marks: dict[str, tuple[str, ...]] = {}

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.marks = {item.nodeid: plugin.claims_of(item)[0] for item in session.items}


@pytest.fixture(scope="module")
def collected() -> Marks:
    """Every test of tests/ as pytest collects it (no test runs), with its claim ids."""
    marks = _ClaimMarks()
    with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.chdir(ROOT):
        code = pytest.main([str(ROOT / "tests"), "--collect-only", "-q", "-p", "no:cacheprovider",
                            "--rootdir", str(ROOT), "-c", str(ROOT / "pyproject.toml"),
                            "-W", "ignore::pytest.PytestAssertRewriteWarning"], plugins=[marks])
    assert code == pytest.ExitCode.OK, f"collecting tests/ failed ({code!r}):\n{out.getvalue()[-2000:]}"
    assert marks.marks, "pytest collected no tests"
    return marks.marks


def _at(node: str, marks: Marks) -> dict[str, tuple[str, ...]]:
    """The collected items a cited node id names: itself, or its parametrized cases."""
    return {n: ids for n, ids in marks.items() if n == node or n.startswith(node + "[")}


def cited_but_unmarked(claims: list[Claim], marks: Marks) -> list[str]:
    """One line per (row, cited test) where the test does not carry ``claim(row id)``: both sides named."""
    out = []
    for c in claims:
        for node, _ in c.checks():
            items = _at(node, marks)
            if not items:
                out.append(f"{c.id}: the page cites {node}; pytest collects no such test")
            elif not any(c.id in ids for ids in items.values()):
                found = sorted({i for ids in items.values() for i in ids})
                out.append(f"{c.id}: the page cites {node}; the test is marked claim{tuple(found) or '()'}")
    return out


def marked_but_not_cited(claims: list[Claim], marks: Marks) -> list[str]:
    """One line per (marked test, claim id) the page does not back: an unknown id, or a row not citing it."""
    rows = {c.id: {node for node, _ in c.checks()} for c in claims}
    out = []
    for nodeid, ids in sorted(marks.items()):
        base = nodeid.split("[", 1)[0]
        for cid in ids:
            if cid not in rows:
                out.append(f"{nodeid} is marked claim({cid!r}); the page has no row {cid}")
            elif base not in rows[cid]:
                out.append(f"{nodeid} is marked claim({cid!r}); row {cid} cites "
                           f"{sorted(rows[cid]) or NOT_CHECKED}")
    return out


def test_every_cited_test_carries_the_claim_of_its_row(claims: list[Claim], collected: Marks) -> None:
    mismatches = cited_but_unmarked(claims, collected)
    assert not mismatches, f"{len(mismatches)} cited test(s) without their row's claim mark:\n" + "\n".join(mismatches)


def test_every_claim_mark_names_a_row_that_cites_the_test(claims: list[Claim], collected: Marks) -> None:
    mismatches = marked_but_not_cited(claims, collected)
    assert not mismatches, f"{len(mismatches)} claim mark(s) the page does not back:\n" + "\n".join(mismatches)


def test_the_cross_check_catches_each_kind_of_mismatch() -> None:
    """A cited test without the mark, a cited test pytest does not collect, a mark of an unknown id and a
    mark whose row cites other tests: each is listed with both sides; a consistent pair gives nothing."""
    page = parse("\n".join([
        "| `S1-a` | 1 | claim | `tests/test_x.py::test_one`<br>`tests/test_x.py::test_gone` | |",
        "| `S1-b` | 1 | claim | `tests/test_x.py::test_two` | |",
    ]))
    marks = {"tests/test_x.py::test_one": ("S1-b",), "tests/test_x.py::test_two[p1]": ("S1-b",),
             "tests/test_x.py::test_two[p2]": ("S1-c",)}
    assert cited_but_unmarked(page, marks) == [
        "S1-a: the page cites tests/test_x.py::test_one; the test is marked claim('S1-b',)",
        "S1-a: the page cites tests/test_x.py::test_gone; pytest collects no such test",
    ]
    assert marked_but_not_cited(page, marks) == [
        "tests/test_x.py::test_one is marked claim('S1-b'); row S1-b cites ['tests/test_x.py::test_two']",
        "tests/test_x.py::test_two[p2] is marked claim('S1-c'); the page has no row S1-c",
    ]
    consistent = {"tests/test_x.py::test_one": ("S1-a",), "tests/test_x.py::test_gone": ("S1-a",),
                  "tests/test_x.py::test_two[p1]": ("S1-b",)}
    assert cited_but_unmarked(page, consistent) == []
    assert marked_but_not_cited(page, consistent) == []
