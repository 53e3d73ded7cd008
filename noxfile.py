"""Sessions are thin: they install the project with the extra they need and call pytest or the CLI.

    nox -s test     the test suite on the embedded PostgreSQL (what CI runs)
    nox -s lint     ruff, mypy, import-linter contracts, deptry
    nox -s bench    pytest-benchmark suite in bench/ (writers, pgvector, retention); results in .benchmarks/
    nox -s load     Locust in load/, headless and bounded; CSV + HTML in reports/, thresholds set the exit code
    nox -s e2e      the tests marked e2e, against the real Hindsight server (installs the [hindsight] extra)
    nox -s squawk   squawk-cli (PyPI) over the SQL every design's migrations run (jedisos-db designs --sql)
    nox -s verify   `jedisos-db verify` the README way ([verify] extra), then verdicts.json against its schema
"""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_venv = "yes"
nox.options.sessions = ["test", "lint"]



@nox.session
def test(session: nox.Session) -> None:
    """Run the test suite. Extra arguments go to pytest.

    The suite starts an embedded server of its own; `JEDISOS_TEST_DSN=postgresql://admin@host/postgres`
    (or `-- --test-dsn URL`) names an admin server to create its test databases on instead.
    """
    session.install("-e", ".[test]")
    session.run("pytest", "-m", "not e2e", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff, mypy (strict), the import contracts between the rooms, and deptry (imported = declared)."""
    session.install("-e", ".[lint,test]")
    session.run("ruff", "check", "src", "tests", "alembic", "noxfile.py", "bench", "load", "scripts")
    session.run("mypy")
    session.run("lint-imports")
    session.run("deptry", ".")


@nox.session
def bench(session: nox.Session) -> None:
    """The benchmark suite on the embedded server (or an admin server: `JEDISOS_TEST_DSN` / `-- --test-dsn URL`).

    Not part of CI.

    Every run is saved under `.benchmarks/` (pytest-benchmark autosave, JSON with the server settings
    in `machine_info.postgresql`). Compare runs:

        nox -s bench -- --benchmark-compare                 # this run against the last saved one
        nox -s bench -- --benchmark-compare=0001 --benchmark-compare-fail=mean:10%
        .venv/bin/pytest-benchmark compare 0001 0002 --group-by=group   # two saved runs, no server

    Sizes: `-- --bench-rows 5000 --vector-rows 20000,100000 --vector-queries 200`.
    """
    session.install("-e", ".[test,bench]")
    session.run("pytest", "bench", "--benchmark-autosave", "--benchmark-storage=.benchmarks",
                "--benchmark-group-by=group", "--benchmark-columns=min,mean,median,max,stddev,rounds",
                *session.posargs)


@nox.session
def load(session: nox.Session) -> None:
    """Locust against the local PostgreSQL: `jedisos_db.ops.startup.up` first (embedded unless
    `-- --pg-dsn URL`, `JEDISOS_DB_URL` or `POSTGRES_*`), then a headless, bounded run with CSV/HTML in reports/.

    Extra arguments go to locust, e.g. `nox -s load -- -u 20 -t 2m --max-p95-ms 50`.
    The exit code is non-zero when the failure ratio or p95 exceeds its threshold.
    """
    session.install("-e", ".[bench]")
    session.run("python", "-m", "load", *session.posargs)


@nox.session
def e2e(session: nox.Session) -> None:
    """The real Hindsight server (offline: mock LLM, rrf reranker, our TEI endpoint) end to end."""
    session.install("-e", ".[test,hindsight]")
    session.run("pytest", "-m", "e2e", *session.posargs)


@nox.session
def squawk(session: nox.Session) -> None:
    """Are the designs' migrations safe on a live, filled database? squawk-cli lints the statements each
    design's migrations ran on a fresh database (embedded server, or `-- --dsn URL`): lock-taking DDL,
    missing CONCURRENTLY, table rewrites. Findings are printed, not fatal: the documented design has them.

    squawk-cli comes from PyPI (the [squawk] extra) into this session's environment.
    """
    session.install("-e", ".[squawk]")
    tmp = Path(session.create_tmp())
    out = tmp / "design-sql"
    session.run("jedisos-db", "designs", "--sql", str(out), *session.posargs)
    for path in sorted(out.glob("*.sql")):
        session.log(f"squawk {path.name}")
        session.run("squawk", str(path), success_codes=[0, 1])


@nox.session
def verify(session: nox.Session) -> None:
    """`jedisos-db verify` into reports/verify, then verdicts.json checked against schemas/verdicts.schema.json.

    Installs the [verify] extra like the README's first command. Extra arguments go to verify, e.g.
    `nox -s verify -- --quick` (what CI runs) or `-- --dsn URL --fail-on fails`.
    """
    session.install("-e", ".[verify]")
    out = "reports/verify"
    session.run("jedisos-db", "verify", "--out", out, *session.posargs)
    session.run("python", "-m", "jedisos_db.harness.verify.schema", f"{out}/verdicts.json")
