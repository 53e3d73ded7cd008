"""The runner: the claim-marked tests of a source tree, run on a real server, become a ledger of verdicts."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from jedisos_db.harness.verify import report, schema
from jedisos_db.harness.verify.claims import Catalog, locate_source
from jedisos_db.harness.verify.run import QUICK_REASON, DesignResult, Ledger, judge, verify
from jedisos_db.runtime.errors import ConfigError, InvalidInputError
from jedisos_db.runtime.urls import DatabaseURL

from .sources import write_source

Said = list[tuple[str, int, int]]

CATALOG_IDS = ["S1-one-server", "S1-false-thing", "S2-needs-hindsight", "S2-skipped", "S2-unmarked", "S2-unchecked"]


def _claims(ledger: Ledger) -> dict[str, dict[str, Any]]:
    design, = ledger.as_json()["designs"]
    return {c["id"]: c for c in design["claims"]}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory, server_url: DatabaseURL) -> tuple[Ledger, Said]:
    source = write_source(tmp_path_factory.mktemp("source"))
    said: Said = []
    ledger = verify(server_url, tmp_path_factory.mktemp("ledger"), quick=True, source=source,
                    progress=lambda *a: said.append(a))
    return ledger, said


def test_every_claim_of_the_catalog_gets_its_verdict(quick_run: tuple[Ledger, Said]) -> None:
    ledger, _ = quick_run
    claims = _claims(ledger)
    assert list(claims) == CATALOG_IDS
    one = claims["S1-one-server"]
    assert (one["verdict"], one["evidence"], one["check"]) == (
        "holds", "The server runs PostgreSQL 18.", "tests/test_checks.py::test_server_is_postgresql_18")
    # figures recorded on the way join the verdict the test's assertions gave
    assert one["figures"] == {"max_connections": int(ledger.server["settings"]["max_connections"])}
    false = claims["S1-false-thing"]
    assert (false["verdict"], false["fix"]) == ("fails", "fixed at head: search_path")
    assert claims["S2-needs-hindsight"] == {**claims["S2-needs-hindsight"], "verdict": "not_run",
                                            "evidence": QUICK_REASON + "."}
    assert claims["S2-skipped"]["evidence"].startswith("skipped: hindsight-api-slim is not installed (pip install")
    assert "cites 1 test(s) for it, none of which carries claim('S2-unmarked')" in claims["S2-unmarked"]["evidence"]
    assert claims["S2-unchecked"]["evidence"] == "no check yet: docs/design-claims.md lists none for this claim"
    assert ledger.counts() == {"holds": 1, "fails": 1, "partial": 0, "not_run": 4}


def test_the_ledger_records_the_server_and_the_run(quick_run: tuple[Ledger, Said],
                                                    server_url: DatabaseURL) -> None:
    ledger, _ = quick_run
    server = ledger.as_json()["designs"][0]["server"]
    assert server["source"] == "--dsn"
    assert server["url"] == str(server_url)
    assert server["server_version"].startswith("18.")
    assert server["pgvector_version"]
    assert {"max_connections", "shared_buffers", "fsync", "synchronous_commit", "work_mem"} <= set(server["settings"])
    assert ledger.run["quick"] is True
    assert ledger.run["marker"] == "claim and not e2e and not slow"
    assert ledger.run["tests_run"] == 3  # the e2e check is left out, the unmarked test never selected


def test_progress_has_a_stage_for_the_server_each_section_and_the_report(
        quick_run: tuple[Ledger, Said]) -> None:
    _, said = quick_run
    stages = list(dict.fromkeys(stage for stage, _, _ in said))
    assert stages == ["server", "§1 checks", "§2 checks", "report"]
    finals = {stage: (done, total) for stage, done, total in said}
    assert finals == {"server": (1, 1), "§1 checks": (2, 2), "§2 checks": (1, 1), "report": (1, 1)}


def test_verdicts_json_is_valid_against_the_published_schema(quick_run: tuple[Ledger, Said]) -> None:
    ledger, _ = quick_run
    written = json.loads(ledger.paths[0].read_text(encoding="utf-8"))
    assert written == json.loads(json.dumps(ledger.as_json()))
    schema.validate(written)
    broken = json.loads(json.dumps(written))
    broken["designs"][0]["claims"][0]["verdict"] = "maybe"
    with pytest.raises(InvalidInputError, match=r"verdicts.json designs/0/claims/0/verdict: 'maybe' is not one of"):
        schema.validate(broken)
    broken["designs"][0]["claims"][0].update(verdict="holds", check="")
    with pytest.raises(InvalidInputError, match="designs/0/claims/0/check"):
        schema.validate(broken)


def test_the_report_says_what_is_wrong_first(quick_run: tuple[Ledger, Said]) -> None:
    ledger, _ = quick_run
    md = ledger.paths[1].read_text(encoding="utf-8")
    first_screen = md.splitlines()[:12]
    assert "6 claims of the design document: 1 false, 0 partly true, 1 hold, 4 not run (each says why)." in first_screen
    wrong = first_screen.index("## What is wrong with the design, and what to do instead")
    assert "`S1-false-thing`" in first_screen[wrong + 4]
    assert "fixed at head: search_path" in first_screen[wrong + 4]
    section_1 = md[md.index("### §1 Overview"):md.index("### §2")]
    assert section_1.index("S1-false-thing") < section_1.index("S1-one-server")


def test_the_html_report_is_self_contained_with_its_plots(quick_run: tuple[Ledger, Said]) -> None:
    ledger, _ = quick_run
    page = ledger.paths[2].read_text(encoding="utf-8")
    images = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,', page)
    assert images == ["summary", "S1-false-thing"]  # the only claim with two or more numbers
    assert not re.search(r'(?:src|href)="(?!data:)', page)
    assert page.index("What is wrong") < page.index("S1-false-thing") < page.index("Every claim")


def test_a_full_run_includes_the_e2e_checks(tmp_path: Path, server_url: DatabaseURL) -> None:
    source = write_source(tmp_path / "source")
    claims = _claims(verify(server_url, tmp_path / "ledger", source=source))
    assert (claims["S2-needs-hindsight"]["verdict"], claims["S2-needs-hindsight"]["evidence"]) == (
        "holds", "An end-to-end check ran.")


def test_the_real_catalog_fills_the_schema_with_every_id() -> None:
    """Every claim of docs/design-claims.md has its line in verdicts.json, valid against the schema,
    even when no check ran at all."""
    catalog = Catalog.read(locate_source())
    server = {"source": "--dsn", "server_version": "18.6", "pgvector_version": "0.8.6",
              "settings": {"max_connections": "200"}}
    ledger = Ledger((DesignResult("documented", server, judge(catalog, [])),),
                    {"started": "2026-11-26T00:00:00+00:00", "seconds": 0.0, "quick": True}, dict(catalog.sections))
    document = ledger.as_json()
    schema.validate(document)
    assert [c["id"] for c in document["designs"][0]["claims"]] == [c.id for c in catalog.claims]
    assert len(catalog.claims) >= 36
    assert all(c["verdict"] == "not_run" and c["evidence"] for c in document["designs"][0]["claims"])
    assert report.markdown(ledger).count("| `S") == len(catalog.claims)


def test_source_is_found_from_the_editable_install_or_named(tmp_path: Path) -> None:
    assert (locate_source() / "docs" / "design-claims.md").is_file()
    with pytest.raises(ConfigError, match=r"--source: .* holds no docs/design-claims.md .*clone the jedisos-db "
                                          r"repository and run `pip install -e '\.\[verify\]'`"):
        locate_source(tmp_path)


def test_a_malformed_catalog_row_is_named(tmp_path: Path) -> None:
    source = write_source(tmp_path, catalog="## §1 x\n\n| `S1-a` | 1 | claim | where |\n")
    with pytest.raises(InvalidInputError, match=r"docs/design-claims.md line 3: S1-a: expected 5 columns"):
        Catalog.read(source)
