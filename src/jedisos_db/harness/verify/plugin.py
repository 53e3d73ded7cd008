"""The pytest plugin behind ``jedisos-db verify``: tests are the checks, and they say what they found.

A test names the claims it decides with ``@pytest.mark.claim("S1-vector-once", ...)`` and may record
what it found through the ``claim`` fixture::

    def test_x(claim: ClaimRecorder) -> None:
        ...
        claim.fails("AsyncPostgresSaver(schema=...) raised TypeError", fix="head sets search_path")
        claim.holds("one vector extension, in public", extensions=1)

How a test's outcome becomes a finding, per claim it is marked with:

- passed: what it recorded; a claim it recorded nothing for ``holds`` (its assertions are the check), or,
  with ``shows="fails"`` on the marker, ``fails`` — a test written to demonstrate a false claim;
- failed: ``fails`` with the assertion's first line when the test set out to show the claim holds;
  ``not_run`` ("the check broke") when it set out to show it false, because then the failure says the
  demonstration no longer works, not that the claim is false;
- skipped, or an error in setup: ``not_run`` with the reason.

With ``--verdicts-out PATH`` the findings of the session are written to PATH as JSON (``findings_of``
gives them to a plugin in the same process).
"""

from __future__ import annotations

import json
from collections.abc import Generator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from jedisos_db.runtime.errors import InvalidInputError

from .verdicts import Figure, Finding, Verdict

MARKER = "claim"
OPTION = "--verdicts-out"

_RECORDER = pytest.StashKey["ClaimRecorder"]()
_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()
_FINDINGS = pytest.StashKey[list[Finding]]()


class ClaimRecorder:
    """What one test found about the claims it is marked with."""

    def __init__(self, check: str, claims: tuple[str, ...]) -> None:
        self.check = check
        self.claims = claims
        self.findings: dict[str, Finding] = {}
        self._figures: dict[str, dict[str, Figure]] = {c: {} for c in claims}

    def _ids(self, claim: str | None) -> tuple[str, ...]:
        if claim is None:
            return self.claims
        if claim not in self.claims:
            raise InvalidInputError("claim", f"{claim!r} is not among this test's claim marks {self.claims}")
        return (claim,)

    def record(self, verdict: Verdict, evidence: str, *, claim: str | None = None, fix: str | None = None,
               **figures: Figure) -> None:
        for cid in self._ids(claim):
            self._figures[cid].update(figures)
            self.findings[cid] = Finding(cid, verdict, evidence, self.check, dict(self._figures[cid]), fix)

    def holds(self, evidence: str, *, claim: str | None = None, **figures: Figure) -> None:
        self.record("holds", evidence, claim=claim, fix=None, **figures)

    def fails(self, evidence: str, *, claim: str | None = None, fix: str | None = None, **figures: Figure) -> None:
        self.record("fails", evidence, claim=claim, fix=fix, **figures)

    def partial(self, evidence: str, *, claim: str | None = None, fix: str | None = None, **figures: Figure) -> None:
        self.record("partial", evidence, claim=claim, fix=fix, **figures)

    def measured(self, claim: str) -> dict[str, Figure]:
        """The figures recorded for one claim so far."""
        return dict(self._figures[claim])

    def figures(self, *, claim: str | None = None, **figures: Figure) -> None:
        """Numbers measured on the way; they join whatever verdict the test ends with."""
        for cid in self._ids(claim):
            self._figures[cid].update(figures)
            if cid in self.findings:
                self.findings[cid] = Finding(**{**asdict(self.findings[cid]), "figures": dict(self._figures[cid])})


def claims_of(item: pytest.Item) -> tuple[tuple[str, ...], Verdict]:
    """The claim ids an item is marked with, and the verdict it sets out to show (``holds`` by default)."""
    ids: list[str] = []
    shows: Verdict = "holds"
    for mark in item.iter_markers(MARKER):
        if not mark.args or not all(isinstance(a, str) for a in mark.args):
            raise pytest.UsageError(f"{item.nodeid}: claim marker needs claim ids, e.g. claim('S1-vector-once')")
        ids.extend(mark.args)
        shows = mark.kwargs.get("shows", shows)
    return tuple(dict.fromkeys(ids)), shows


@pytest.fixture
def claim(request: pytest.FixtureRequest) -> ClaimRecorder:
    """Record what this test found about the claims its ``claim`` marker names."""
    ids, _ = claims_of(request.node)
    if not ids:
        raise pytest.UsageError(f"{request.node.nodeid}: the claim fixture needs a @pytest.mark.claim('ID') mark")
    recorder = ClaimRecorder(request.node.nodeid, ids)
    request.node.stash[_RECORDER] = recorder
    return recorder


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("jedisos-db").addoption(
        OPTION, default=None, metavar="PATH",
        help="write what the claim-marked tests found (one finding per test and claim) to PATH as JSON")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "claim(*ids, shows='holds'): the design claims this test decides (docs/design-claims.md); "
        "shows='fails' for a test that demonstrates a false claim")
    config.stash[_FINDINGS] = []


def _first_line(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(report.longrepr)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    # An assertion's message is the finding; its exception name adds nothing to the sentence.
    return lines[0].removeprefix("AssertionError: ")[:500] if lines else "no message"


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def _summary(item: pytest.Item) -> str:
    doc = getattr(getattr(item, "function", None), "__doc__", None) or ""
    first = doc.strip().split("\n\n")[0].replace("\n", " ").strip()
    return first or item.name.removeprefix("test_").replace("_", " ")


def findings_for(item: pytest.Item, reports: dict[str, pytest.TestReport]) -> list[Finding]:
    """The findings one finished test gives, one per claim it is marked with (rules in the module doc)."""
    ids, shows = claims_of(item)
    recorder = item.stash.get(_RECORDER, None)
    recorded = recorder.findings if recorder is not None else {}
    setup, call = reports.get("setup"), reports.get("call")
    out: list[Finding] = []
    for cid in ids:
        if setup is not None and setup.skipped:
            out.append(Finding(cid, "not_run", f"skipped: {_skip_reason(setup)}", item.nodeid))
        elif call is None or (setup is not None and setup.failed):
            why = _first_line(setup) if setup is not None and setup.failed else "it did not run"
            out.append(Finding(cid, "not_run", f"the check could not start: {why}", item.nodeid))
        elif call.skipped:
            out.append(Finding(cid, "not_run", f"skipped: {_skip_reason(call)}", item.nodeid))
        elif call.passed:
            figures = recorder.measured(cid) if recorder is not None else {}
            out.append(recorded.get(cid) or Finding(cid, shows, _summary(item), item.nodeid, figures))
        elif shows == "holds" and (cid not in recorded or recorded[cid].verdict == "holds"):
            figures = recorder.measured(cid) if recorder is not None else {}
            out.append(Finding(cid, "fails", _first_line(call), item.nodeid, figures))
        else:
            out.append(Finding(cid, "not_run", f"the check broke: {_first_line(call)}", item.nodeid))
    return out


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report: pytest.TestReport = yield
    if claims_of(item)[0]:
        reports = item.stash.setdefault(_REPORTS, {})
        reports[report.when] = report
        if report.when == "teardown":
            item.config.stash[_FINDINGS].extend(findings_for(item, reports))
    return report


def findings_of(config: pytest.Config) -> list[Finding]:
    """Every finding of the session so far (for a plugin running in the same process, e.g. verify's)."""
    found: list[Finding] = config.stash[_FINDINGS]
    return list(found)


def pytest_sessionfinish(session: pytest.Session) -> None:
    path = session.config.getoption(OPTION)
    if path:
        Path(path).write_text(json.dumps([asdict(f) for f in findings_of(session.config)], indent=2) + "\n",
                              encoding="utf-8")
