"""The claim plugin turns test outcomes into findings by the rules its module documents."""

from __future__ import annotations

import json
from typing import Any

import pytest

from jedisos_db.harness.verify.plugin import OPTION
from jedisos_db.harness.verify.verdicts import Finding, combine

CHECKS = '''
import pytest

@pytest.mark.claim("S1-a")
def test_passes_silently():
    """The catalog has one vector extension."""
    assert sorted("ba") == ["a", "b"]

@pytest.mark.claim("S1-b")
def test_records_figures(claim):
    claim.figures(seen=3)
    claim.holds("three of three", wanted=3)

@pytest.mark.claim("S1-c")
def test_assertion_breaks(claim):
    claim.figures(p99_ms=12.5)
    assert 2 == 3, "expected 3 tables, the server had 2"

@pytest.mark.claim("S1-d", shows="fails")
def test_demonstrates_a_false_claim():
    """The design's snippet raises TypeError."""

@pytest.mark.claim("S1-e", shows="fails")
def test_demonstration_no_longer_works():
    raise AssertionError("DID NOT RAISE TypeError")

@pytest.mark.claim("S1-f")
def test_skips():
    pytest.skip("hindsight-api-slim is not installed")

@pytest.fixture
def broken():
    raise RuntimeError("server refused the connection")

@pytest.mark.claim("S1-g", "S1-h")
def test_setup_error(broken):
    pass

@pytest.mark.claim("S1-g", "S1-h")
def test_two_claims(claim):
    claim.fails("refuted", claim="S1-g", fix="fixed at head by revision 007")
    claim.partial("half", claim="S1-h", rows=1)

def test_unmarked():
    pass
'''


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """An inner pytest run with only the claim plugin (no asyncio plugin: these checks are plain functions)."""
    return pytester.runpytest("-p", "jedisos_db.harness.verify.plugin", "-p", "no:asyncio", "-p", "no:cacheprovider",
                              *args)


@pytest.fixture
def findings(pytester: pytest.Pytester) -> dict[str, list[dict[str, Any]]]:
    pytester.makepyfile(test_checks=CHECKS)
    out = pytester.path / "findings.json"
    result = run(pytester, OPTION, str(out))
    result.assert_outcomes(passed=5, failed=2, skipped=1, errors=1)
    by_claim: dict[str, list[dict[str, Any]]] = {}
    for f in json.loads(out.read_text()):
        by_claim.setdefault(f["claim"], []).append(f)
    return by_claim


def test_outcomes_become_findings(findings: dict[str, list[dict[str, Any]]]) -> None:
    (a,), (b,), (c,), (d,), (e,), (f,) = (findings[k] for k in ("S1-a", "S1-b", "S1-c", "S1-d", "S1-e", "S1-f"))
    assert (a["verdict"], a["evidence"]) == ("holds", "The catalog has one vector extension.")
    assert a["check"] == "test_checks.py::test_passes_silently"
    assert (b["verdict"], b["evidence"], b["figures"]) == ("holds", "three of three", {"seen": 3, "wanted": 3})
    assert c["verdict"] == "fails"
    assert "expected 3 tables, the server had 2" in c["evidence"]
    assert c["figures"] == {"p99_ms": 12.5}
    assert (d["verdict"], d["evidence"]) == ("fails", "The design's snippet raises TypeError.")
    assert e["verdict"] == "not_run"
    assert e["evidence"].startswith("the check broke: ")
    assert "DID NOT RAISE" in e["evidence"]
    assert (f["verdict"], f["evidence"]) == ("not_run", "skipped: hindsight-api-slim is not installed")
    assert "S1-unmarked" not in findings


def test_a_test_with_two_claims_records_each(findings: dict[str, list[dict[str, Any]]]) -> None:
    g = {x["check"].rsplit("::", 1)[1]: x for x in findings["S1-g"]}
    h = {x["check"].rsplit("::", 1)[1]: x for x in findings["S1-h"]}
    assert g["test_setup_error"]["verdict"] == h["test_setup_error"]["verdict"] == "not_run"
    assert "server refused the connection" in g["test_setup_error"]["evidence"]
    assert (g["test_two_claims"]["verdict"], g["test_two_claims"]["fix"]) == ("fails", "fixed at head by revision 007")
    assert (h["test_two_claims"]["verdict"], h["test_two_claims"]["figures"]) == ("partial", {"rows": 1})


def test_recording_a_claim_the_test_is_not_marked_with_is_an_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_wrong='''
import pytest

@pytest.mark.claim("S1-a")
def test_wrong(claim):
    claim.holds("x", claim="S1-z")
''')
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*claim: 'S1-z' is not among this test's claim marks*"])


def _f(verdict: str, evidence: str = "e", check: str = "t", **figures: Any) -> Finding:
    return Finding("S1-x", verdict, evidence, check, figures)  # type: ignore[arg-type]


def test_combine_rules() -> None:
    assert combine("S1-x", []).verdict == "not_run"
    assert combine("S1-x", [_f("holds"), _f("holds")]).verdict == "holds"
    assert combine("S1-x", [_f("holds"), _f("not_run")]).verdict == "holds"
    assert combine("S1-x", [_f("not_run", "skipped: no hindsight")]).evidence == "skipped: no hindsight."
    mixed = combine("S1-x", [_f("holds", "a", "t1", n=1), _f("fails", "b", "t2", m=2)])
    assert (mixed.verdict, mixed.evidence, mixed.checks, dict(mixed.figures)) == (
        "partial", "b. a.", ("t2", "t1"), {"m": 2, "n": 1})
    assert combine("S1-x", [_f("fails"), _f("fails")]).verdict == "fails"
    assert combine("S1-x", [_f("holds"), _f("partial")]).verdict == "partial"


def test_a_finding_needs_a_known_verdict_and_evidence() -> None:
    with pytest.raises(ValueError, match="verdict: 'maybe' is not one of holds, fails, partial, not_run"):
        _f("maybe")
    with pytest.raises(ValueError, match="evidence: empty for S1-x"):
        _f("holds", " ")


def test_no_file_without_the_option(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_one='import pytest\n@pytest.mark.claim("S1-a")\ndef test_a():\n    pass\n')
    run(pytester).assert_outcomes(passed=1)
    assert not list(pytester.path.glob("*.json"))
