"""The `jedisos-db` CLI: the commands of the README, and errors as one line with a non-zero exit."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from typer.testing import CliRunner

from jedisos_db.cli.main import app
from jedisos_db.harness.verify.plugin import ClaimRecorder
from jedisos_db.ops import provision
from jedisos_db.runtime.db import migrations
from jedisos_db.runtime.db.connect import connect
from jedisos_db.runtime.errors import DatabaseUnavailableError
from jedisos_db.runtime.urls import DatabaseURL
from tests.plugins.databases import DatabaseFactory, postgres_env

runner = CliRunner()


def _run(*args: str | DatabaseURL, env: dict[str, str | None] | None = None) -> tuple[int, str]:
    """The CLI in-process (no command line to leak into); a DatabaseURL argument goes in as its libpq text."""
    argv = [a.libpq() if isinstance(a, DatabaseURL) else a for a in args]
    result = runner.invoke(app, argv, env=env if env is not None else {"JEDISOS_DB_URL": ""})
    return result.exit_code, result.output


@pytest.mark.claim("S6-upgrade-on-start")
def test_up_then_current_reports_head_with_server_and_pgvector_versions(
    database_factory: DatabaseFactory, server_info: provision.ServerInfo
) -> None:
    url = database_factory("cli_up", bootstrap=False)
    code, out = _run("up", "--dsn", url.libpq())
    assert code == 0, out
    assert f"revision   {migrations.head()}" in out
    code, again = _run("up", "--dsn", url.libpq())
    assert code == 0, again
    assert "already at head, nothing changed" in again
    code, current = _run("db", "current", "--dsn", url.libpq())
    assert code == 0, current
    assert current.startswith(f"{migrations.head()} (head)")
    assert f"PostgreSQL {server_info.server_version}" in current
    assert f"pgvector {provision.server_info(url).pgvector_version}" in current


@pytest.mark.claim("S1-single-instance")
def test_embedded_server_reports_postgresql_18_6_and_pgvector_0_8_6(migrated_db: DatabaseURL,
                                                                      server_is_private_embedded: bool,
                                                                      claim: ClaimRecorder) -> None:
    """The server the checks run on is PostgreSQL 18 with pgvector (§1); the embedded one, the session's own
    or the one `jedisos-db verify` starts (``--test-dsn-private``), exactly the packaged 18.6 + 0.8.6."""
    info = provision.server_info(migrated_db)
    claim.figures(server_version=info.server_version, pgvector_version=str(info.pgvector_version),
                  embedded=server_is_private_embedded)
    assert info.server_version.split(".")[0] == "18", f"expected PostgreSQL 18, the server runs {info.server_version}"
    assert info.pgvector_version is not None, "pgvector is not installed in a migrated database"
    if server_is_private_embedded:
        assert info.server_version == "18.6", f"expected PostgreSQL 18.6, the server runs {info.server_version}"
        assert info.pgvector_version == "0.8.6", f"expected pgvector 0.8.6, the server has {info.pgvector_version}"
    claim.holds(f"the server runs PostgreSQL {info.server_version} with pgvector {info.pgvector_version}")


@pytest.mark.claim("S6-upgrade-on-start")
def test_upgrade_downgrade_history(database_factory: DatabaseFactory) -> None:
    url = database_factory("cli_updown")
    assert _run("db", "upgrade", "003", "--dsn", url.libpq())[0] == 0
    assert migrations.current(url) == "003"
    code, out = _run("db", "downgrade", "001", "--dsn", url.libpq())
    assert code == 0, out
    assert "jedisos schema at 001" in out
    code, out = _run("db", "history")
    assert code == 0
    for rev in migrations.history():
        assert rev.revision in out


@pytest.mark.parametrize(
    ("dsn", "expected"),
    [
        ("not a url", "--dsn: is not a database URL"),
        ("mysql://u@h/db", "--dsn: scheme 'mysql' is not PostgreSQL"),
        ("postgresql://u@localhost", "--dsn: names no database"),
        ("postgresql://u@127.0.0.1:1/db", "cannot connect to postgresql://u@127.0.0.1:1/db"),
    ],
)
def test_errors_are_one_line_and_exit_non_zero(dsn: str, expected: str) -> None:
    code, out = _run("db", "current", "--dsn", dsn)
    assert code == 1
    assert "Traceback" not in out
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1, out
    assert lines[0].startswith("error: ")
    assert expected in lines[0]


def test_missing_extension_is_one_clear_line(server_url: DatabaseURL, database_factory: DatabaseFactory) -> None:
    """A role that may not create `vector` gets told who must, not a traceback."""
    role = f"jedisos_test_nosuper_{secrets.token_hex(3)}"
    with connect(server_url) as conn:
        conn.execute(f'CREATE ROLE "{role}" LOGIN')  # trust auth on the embedded server
    url = database_factory("cli_noext", bootstrap=False)
    name = url.database
    try:
        with connect(server_url) as conn:
            conn.execute(f'ALTER DATABASE "{name}" OWNER TO "{role}"')
        as_role = url.with_user(role)
        try:
            connect(as_role).close()
        except DatabaseUnavailableError as exc:
            pytest.skip(f"cannot log in as a fresh role on this server ({exc})")
        code, out = _run("up", "--dsn", as_role)
        assert code == 1
        assert out.count("\n") == 1, out
        assert "extension 'vector' is not installed and this role may not create it" in out
    finally:
        with connect(server_url) as conn:
            conn.execute(f'ALTER DATABASE "{name}" OWNER TO CURRENT_USER')
            conn.execute(f'DROP OWNED BY "{role}" CASCADE')
            conn.execute(f'DROP ROLE "{role}"')


def test_postgres_parts_alone_name_the_target(database_factory: DatabaseFactory) -> None:
    """design §8: with only POSTGRES_* set (no --dsn, no JEDISOS_DB_URL) every command finds the database."""
    url = database_factory("cli_pg_parts")
    env = postgres_env(url)
    code, out = _run("db", "upgrade", "003", env=env)
    assert code == 0, out
    assert migrations.current(url) == "003"
    code, out = _run("db", "current", env=env)
    assert code == 0, out
    assert out.startswith("003 (head is ")
    assert f"/{url.database}" in out


def test_a_half_set_postgres_composition_names_the_missing_variable() -> None:
    code, out = _run("db", "current", env={"JEDISOS_DB_URL": None, "POSTGRES_USER": "u", "POSTGRES_DB": "d",
                                           "POSTGRES_HOST": None})
    assert code == 1
    assert "POSTGRES_HOST: is not set" in out


def test_down_without_a_running_server_says_so(tmp_path: object) -> None:
    code, out = _run("down", "--data-dir", str(tmp_path))
    assert code == 0
    assert "no embedded server running" in out


def test_messages_keep_square_brackets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Package extras like `jedisos-db[docker]` in a message survive (rich must not eat them as markup)."""
    from jedisos_db.runtime.errors import DockerUnavailableError

    def fail(*_: object, **__: object) -> str:
        raise DockerUnavailableError("testcontainers is not installed: pip install 'jedisos-db[docker]'")

    monkeypatch.setattr(provision, "resolve_target", fail)  # the module the CLI calls it through
    code, out = _run("db", "current")
    assert code == 1
    assert "pip install 'jedisos-db[docker]'" in out


def test_a_missing_extra_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    """A command whose optional dependency is absent says which extra brings it."""
    import typer

    from jedisos_db.cli.main import one_line_errors

    @one_line_errors
    def needs_numpy() -> None:
        raise ModuleNotFoundError("No module named 'numpy'", name="numpy")

    with pytest.raises(typer.Exit) as info:
        needs_numpy()
    assert info.value.exit_code == 1
    assert "numpy is not installed; this command needs it: pip install 'jedisos-db[bench]'" in capsys.readouterr().err


def test_a_command_exit_code_is_not_reported_as_an_error(database_factory: DatabaseFactory) -> None:
    """`budget` exits 1 when the design's pools do not fit (Hindsight given a read database: 100 + 100 of its own);
    that is its answer, not an error line."""
    url = database_factory("cli_budget")
    code, out = _run("budget", "--dsn", url.libpq(), "--hindsight-read-database")
    assert code == 1
    assert "DOES NOT FIT" in out
    assert "error:" not in out


def test_debug_prints_the_traceback_and_the_default_stays_one_line_on_stderr() -> None:
    """`--debug` puts the full traceback before the error line; without it (also right after a
    `--debug` run in the same process) stderr holds exactly the one line, and stdout nothing."""
    command = ["db", "current", "--dsn", "not a url"]
    expected = "error: --dsn: is not a database URL"

    debug = runner.invoke(app, ["--debug", *command], env={"JEDISOS_DB_URL": ""})
    assert debug.exit_code == 1
    assert debug.stdout == ""
    lines = [line for line in debug.stderr.splitlines() if line.strip()]
    assert lines[0] == "Traceback (most recent call last):", debug.stderr
    assert "in resolve_target" in debug.stderr  # the frames, not only the message
    assert any(line.startswith("jedisos_db.runtime.errors.ConfigError: --dsn") for line in lines), debug.stderr
    assert lines[-1].startswith(expected)

    plain = runner.invoke(app, command, env={"JEDISOS_DB_URL": ""})
    assert plain.exit_code == 1
    assert plain.stdout == ""
    assert [line for line in plain.stderr.splitlines() if line.strip()] == [lines[-1]]


# --- verify (issue 9) ------------------------------------------------------------------------------

def test_verify_exits_0_with_false_claims_and_1_with_fail_on_fails(tmp_path: Path, server_url: DatabaseURL) -> None:
    """False claims are findings: exit 0 and the summary table; `--fail-on fails` turns them into exit 1."""
    from tests.harness.verify.sources import write_source

    source = write_source(tmp_path / "source")
    code, out = _run("verify", "--dsn", server_url, "--out", str(tmp_path / "a"), "--quick", "--source", str(source))
    assert code == 0, out
    table = out[out.index("verdicts on the design as documented"):]
    assert table.index("S1-false-thing") < table.index("S1-one-server")
    assert "FALSE" in table
    assert "idle_p50_ms=1.5" in table
    assert "not run: 4 — " in out
    assert "1 left out by --quick" in out
    assert "6 claims of the design document: 1 false, 0 partly true, 1 hold, 4 not run" in out
    for name in ("verdicts.json", "report.md", "report.html"):
        assert f"wrote {tmp_path / 'a' / name}" in out
    code, out = _run("verify", "--dsn", server_url, "--out", str(tmp_path / "b"), "--quick", "--source", str(source),
                     "--fail-on", "fails")
    assert code == 1, out
    assert (tmp_path / "b" / "verdicts.json").is_file()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--fail-on", "partial"], "error: --fail-on: must be one of fails, got 'partial'"),
        (["--source", "{tmp}"], "error: --source: {tmp} holds no docs/design-claims.md and tests/conftest.py; "
                                "clone the jedisos-db repository and run `pip install -e '.[verify]'`"),
        (["--dsn", "postgresql://nobody@127.0.0.1:9/none"], "error: "),
    ],
)
def test_verify_that_cannot_run_says_why_in_one_line(tmp_path: Path, args: list[str], expected: str) -> None:
    code, out = _run("verify", "--out", str(tmp_path / "out"), *(a.format(tmp=tmp_path) for a in args))
    assert code == 1
    assert out.startswith(expected.format(tmp=tmp_path)), out
    assert len(out.strip().splitlines()) == 1, out
    assert not (tmp_path / "out" / "verdicts.json").exists()


def test_verify_whose_checks_cannot_start_says_why_in_one_line(tmp_path: Path, server_url: DatabaseURL) -> None:
    from tests.harness.verify.sources import write_source

    broken = "import pytest\n\nraise pytest.UsageError('a broken conftest')\n"
    source = write_source(tmp_path / "source", conftest=broken)
    code, out = _run("verify", "--dsn", server_url, "--out", str(tmp_path / "out"), "--source", str(source))
    assert code == 1
    assert out.splitlines()[0] == "server: 1/1 done", out  # a log gets a line per finished stage
    assert out.splitlines()[1:] == [
        "error: the checks could not run: pytest stopped (USAGE_ERROR): pytest.UsageError: a broken conftest; "
        f"see {tmp_path / 'out' / 'pytest.log'}"], out
