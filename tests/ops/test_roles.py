"""Least-privilege owner roles (design §1 "스키마 격리", §10 security) on a real server."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from typer.testing import CliRunner

from jedisos_db.cli.main import app
from jedisos_db.ops import roles
from jedisos_db.runtime.db.connect import connect
from jedisos_db.runtime.errors import ConfigError
from jedisos_db.runtime.urls import DatabaseURL
from tests.plugins.databases import DatabaseFactory
from tests.plugins.roles import RolesFactory


@pytest.fixture(scope="module")
def roles_db(database_factory: DatabaseFactory) -> DatabaseURL:
    return database_factory("roles")


def test_each_role_owns_only_its_schema(roles_db: DatabaseURL, roles_factory: RolesFactory) -> None:
    """design §1: each owner has its own schema and no rights in the other two, nor CREATE in public."""
    report = roles_factory(roles_db)
    assert report.public_create_revoked
    assert roles.privilege_leaks(roles_db, report) == []
    with connect(roles_db) as conn:
        owners = dict(conn.execute(
            "SELECT nspname, pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = ANY(%s)",
            [list(roles.OWNERS)]).fetchall())
        attrs = conn.execute(
            "SELECT bool_or(rolsuper OR rolcreatedb OR rolcreaterole OR rolbypassrls) FROM pg_roles "
            "WHERE rolname = ANY(%s)", [[g.role for g in report.grants]]).fetchone()
        exts = {r[0] for r in conn.execute("SELECT extname FROM pg_extension").fetchall()}
    assert owners == {g.schema: g.role for g in report.grants}
    assert attrs == (False,), "an owner role carries a cluster-wide privilege"
    assert set(roles.SUPERUSER_EXTENSIONS) <= exts


def test_rerun_aligns_without_recreating(roles_db: DatabaseURL, roles_factory: RolesFactory) -> None:
    roles_factory(roles_db)
    again = roles_factory(roles_db)
    assert [g.created for g in again.grants] == [False, False, False]
    assert roles.privilege_leaks(roles_db, again) == []


def test_roles_log_in_with_their_password(roles_db: DatabaseURL, roles_factory: RolesFactory) -> None:
    report = roles_factory(roles_db)
    for grant in report.grants:
        with connect(grant.url(roles_db)) as conn:
            who = conn.execute("SELECT current_user, current_setting('search_path')").fetchone()
        assert who is not None
        assert who[0] == grant.role
        assert who[1].split(",")[0].strip() == grant.schema


def test_passwords_reach_the_server_only_as_scram_verifiers(roles_db: DatabaseURL, roles_factory: RolesFactory) -> None:
    """common rules: secrets never reach logs or the database in plain text."""
    with connect(roles_db) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        conn.execute("SELECT pg_stat_statements_reset()")
    report = roles_factory(roles_db)
    with connect(roles_db) as conn:
        stored = dict(conn.execute("SELECT rolname, rolpassword FROM pg_authid WHERE rolname = ANY(%s)",
                                   [[g.role for g in report.grants]]).fetchall())
        texts = [r[0] for r in conn.execute("SELECT query FROM pg_stat_statements").fetchall()]
    for grant in report.grants:
        assert grant.password
        assert stored[grant.role].startswith("SCRAM-SHA-256$")
        assert grant.password not in stored[grant.role]
        leaked = [t for t in texts if grant.password in t]
        assert not leaked, f"clear password of {grant.role} in a statement the server saw: {leaked}"
    assert "password" not in repr(report.grants[0]).lower().replace("password=", "")


def test_bad_role_names_are_typed_errors(roles_db: DatabaseURL) -> None:
    with pytest.raises(ConfigError, match=r"roles\.jedisos"):
        roles.create_roles(roles_db, names={"jedisos": "bad name;"})
    with pytest.raises(ConfigError, match=r"roles\.nobody"):
        roles.create_roles(roles_db, names={"nobody": "x"})
    with pytest.raises(ConfigError, match="own role"):
        roles.create_roles(roles_db, names={"jedisos": "same", "langgraph": "same"})


def test_a_non_superuser_is_refused(roles_db: DatabaseURL, roles_factory: RolesFactory) -> None:
    report = roles_factory(roles_db)
    with pytest.raises(ConfigError, match="superuser"):
        roles.create_roles(report.by_owner("jedisos").url(roles_db))


def test_cli_prints_passwords_only_on_request(roles_db: DatabaseURL, roles_factory: RolesFactory,
                                             role_names: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    roles_factory(roles_db)
    args = ["roles", "--dsn", roles_db.libpq(), "--jedisos-role", role_names["jedisos"],
            "--langgraph-role", role_names["langgraph"], "--hindsight-role", role_names["hindsight"]]
    secret = "cli-secret-" + role_names["jedisos"]
    monkeypatch.setenv("JEDISOS_DB_JEDISOS_PASSWORD", secret)
    quiet = CliRunner().invoke(app, args)
    assert quiet.exit_code == 0, quiet.output
    assert secret not in quiet.output
    assert "no rights across schemas" in quiet.output
    loud = CliRunner().invoke(app, [*args, "--show-passwords"])
    assert loud.exit_code == 0, loud.output
    assert secret in loud.output
    with psycopg.connect(roles.RoleGrant("jedisos", role_names["jedisos"], "jedisos", False, secret)
                         .url(roles_db).libpq()) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (role_names["jedisos"],)


def test_only_hindsight_may_create_schemas(roles_db: DatabaseURL, roles_factory: RolesFactory) -> None:
    """Hindsight's alembic env.py runs CREATE SCHEMA IF NOT EXISTS unconditionally, which PostgreSQL
    checks against the database CREATE right: hindsight_app gets it, the other two do not."""
    report = roles_factory(roles_db)
    assert report.schema_creators == ("hindsight",)
    with connect(roles_db) as conn:
        rights = dict(conn.execute(
            "SELECT r, has_database_privilege(r, current_database(), 'CREATE') FROM unnest(%s::text[]) r",
            [[g.role for g in report.grants]]).fetchall())
    assert rights == {g.role: g.owner == "hindsight" for g in report.grants}
    strict = roles.RolesReport(report.database, report.grants, report.public_create_revoked, schema_creators=())
    assert roles.privilege_leaks(roles_db, strict) == [f"{report.by_owner('hindsight').role} may create schemas "
                                                        "in the database"]


def _superuser(url: DatabaseURL) -> str:
    with connect(url) as conn:
        row = conn.execute("SELECT current_user").fetchone()
    assert row is not None
    return str(row[0])


@pytest.mark.parametrize("vector", ["create", "rename"])
def test_hindsight_cannot_plant_a_function_on_a_superusers_search_path(
        roles_db: DatabaseURL, roles_factory: RolesFactory, vector: str) -> None:
    """issue 11: hindsight's database CREATE must not let it put `lower(varchar)` on the superuser's
    "$user" search_path, whether by creating a schema named after the superuser or renaming its own."""
    report = roles_factory(roles_db)
    superuser = sql.Identifier(_superuser(roles_db))
    plant = (sql.SQL("CREATE SCHEMA {}").format(superuser) if vector == "create"
             else sql.SQL("ALTER SCHEMA hindsight RENAME TO {}").format(superuser))
    refused: Exception | None = None
    try:
        with connect(report.by_owner("hindsight").url(roles_db)) as conn:
            conn.execute(plant)
            conn.execute(sql.SQL("CREATE FUNCTION {}.lower(varchar) RETURNS text LANGUAGE sql "
                                 "AS $$ SELECT 'planted' $$").format(superuser))
    except psycopg.errors.InsufficientPrivilege as exc:
        refused = exc
    try:
        with connect(roles_db) as conn:
            conn.execute('SET search_path = "$user", public')
            lowered = conn.execute("SELECT lower('ABC'::varchar)").fetchone()
        assert lowered == ("abc",), "the superuser ran a function planted by hindsight's role"
        assert refused is not None
        assert "named after another role" in str(refused)
    finally:
        with connect(roles_db) as conn:
            planted = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = current_user").fetchone()
            if planted and vector == "rename":
                conn.execute(sql.SQL("DROP FUNCTION IF EXISTS {}.lower(varchar)").format(superuser))
                conn.execute(sql.SQL("ALTER SCHEMA {} RENAME TO hindsight").format(superuser))
            elif planted:
                conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(superuser))


def test_hindsight_still_runs_its_env_py_and_creates_other_schemas(roles_db: DatabaseURL,
                                                                   roles_factory: RolesFactory) -> None:
    """The guard refuses only role-named schemas: Hindsight's CREATE SCHEMA IF NOT EXISTS still runs."""
    report = roles_factory(roles_db)
    with connect(report.by_owner("hindsight").url(roles_db)) as conn:
        conn.execute('CREATE SCHEMA IF NOT EXISTS "hindsight"')
        conn.execute('CREATE SCHEMA "hindsight_scratch"')
        conn.execute('DROP SCHEMA "hindsight_scratch"')


def test_public_holds_no_right_on_the_database(roles_db: DatabaseURL, roles_factory: RolesFactory) -> None:
    """PUBLIC's default CONNECT and TEMPORARY are revoked; only the owner roles (and superusers) connect."""
    report = roles_factory(roles_db)
    with connect(roles_db) as conn:
        public = conn.execute("SELECT a.privilege_type FROM pg_database d, aclexplode(d.datacl) a "
                              "WHERE d.datname = current_database() AND a.grantee = 0").fetchall()
        connect_right = dict(conn.execute(
            "SELECT r, has_database_privilege(r, current_database(), 'CONNECT') FROM unnest(%s::text[]) r",
            [[g.role for g in report.grants]]).fetchall())
    assert public == []
    assert set(connect_right.values()) == {True}


def _password_lines(text: str) -> dict[str, str]:
    return {line.split()[1]: line.split()[2] for line in text.splitlines() if line.startswith("password ")}


def _logs_in(url: DatabaseURL, role: str, password: str) -> bool:
    try:
        with psycopg.connect(url.with_user(role, password).libpq()) as conn:
            return conn.execute("SELECT current_user").fetchone() == (role,)
    except psycopg.OperationalError:
        return False


def _cli_args(url: DatabaseURL, role_names: dict[str, str]) -> list[str]:
    return ["roles", "--dsn", url.libpq(), "--jedisos-role", role_names["jedisos"],
            "--langgraph-role", role_names["langgraph"], "--hindsight-role", role_names["hindsight"]]


def test_generated_passwords_are_never_lost_silently(roles_db: DatabaseURL, roles_factory: RolesFactory,
                                                     role_names: dict[str, str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """issue 11: a rerun says the passwords were not changed and how to rotate; --rotate prints the
    new ones once, with a warning that they are stored nowhere, and they log in."""
    roles_factory(roles_db)
    for owner in roles.OWNERS:
        monkeypatch.delenv(f"JEDISOS_DB_{owner.upper()}_PASSWORD", raising=False)
    args = _cli_args(roles_db, role_names)
    try:
        rerun = CliRunner().invoke(app, args)
        assert rerun.exit_code == 0, rerun.output
        assert _password_lines(rerun.output) == {}
        assert "were not changed" in rerun.output
        assert "--rotate" in rerun.output
        rotated = CliRunner().invoke(app, [*args, "--rotate"])
        assert rotated.exit_code == 0, rotated.output
        assert "stored nowhere" in rotated.stderr
        shown = _password_lines(rotated.stdout)
        assert set(shown) == set(role_names.values())
        assert all(_logs_in(roles_db, role, password) for role, password in shown.items())
    finally:
        roles_factory(roles_db)  # back to the session's known passwords


def test_password_file_is_private_new_and_never_overwritten(roles_db: DatabaseURL, roles_factory: RolesFactory,
                                                            role_names: dict[str, str], tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    roles_factory(roles_db)
    for owner in roles.OWNERS:
        monkeypatch.delenv(f"JEDISOS_DB_{owner.upper()}_PASSWORD", raising=False)
    path = tmp_path / "passwords.env"
    args = [*_cli_args(roles_db, role_names), "--rotate", "--password-file", str(path)]
    previous = os.umask(0)  # the file must be 0600 even when the umask would allow more
    try:
        written = CliRunner().invoke(app, args)
        assert written.exit_code == 0, written.output
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        values = dict(line.split("=", 1) for line in path.read_text().splitlines())
        assert set(values) == {f"JEDISOS_DB_{o.upper()}_PASSWORD" for o in roles.OWNERS}
        assert not any(v in written.output for v in values.values())
        assert all(_logs_in(roles_db, role_names[o], values[f"JEDISOS_DB_{o.upper()}_PASSWORD"]) for o in roles.OWNERS)
        again = CliRunner().invoke(app, args)
        assert again.exit_code != 0
        assert "--password-file" in again.output
        assert "already exists" in again.output
        assert dict(line.split("=", 1) for line in path.read_text().splitlines()) == values
        assert all(_logs_in(roles_db, role_names[o], values[f"JEDISOS_DB_{o.upper()}_PASSWORD"]) for o in roles.OWNERS)
    finally:
        os.umask(previous)
        roles_factory(roles_db)
