"""``verify --design A --design B``: each design judged on its own template database and measured by every
registered measurement, side by side in verdicts.json, report.md, report.html and on the terminal.

The measurements registered here are real: they build the design in a fresh database of the run's server and
query it (no hard-coded result), so a column that differs between designs is a difference of the designs.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from jedisos_db.cli.main import app
from jedisos_db.harness import designs
from jedisos_db.harness.designs import Design
from jedisos_db.harness.measure import Context, Measured, registry
from jedisos_db.harness.verify import schema
from jedisos_db.harness.verify.run import Ledger, builds_template, verify
from jedisos_db.ops import provision
from jedisos_db.runtime.db.connect import connect
from jedisos_db.runtime.errors import InvalidInputError
from jedisos_db.runtime.owners import JEDISOS_SCHEMA
from jedisos_db.runtime.urls import DatabaseURL

from .sources import write_source

Said = list[tuple[str, int, int]]
DESIGNS = ("documented", "partitioned")
BASELINE = "partitioned"

CONFTEST = ('pytest_plugins = ["tests.plugins.server", "tests.plugins.databases", '
            '"jedisos_db.harness.verify.plugin"]\n')

CATALOG = '''
# claims

## §1 Overview

| id | § | claim | where it is checked | design vs found |
|---|---|---|---|---|
| `S1-one-server` | 1 | The server is PostgreSQL 18. | `tests/test_checks.py::test_server_is_postgresql_18` | |

## §4 Schema

| id | § | claim | where it is checked | design vs found |
|---|---|---|---|---|
| `S4-one-audit-table` | 4 | audit_logs is one plain table. | `tests/test_checks.py::test_audit_plain` | |
'''

CHECKS = '''
import pytest

from jedisos_db.harness.verify.plugin import ClaimRecorder
from jedisos_db.ops import provision
from jedisos_db.runtime.db.connect import connect
from jedisos_db.runtime.errors import InvalidInputError


@pytest.mark.claim("S1-one-server")
def test_server_is_postgresql_18(server_info: provision.ServerInfo) -> None:
    """The server runs PostgreSQL 18."""
    assert server_info.server_version.startswith("18.")


@pytest.mark.claim("S4-one-audit-table")
def test_audit_plain(migrated_db, claim: ClaimRecorder) -> None:
    """audit_logs is one plain table."""
    with connect(migrated_db) as conn:
        kind = conn.execute(
            "SELECT relkind::text FROM pg_class WHERE oid = 'jedisos.audit_logs'::regclass").fetchone()[0]
    claim.figures(relkind=kind)
    assert kind == "r", f"audit_logs is partitioned (relkind {kind!r})"
'''


def _in_built(design: Design, ctx: Context, purpose: str, sql: str, *params: object) -> int:
    """``sql``'s one number in a fresh database ``design`` built on the run's server."""
    with provision.scratch_database(ctx.server, design.scratch_name(purpose)) as url:
        design.build(url)
        with connect(url) as conn:
            row = conn.execute(sql, list(params)).fetchone()
    assert row is not None
    return int(row[0])


def count_tables(design: Design, ctx: Context) -> Measured:
    """The design's jedisos tables, counted in a fresh database it built."""
    tables = _in_built(design, ctx, "tables", "SELECT count(*) FROM pg_tables WHERE schemaname = %s", JEDISOS_SCHEMA)
    if ctx.progress is not None:
        ctx.progress(1, 1)
    return Measured({"jedisos_tables": tables, "quick": ctx.quick}, {"tables_built": [(0.0, 0.0), (1.0, tables)]},
                    (f"{design.name} builds {tables} tables.",))


def count_keyed(design: Design, ctx: Context) -> Measured:
    """Keyed audit rows of a fresh database: raises where the design has no idempotency key."""
    return Measured({"keyed_rows": _in_built(design, ctx, "keyed", "SELECT count(idempotency_key) FROM "
                                                                   "jedisos.audit_logs")})


def database_size(design: Design, ctx: Context) -> Measured:
    """The size of a fresh database the design built, under the figure name the baseline table compares."""
    return Measured({"total_bytes_per_user_month": _in_built(design, ctx, "size",
                                                             "SELECT pg_database_size(current_database())")})


def _only(monkeypatch: pytest.MonkeyPatch, **measurements: Any) -> None:
    """The registry holds exactly ``measurements`` for this test (the real ones take minutes)."""
    for name in list(registry.MEASUREMENTS):
        monkeypatch.delitem(registry.MEASUREMENTS, name)
    for name, measure in measurements.items():
        monkeypatch.setitem(registry.MEASUREMENTS, name, measure)


@pytest.fixture(scope="module")
def compared(tmp_path_factory: pytest.TempPathFactory, server_url: DatabaseURL) -> tuple[Ledger, Said]:
    source = write_source(tmp_path_factory.mktemp("source"), catalog=CATALOG, conftest=CONFTEST,
                          checks={"test_checks": CHECKS})
    said: Said = []
    with pytest.MonkeyPatch.context() as monkeypatch:
        _only(monkeypatch, tables=count_tables, keyed=count_keyed, volume=database_size)
        ledger = verify(server_url, tmp_path_factory.mktemp("ledger"), quick=True, source=source,
                        progress=lambda *a: said.append(a), designs=DESIGNS, baseline=BASELINE)
    return ledger, said


def _design(ledger: Ledger, name: str) -> dict[str, Any]:
    return next(d for d in ledger.as_json()["designs"] if d["name"] == name)


def test_each_design_is_judged_on_its_template_database(compared: tuple[Ledger, Said]) -> None:
    """partitioned's checks run on a template it built; documented's on head's (see builds_template)."""
    ledger, _ = compared
    assert [d.name for d in ledger.designs] == list(DESIGNS)
    verdicts = {d.name: {c.id: c.verdict for c in d.claims} for d in ledger.designs}
    assert verdicts == {"documented": {"S1-one-server": "holds", "S4-one-audit-table": "holds"},
                        "partitioned": {"S1-one-server": "holds", "S4-one-audit-table": "fails"}}
    documented, partitioned = ledger.designs
    assert {c.id: c for c in partitioned.claims}["S4-one-audit-table"].evidence.startswith(
        "audit_logs is partitioned (relkind 'p')")
    assert (documented.checks["template"], partitioned.checks["template"]) == ("head", "design")
    for d in ledger.designs:
        assert d.checks["tests_run"] == 2
        assert Path(d.checks["log"]).name == f"pytest-{d.name}.log"
    assert f"jedisos-db design: {partitioned.file}" in Path(partitioned.checks["log"]).read_text()
    assert "jedisos-db design: head (recommended)" in Path(documented.checks["log"]).read_text()


def test_every_measurement_runs_per_design_and_one_that_raises_is_not_measured_there_only(
        compared: tuple[Ledger, Said], migrated_db: DatabaseURL) -> None:
    ledger, _ = compared
    with connect(migrated_db) as conn:  # the suite's head database, built by migrations.upgrade
        head_tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'jedisos'").fetchone()
    documented, partitioned = (_design(ledger, n)["measurements"] for n in DESIGNS)
    assert head_tables is not None
    built = partitioned["tables"]["figures"]["jedisos_tables"]
    assert built > head_tables[0]  # head's tables, audit and cost as parents, plus their months
    assert partitioned["tables"]["figures"]["quick"] is True
    assert 0 < documented["tables"]["figures"]["jedisos_tables"] < head_tables[0]
    assert partitioned["tables"]["series"] == {"tables_built": [[0.0, 0.0], [1.0, float(built)]]}
    assert partitioned["keyed"]["figures"] == {"keyed_rows": 0}
    assert "not_measured" not in partitioned["keyed"]
    assert documented["keyed"]["figures"] == {}
    assert documented["keyed"]["not_measured"] == (
        'not measured: UndefinedColumn: column "idempotency_key" does not exist')
    assert documented["tables"]["notes"][0].startswith("documented builds ")


def test_verdicts_json_is_valid_and_names_each_design(compared: tuple[Ledger, Said]) -> None:
    ledger, _ = compared
    written = json.loads(ledger.paths[0].read_text(encoding="utf-8"))
    assert written == json.loads(json.dumps(ledger.as_json()))
    schema.validate(written)
    for d in written["designs"]:
        assert d["description"]
        assert Path(d["file"]).name == f"{d['name']}.toml"
        assert d["server"]["settings"]["max_connections"] == "200"
        assert "note" not in d["server"]  # both designs say 200, like the server
    broken = json.loads(json.dumps(written))
    broken["designs"][0]["measurements"]["keyed"]["not_measured"] = "it broke"
    with pytest.raises(InvalidInputError, match=r"designs/0/measurements/keyed/not_measured"):
        schema.validate(broken)
    broken["designs"][0]["measurements"]["keyed"] = {"figures": {}}
    with pytest.raises(InvalidInputError, match=r"designs/0/measurements/keyed"):
        schema.validate(broken)


def test_the_report_puts_the_designs_side_by_side(compared: tuple[Ledger, Said]) -> None:
    ledger, _ = compared
    md = ledger.paths[1].read_text(encoding="utf-8")
    lines = md.splitlines()
    first_screen = lines[:20]
    assert "| design | false | partly true | holds | not run | measured | server | what it is |" in first_screen
    counts = {line.split(" | ")[0].strip("| "): line.split(" | ")[1:6] for line in first_screen
              if line.startswith(("| documented |", "| partitioned |"))}
    assert counts == {"documented": ["0", "0", "2", "0", "2 of 3"], "partitioned": ["1", "0", "1", "0", "3 of 3"]}
    wrong = lines.index("## What is wrong with each design, and what to do instead")
    assert lines[wrong + 2] == "| claim | documented | partitioned | what this run found | what to do instead |"
    assert lines[wrong + 4].startswith("| `S4-one-audit-table` audit_logs is one plain table. | holds | FALSE | "
                                       "documented: audit_logs is one plain table. "
                                       "partitioned: audit_logs is partitioned (relkind 'p').")
    tables = lines.index("### tables")
    assert lines[tables + 2] == "| figure | documented | partitioned |"
    row = next(line for line in lines[tables:] if line.startswith("| jedisos_tables |"))
    figures = {d.name: d.measurements["tables"].figures["jedisos_tables"] for d in ledger.designs}
    assert row == f"| jedisos_tables | {figures['documented']} | {figures['partitioned']} |"
    keyed = md[md.index("### keyed"):md.index("## Every claim")]
    assert "| keyed_rows | not measured | 0 |" in keyed
    assert '- documented: not measured: UndefinedColumn: column "idempotency_key" does not exist' in keyed
    claims = md[md.index("## Every claim"):]
    assert claims.index("### Verdicts that differ between designs") < claims.index("S4-one-audit-table") \
        < claims.index("### §1 Overview") < claims.index("S1-one-server")
    assert "| id | claim | documented | partitioned | evidence |" in claims


def test_each_design_is_set_against_the_baseline_the_run_names(compared: tuple[Ledger, Said]) -> None:
    ledger, _ = compared
    assert ledger.run["baseline"] == BASELINE
    size = {d.name: int(d.measurements["volume"].figures["total_bytes_per_user_month"]) for d in ledger.designs}
    lines = ledger.paths[1].read_text(encoding="utf-8").splitlines()
    top = lines.index("## Each design against the baseline")
    assert top < lines.index("## What is wrong with each design, and what to do instead")
    assert "| against the baseline | documented | partitioned |" in lines[top:top + 5]
    row = next(line for line in lines[top:] if "(volume total_bytes_per_user_month)" in line)
    assert row.endswith(f" | {size['documented'] / size['partitioned']:.3g}× | baseline |")
    removal = next(line for line in lines[top:] if "(retention removal_s)" in line)
    assert removal.endswith(" | — | baseline |")  # not measured in this run: no ratio is made up


def test_a_baseline_that_is_not_compared_is_refused_before_anything_runs(tmp_path: Path) -> None:
    code, out = _cli("verify", "--quick", "--design", "documented", "--design", "partitioned",
                     "--baseline", "recomended", "--out", str(tmp_path / "out"))
    assert code == 1
    assert out.splitlines() == ["error: --baseline: must name one of the designs compared (documented, partitioned), "
                                "got 'recomended'"]
    assert not (tmp_path / "out").exists()


def test_the_html_report_plots_each_measurement_per_design(compared: tuple[Ledger, Said]) -> None:
    ledger, _ = compared
    page = ledger.paths[2].read_text(encoding="utf-8")
    images = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,', page)
    # a line chart of the series; bars of the numeric figures (keyed: partitioned's only, documented raised)
    assert images == ["tables:series", "tables:figures", "keyed:figures", "volume:figures"]
    assert not re.search(r'(?:src|href)="(?!data:)', page)
    assert '<span class="fails">FALSE</span>' in page


def test_progress_names_each_design_its_checks_and_measurements(compared: tuple[Ledger, Said]) -> None:
    _, said = compared
    stages = list(dict.fromkeys(stage for stage, _, _ in said))
    assert stages == [f"{d}: {s}" for d in DESIGNS
                      for s in ("server", "§1 checks", "§4 checks", "measure tables", "measure keyed",
                                "measure volume")] + ["report"]


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env={"JEDISOS_DB_URL": ""})
    return result.exit_code, result.output


def test_a_user_written_design_file_runs_on_a_server_of_its_size(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """`recommended` with max_connections = 100, no code changed: its own embedded server runs 100."""
    design = tmp_path / "small.toml"
    design.write_text('name = "small"\ndescription = "recommended on a server of 100 connections."\n'
                      'extends = "recommended"\n\n[server]\nmax_connections = 100\n')
    source = write_source(tmp_path / "source", catalog=CATALOG, conftest=CONFTEST, checks={"test_checks": CHECKS})
    _only(monkeypatch, tables=count_tables)
    code, out = _cli("verify", "--quick", "--design", str(design), "--out", str(tmp_path / "out"),
                     "--source", str(source))
    assert code == 0, out
    written = json.loads((tmp_path / "out" / "verdicts.json").read_text())
    schema.validate(written)
    small, = written["designs"]
    assert (small["name"], small["file"]) == ("small", str(design))
    assert small["server"]["source"] == "embedded, private to this run"
    assert small["server"]["settings"]["max_connections"] == "100"
    assert [c["verdict"] for c in small["claims"]] == ["holds", "holds"]
    assert small["measurements"]["tables"]["figures"]["jedisos_tables"] > 0
    summary = out[out.index("Designs compared"):]
    counts = r"small\s+│\s+0\s+│\s+0\s+│\s+2\s+│\s+0\s+│\s+1 of 1\s+│"
    assert re.search(counts + r"\s+PostgreSQL 18\.\d+, max_connections 100", summary), out
    assert "jedisos_tables" in out[out.index("tables"):]


def test_a_design_file_with_a_typo_is_one_line_naming_the_key(tmp_path: Path) -> None:
    design = tmp_path / "typo.toml"
    design.write_text('name = "typo"\ndescription = "a typo."\nextends = "recommended"\n\n'
                      "[server]\nmax_conections = 100\n")
    code, out = _cli("verify", "--quick", "--design", "documented", "--design", str(design),
                     "--out", str(tmp_path / "out"))
    assert code == 1
    assert out.splitlines() == [f"error: server.max_conections: unknown key (did you mean 'max_connections'?) "
                                f"in {design}"]
    assert not (tmp_path / "out").exists()


def test_a_dsn_server_of_another_size_is_named_in_the_designs_server_note(
        tmp_path: Path, server_url: DatabaseURL, server_info: provision.ServerInfo,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """On --dsn the server cannot take the design's size: the ledger says so instead of measuring as if it had."""
    design = tmp_path / "small.toml"
    size = server_info.max_connections - 50
    design.write_text(f'name = "small"\ndescription = "fewer connections."\nextends = "recommended"\n\n'
                      f"[server]\nmax_connections = {size}\n")
    source = write_source(tmp_path / "source", catalog=CATALOG, conftest=CONFTEST, checks={"test_checks": CHECKS})
    _only(monkeypatch)
    ledger = verify(server_url, tmp_path / "out", quick=True, source=source, designs=[design])
    small, = ledger.designs
    assert small.server["settings"]["max_connections"] == str(server_info.max_connections)
    assert small.server["note"] == (
        f"the server runs max_connections={server_info.max_connections}, the design says {size}: its connection "
        f"budget is reported against the design's {size} (run without --dsn to start a server of the design's size)")
    assert small.measurements == {}
    schema.validate(ledger.as_json())
    assert f"max_connections {server_info.max_connections} (the server runs" in ledger.paths[1].read_text()


@pytest.mark.parametrize(("name", "own_template"), [("documented", False), ("recommended", True),
                                                    ("partitioned", True), ("openai-1536", True)])
def test_a_design_below_head_is_checked_on_heads_template(name: str, own_template: bool) -> None:
    """documented stops at 006: head's repositories cannot run on it, and the checks build its DDL themselves."""
    assert builds_template(designs.load(name)) is own_template


def test_a_user_design_below_head_is_checked_on_heads_template(tmp_path: Path) -> None:
    path = tmp_path / "old.toml"
    path.write_text('name = "old"\nextends = "recommended"\ndescription = "head as of 008"\n'
                    '[schema]\nrevision = "008"\n')
    assert builds_template(designs.load(path)) is False
