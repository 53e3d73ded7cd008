"""``verify --design split-hindsight``: Hindsight on a real second server (``[hindsight] placement = "own-server"``).

On the embedded default the run starts a second embedded server of the design's ``[hindsight]
max_connections``; the checks put Hindsight's databases there (the suite's ``--test-hindsight-dsn``), the
``budget`` measurement counts both servers as they report themselves, and both servers are gone afterwards.
On a ``--dsn`` run none is started and the ledger says the budget is computed, not measured.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from jedisos_db.cli.main import app
from jedisos_db.harness.measure import budget
from jedisos_db.harness.verify import schema
from jedisos_db.harness.verify.run import NO_HINDSIGHT_SERVER, Ledger, verify
from jedisos_db.runtime import urls
from jedisos_db.runtime.db.connect import connect
from jedisos_db.runtime.errors import ConfigError, DatabaseUnavailableError
from jedisos_db.runtime.urls import DatabaseURL

from .sources import write_source
from .test_compare import _only

DESIGN = "split-hindsight"
CONFTEST = ('pytest_plugins = ["tests.plugins.server", "tests.plugins.databases", "tests.plugins.roles", '
            '"tests.plugins.hindsight", "jedisos_db.harness.verify.plugin"]\n')

CATALOG = '''
# claims

## §1 Overview

| id | § | claim | where it is checked | design vs found |
|---|---|---|---|---|
| `S1-where-hindsight-is` | 1 | Hindsight's database is where the design says. | `tests/test_checks.py::test_home` | |
| `S1-hindsight-tables` | 1 | Hindsight's migrations fill only its database. | `tests/test_checks.py::test_tables` | |
'''

CHECKS = '''
import pytest

from jedisos_db.harness.verify.plugin import ClaimRecorder
from jedisos_db.ops import hindsight as hm
from jedisos_db.runtime.db.connect import connect


def _one(url, query):
    with connect(url) as conn:
        return conn.execute(query).fetchone()[0]


@pytest.mark.claim("S1-where-hindsight-is")
def test_home(database_factory, hindsight_home, claim: ClaimRecorder) -> None:
    main = database_factory("main")
    home = hindsight_home(main)
    system = "SELECT system_identifier::text FROM pg_control_system()"  # one per initdb'd cluster
    claim.figures(main_system=_one(main, system), hindsight_system=_one(home, system),
                  main_socket=_one(main, "SHOW unix_socket_directories"),
                  hindsight_socket=_one(home, "SHOW unix_socket_directories"),
                  main_data=str(_one(main, "SHOW data_directory")),
                  hindsight_data=str(_one(home, "SHOW data_directory")),
                  hindsight_max_connections=int(_one(home, "SHOW max_connections")),
                  hindsight_vector=bool(_one(home, "SELECT count(*) FROM pg_extension WHERE extname = 'vector'")))
    claim.holds(f"Hindsight's database {home.database}")


@pytest.mark.claim("S1-hindsight-tables")
def test_tables(database_factory, hindsight_home, hindsight_installed, claim: ClaimRecorder) -> None:
    main = database_factory("tables", bootstrap=False)
    home = hindsight_home(main)
    hm.run_migrations(home)
    count = "SELECT count(*) FROM pg_tables WHERE schemaname = 'hindsight'"
    claim.figures(main_tables=int(_one(main, count)), hindsight_tables=int(_one(home, count)))
    claim.holds("migrated")
'''


def _figures(ledger: Ledger, claim_id: str) -> dict[str, Any]:
    design, = ledger.designs
    return dict(next(c for c in design.claims if c.id == claim_id).figures)


def _gone(url: str) -> bool:
    try:
        connect(urls.parse(url, field="test")).close()
    except DatabaseUnavailableError:
        return True
    return False


@pytest.fixture(scope="module")
def split_run(tmp_path_factory: pytest.TempPathFactory) -> Ledger:
    """One verify run of split-hindsight on the embedded default, with the real budget measurement only."""
    source = write_source(tmp_path_factory.mktemp("source"), catalog=CATALOG, conftest=CONFTEST,
                          checks={"test_checks": CHECKS})
    with pytest.MonkeyPatch.context() as monkeypatch:
        _only(monkeypatch, budget=budget.measure)
        return verify(None, tmp_path_factory.mktemp("ledger"), quick=True, source=source, designs=[DESIGN])


def test_hindsight_gets_a_second_server_of_the_designs_size(split_run: Ledger) -> None:
    design, = split_run.designs
    own = design.server["hindsight"]
    assert own["source"] == "embedded, Hindsight's own, private to this run"
    assert own["settings"]["max_connections"] == "250"
    assert design.server["settings"]["max_connections"] == "200"
    seen = _figures(split_run, "S1-where-hindsight-is")
    # Embedded servers listen on a unix socket only, each in its own directory (both on port 5432 there).
    assert seen["main_system"] != seen["hindsight_system"]
    assert seen["main_socket"] != seen["hindsight_socket"]
    assert seen["main_data"] != seen["hindsight_data"]
    assert (seen["hindsight_max_connections"], seen["hindsight_vector"]) == (250, True)
    schema.validate(split_run.as_json())
    assert "Hindsight's own server: max_connections 250" in split_run.paths[1].read_text(encoding="utf-8")


def test_both_servers_are_gone_afterwards(split_run: Ledger) -> None:
    design, = split_run.designs
    seen = _figures(split_run, "S1-where-hindsight-is")
    assert not Path(str(seen["main_data"])).exists()
    assert not Path(str(seen["hindsight_data"])).exists()
    assert _gone(design.server["url"])
    assert _gone(design.server["hindsight"]["url"])


def test_the_budget_counts_what_each_server_reports(split_run: Ledger) -> None:
    design, = split_run.designs
    figures = design.measurements["budget"].figures
    # Hindsight's 100 (no read pool) against 250 - 3 reserved; LangGraph 4 x 4 and JediSOS (5 + 10) x 4 against 197.
    assert (figures["servers_measured"], figures["hindsight_available_connections"],
            figures["hindsight_margin_connections"]) == (2, 247, 147)
    assert (figures["main_available_connections"], figures["main_demand_connections"]) == (197, 76)
    assert any("Both servers ran" in n for n in design.measurements["budget"].notes)


@pytest.mark.e2e  # Hindsight's migrations: the e2e session has the [hindsight] extra
def test_hindsights_tables_exist_only_on_its_own_server(split_run: Ledger, hindsight_installed: None) -> None:
    design, = split_run.designs
    verdict = next(c for c in design.claims if c.id == "S1-hindsight-tables")
    assert verdict.verdict == "holds", verdict.evidence
    seen = _figures(split_run, "S1-hindsight-tables")
    assert seen["main_tables"] == 0
    assert int(seen["hindsight_tables"]) > 10


def test_on_a_dsn_server_none_is_started_and_the_ledger_says_the_budget_is_computed(
        tmp_path: Path, server_url: DatabaseURL, monkeypatch: pytest.MonkeyPatch) -> None:
    source = write_source(tmp_path / "source", catalog=CATALOG, conftest=CONFTEST, checks={"test_checks": CHECKS})
    _only(monkeypatch, budget=budget.measure)
    ledger = verify(server_url, tmp_path / "out", quick=True, source=source, designs=[DESIGN])
    design, = ledger.designs
    assert design.server["hindsight"] == {"note": NO_HINDSIGHT_SERVER}
    seen = _figures(ledger, "S1-where-hindsight-is")
    assert seen["main_system"] == seen["hindsight_system"]  # Hindsight's databases stayed on the --dsn server
    figures = design.measurements["budget"].figures
    assert (figures["servers_measured"], figures["hindsight_available_connections"]) == (0, 247)
    assert any("computed from the design file, not measured" in n for n in design.measurements["budget"].notes)
    schema.validate(ledger.as_json())


def test_a_given_hindsight_server_is_used_and_left_running(tmp_path: Path, server_url: DatabaseURL,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """``--hindsight-dsn`` (here the session's server): Hindsight's databases go there, its size is measured."""
    source = write_source(tmp_path / "source", catalog=CATALOG, conftest=CONFTEST, checks={"test_checks": CHECKS})
    _only(monkeypatch, budget=budget.measure)
    ledger = verify(server_url, tmp_path / "out", quick=True, source=source, designs=[DESIGN],
                    hindsight_target=server_url)
    design, = ledger.designs
    assert design.server["hindsight"]["source"] == "--hindsight-dsn"
    assert design.measurements["budget"].figures["servers_measured"] == 2
    connect(server_url).close()  # still running: verify never stops a server it was given
    with pytest.raises(ConfigError, match=r"^--hindsight-dsn: "):
        verify(server_url, tmp_path / "out2", quick=True, source=source, designs=[DESIGN],
               hindsight_target="mysql://nowhere")


def test_a_bad_hindsight_server_size_is_one_line_naming_the_key(tmp_path: Path) -> None:
    design = tmp_path / "tiny.toml"
    design.write_text('name = "tiny"\ndescription = "x"\nextends = "split-hindsight"\n\n'
                      "[hindsight]\nmax_connections = 2\n")
    result = CliRunner().invoke(app, ["verify", "--quick", "--design", str(design), "--out", str(tmp_path / "out")],
                                env={"JEDISOS_DB_URL": ""})
    assert result.exit_code == 1
    line, = result.output.splitlines()
    assert re.fullmatch(rf"error: hindsight\.max_connections: 2 is less than the minimum of 5 in {design}", line)
    assert not (tmp_path / "out").exists()
