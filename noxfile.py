"""Sessions are thin: they install the project with the extra they need and call pytest or the CLI.

    nox -s test     the test suite on the embedded PostgreSQL (what CI runs)
    nox -s lint     ruff and mypy on src/
    nox -s e2e      the tests marked e2e, against the real Hindsight server (installs the [hindsight] extra)
"""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_venv = "yes"
nox.options.sessions = ["test", "lint"]


@nox.session
def test(session: nox.Session) -> None:
    """Run the test suite. Extra arguments go to pytest, e.g. `nox -s test -- --dsn postgresql://...`."""
    session.install("-e", ".[test]")
    session.run("pytest", "-m", "not e2e", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff and mypy, clean on src/."""
    session.install("-e", ".[lint,test]")
    session.run("ruff", "check", "src", "tests", "alembic", "noxfile.py")
    session.run("mypy")


@nox.session
def e2e(session: nox.Session) -> None:
    """The real Hindsight server (offline: mock LLM, rrf reranker, our TEI endpoint) end to end."""
    session.install("-e", ".[test,hindsight]")
    session.run("pytest", "-m", "e2e", *session.posargs)
