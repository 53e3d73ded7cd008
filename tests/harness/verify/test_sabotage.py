"""No `holds` without a check that could have said `fails` (issue 9): the same three checks, run by
``verify`` on a healthy server and on a sabotaged one, flip from holds to fails.

The sabotage is planted in ``template1`` of a private server, so every database the checks create
inherits it: a table named like one of JediSOS's in ``public`` (``S1-schema-per-owner``: public holds
only extensions; ``S1-no-name-collisions``: no relation name in two schemas) and a stray table in a
pre-made ``langgraph`` schema (``S3-langgraph-tables``: langgraph holds exactly LangGraph's four tables).
The checks are the suite's own (tests/conformance/test_isolation.py), called from claim-marked tests in
a small source tree, so this file decides nothing by a second copy of their logic.
"""

from __future__ import annotations

import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jedisos_db.harness.verify.claims import Catalog, locate_source
from jedisos_db.harness.verify.run import verify
from jedisos_db.ops import hindsight as hindsight_ops
from jedisos_db.ops import provision
from jedisos_db.runtime.db.connect import connect
from jedisos_db.runtime.urls import DatabaseURL

from .sources import write_source

pytestmark = pytest.mark.slow

SABOTAGED = ("S1-schema-per-owner", "S1-no-name-collisions", "S3-langgraph-tables")
PLANT = ("CREATE TABLE public.audit_logs (id integer)",
         "CREATE SCHEMA langgraph", "CREATE TABLE langgraph.planted (id integer)")

CONFTEST = '''
pytest_plugins = ["tests.plugins.server", "tests.plugins.databases", "tests.plugins.tables", "tests.plugins.roles",
                  "tests.plugins.hindsight", "jedisos_db.harness.verify.plugin"]

from tests.conformance.conftest import stack  # noqa: E402,F401  the suite's stack fixture, as the suite builds it
'''

CHECKS = '''
import pytest

from jedisos_db.harness.verify.plugin import ClaimRecorder
from tests.conformance import test_isolation as isolation

# The suite's checks record what they found for their own claims; here only their pass or fail counts.
ASIDE = ClaimRecorder("aside", ("S1-single-instance", "S1-schema-per-owner", "S1-vector-once",
                                "S1-no-name-collisions", "S3-langgraph-tables"))


@pytest.mark.claim("S1-schema-per-owner")
def test_public_holds_extensions_only(stack):
    """public holds the shared extensions and nothing else."""
    isolation.test_public_holds_extensions_only(stack, ASIDE)


@pytest.mark.claim("S1-no-name-collisions")
def test_no_name_collides(stack):
    """No relation, index or sequence name is used in two of the schemas."""
    isolation.test_no_name_collides(stack, ASIDE)


@pytest.mark.claim("S3-langgraph-tables")
def test_langgraph_holds_its_four_tables(stack):
    """langgraph holds LangGraph's four tables, jedisos our models, each owned by its owner's role."""
    isolation.test_each_schema_holds_exactly_its_owners_objects(stack, ASIDE)
'''


def _source(root: Path) -> Path:
    """A source tree with the real catalog's rows for the three claims and the checks above."""
    catalog = Catalog.read(locate_source())
    rows = [c for c in catalog.claims if c.id in SABOTAGED]
    page = "\n".join(f"| `{c.id}` | {c.section} | {c.text} | {c.where} | |" for c in rows)
    header = "## §1 Overview\n\n| id | § | claim | where | found |\n|---|---|---|---|---|\n"
    return write_source(root, catalog=f"{header}{page}\n", conftest=CONFTEST,
                        checks={"test_isolation_checks": textwrap.dedent(CHECKS)})


@pytest.fixture(scope="module")
def sabotaged_server() -> Iterator[DatabaseURL]:
    """A private server whose template1 carries the plants (so every database created on it does)."""
    with tempfile.TemporaryDirectory(prefix="jedisos-sabotage-", ignore_cleanup_errors=True) as base:
        server = provision.EmbeddedServer(Path(base) / "pg", provision.observed_settings())
        url = server.start()
        try:
            with connect(url.with_database("template1")) as conn:
                for statement in PLANT:
                    conn.execute(statement)
            yield url
        finally:
            server.stop()


def _verdicts(url: DatabaseURL, root: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, dict[str, Any]]:
    # Without the Hindsight server: these checks are about the catalog, and it saves a server start per run.
    # (An interpreter that cannot import hindsight_api: the stack then leaves Hindsight out and says so.)
    root.mkdir()
    no_hindsight = root / "python-without-hindsight"
    no_hindsight.write_text("#!/bin/sh\nexit 1\n")
    no_hindsight.chmod(0o755)
    monkeypatch.setenv(hindsight_ops.ENV_PYTHON, str(no_hindsight))
    ledger = verify(url, root / "ledger", source=_source(root / "source"))
    assert ledger.run["tests_run"] == len(SABOTAGED)
    return {c.id: {"verdict": c.verdict, "evidence": c.evidence} for c in ledger.claims}


def test_the_checks_hold_on_a_healthy_server_and_fail_on_a_sabotaged_one(
        server_url: DatabaseURL, sabotaged_server: DatabaseURL, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    healthy = _verdicts(server_url, tmp_path / "healthy", monkeypatch)
    assert {cid: v["verdict"] for cid, v in healthy.items()} == dict.fromkeys(SABOTAGED, "holds"), healthy
    sabotaged = _verdicts(sabotaged_server, tmp_path / "sabotaged", monkeypatch)
    assert {cid: v["verdict"] for cid, v in sabotaged.items()} == dict.fromkeys(SABOTAGED, "fails"), sabotaged
    assert "public holds non-extension objects: [('relation', 'audit_logs'), " in (
        sabotaged["S1-schema-per-owner"]["evidence"])
    assert "names used in more than one schema: {'audit_logs': ['jedisos', 'public']}" in (
        sabotaged["S1-no-name-collisions"]["evidence"])
    assert "planted" in sabotaged["S3-langgraph-tables"]["evidence"]
