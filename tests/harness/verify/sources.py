"""Small source trees for ``jedisos-db verify --source``: a catalog page, a conftest and claim-marked checks.

The runner treats them exactly like the repository's own tree (it runs their ``tests/`` on a real server
and judges the claims of their ``docs/design-claims.md``); the checks use the suite's real fixtures.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

PYPROJECT = '''
[tool.pytest.ini_options]
addopts = ["-ra", "--strict-markers"]
pytest_alembic_tests_path = "tests/.no-auto-collection"
asyncio_mode = "auto"
asyncio_default_fixture_loop_scope = "session"
asyncio_default_test_loop_scope = "session"
markers = ["slow: takes a while", "e2e: needs the real Hindsight server"]
'''

SERVER_CONFTEST = 'pytest_plugins = ["tests.plugins.server", "jedisos_db.harness.verify.plugin"]\n'

CATALOG = '''
# claims

## §1 Overview

| id | § | claim | where it is checked | design vs found |
|---|---|---|---|---|
| `S1-one-server` | 1 | The server is PostgreSQL 18. | `tests/test_checks.py::test_server_is_postgresql_18` | |
| `S1-false-thing` | 1 | A snippet works as written. | `tests/test_checks.py::test_snippet_is_false` | |

## §2 Memory

| id | § | claim | where it is checked | design vs found |
|---|---|---|---|---|
| `S2-needs-hindsight` | 2 | Needs the real server. | `tests/test_checks.py::test_end_to_end` | |
| `S2-skipped` | 2 | Skipped here. | `tests/test_checks.py::test_skips` | |
| `S2-unmarked` | 2 | Cited, not marked. | `tests/test_checks.py::test_unmarked` | |
| `S2-unchecked` | 2 | Nobody checks this. | not yet checked | |
'''

CHECKS = '''
import pytest

from jedisos_db.harness.verify.plugin import ClaimRecorder
from jedisos_db.ops import provision


@pytest.mark.claim("S1-one-server")
def test_server_is_postgresql_18(server_info: provision.ServerInfo, claim: ClaimRecorder) -> None:
    """The server runs PostgreSQL 18."""
    claim.figures(max_connections=server_info.max_connections)
    assert server_info.server_version.startswith("18."), (
        f"expected PostgreSQL 18, the server runs {server_info.server_version}")


@pytest.mark.claim("S1-false-thing", shows="fails")
def test_snippet_is_false(claim: ClaimRecorder) -> None:
    claim.fails("the snippet raised TypeError: unexpected keyword 'schema'", fix="fixed at head: search_path",
                idle_p50_ms=1.5, saturated_p50_ms=3.0, idle_p99_ms=4.0, saturated_p99_ms=9.0)


@pytest.mark.e2e
@pytest.mark.claim("S2-needs-hindsight")
def test_end_to_end() -> None:
    """An end-to-end check ran."""


@pytest.mark.claim("S2-skipped")
def test_skips() -> None:
    pytest.skip("hindsight-api-slim is not installed (pip install -e '.[verify]')")


def test_unmarked() -> None:
    pass
'''


def write_source(root: Path, *, catalog: str = CATALOG, conftest: str = SERVER_CONFTEST,
                 checks: dict[str, str] | None = None) -> Path:
    """A source tree at ``root``: docs/design-claims.md, pyproject.toml, tests/conftest.py and the check modules
    (``tests/<name>.py``; default: ``test_checks.py`` above). ``tests/`` is no package, so its modules never
    shadow the suite's own ``tests`` package."""
    (root / "docs").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "docs" / "design-claims.md").write_text(textwrap.dedent(catalog), encoding="utf-8")
    (root / "pyproject.toml").write_text(PYPROJECT, encoding="utf-8")
    (root / "tests" / "conftest.py").write_text(conftest, encoding="utf-8")
    for name, code in (checks or {"test_checks": CHECKS}).items():
        (root / "tests" / f"{name}.py").write_text(code, encoding="utf-8")
    return root
