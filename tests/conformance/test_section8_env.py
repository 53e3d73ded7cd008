"""Design §8's environment, evaluated by a shell as written, given to each owner (claim ``S8-env-vars``).

The block below is §8 verbatim except for the ``POSTGRES_*`` values, which name the test server. bash
expands the ``${...}`` compositions exactly as a deployment's env file or compose file would.
"""

from __future__ import annotations

import subprocess
from urllib.parse import quote

import pytest
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy.engine import make_url

from jedisos_db.harness.verify.plugin import ClaimRecorder
from jedisos_db.runtime.config import load_settings
from jedisos_db.runtime.db.connect import connect
from jedisos_db.runtime.urls import DatabaseURL
from tests.plugins.databases import postgres_env

SECTION_8 = """\
# PostgreSQL 연결 (전체 공유)
POSTGRES_USER=jedisos
POSTGRES_PASSWORD=changeme
POSTGRES_DB=hindsight
POSTGRES_HOST=postgres
POSTGRES_PORT=5432

# Hindsight 전용
HINDSIGHT_API_DATABASE_URL=postgresql://${POSTGRES_USER}:${POSTGRES_PASSWORD}@${POSTGRES_HOST}:${POSTGRES_PORT}/${POSTGRES_DB}
HINDSIGHT_API_DATABASE_SCHEMA=hindsight

# LangGraph 체크포인트 전용
LANGGRAPH_DB_URL=postgresql://${POSTGRES_USER}:${POSTGRES_PASSWORD}@${POSTGRES_HOST}:${POSTGRES_PORT}/${POSTGRES_DB}

# JediSOS 자체
JEDISOS_DB_URL=postgresql://${POSTGRES_USER}:${POSTGRES_PASSWORD}@${POSTGRES_HOST}:${POSTGRES_PORT}/${POSTGRES_DB}
JEDISOS_DB_SCHEMA=jedisos

# MCP Auth Proxy 전용 (별도 DB 또는 같은 DB 다른 스키마)
MCP_AUTH_DATABASE_URL=postgresql://${POSTGRES_USER}:${POSTGRES_PASSWORD}@${POSTGRES_HOST}:${POSTGRES_PORT}/${POSTGRES_DB}
"""
"""Design §8, verbatim."""

URL_VARIABLES = ("HINDSIGHT_API_DATABASE_URL", "LANGGRAPH_DB_URL", "JEDISOS_DB_URL", "MCP_AUTH_DATABASE_URL")


def section8_environ(parts: dict[str, str]) -> dict[str, str]:
    """§8 with its ``POSTGRES_*`` lines set to ``parts``, as bash expands it (``set -a``: every line exported)."""
    lines = [f"{k}={parts[k]!r}" if k in parts else line
             for line in SECTION_8.splitlines() for k in [line.split("=", 1)[0]]]
    script = "set -a\n" + "\n".join(lines) + "\nenv -0\n"
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30, check=True, env={})
    pairs = (item.split("=", 1) for item in done.stdout.split("\0") if "=" in item)
    return {k: v for k, v in pairs if k in {line.split("=", 1)[0] for line in SECTION_8.splitlines()}}


def _parts(url: DatabaseURL) -> dict[str, str]:
    """The test server as ``POSTGRES_*``; its socket directory percent-encoded, the one form a URL's host takes."""
    parts = {k: v for k, v in postgres_env(url).items() if k.startswith("POSTGRES_") and v is not None}
    return parts | {"POSTGRES_HOST": quote(parts["POSTGRES_HOST"], safe="")}


@pytest.mark.claim("S8-env-vars")
async def test_section_8_variables_given_to_each_owner(empty_db: DatabaseURL, monkeypatch: pytest.MonkeyPatch,
                                                       claim: ClaimRecorder) -> None:
    """JediSOS reads its two variables; LangGraph gets only a URL, with nothing to name its schema."""
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

    env = section8_environ(_parts(empty_db))
    assert len({env[v] for v in URL_VARIABLES}) == 1, "§8 composes the same URL for every owner"
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    with connect(settings.database_url) as c:
        database = str(c.execute("SELECT current_database()").fetchone()[0])  # type: ignore[index]
    assert (database, settings.db_schema) == (empty_db.database, "jedisos")

    # LangGraph: §3's snippet with §8's URL. Nothing in §8 names a schema for it.
    async with AsyncPostgresSaver.from_conn_string(env["LANGGRAPH_DB_URL"]) as saver:
        await saver.setup()
    with connect(empty_db) as c:
        landed = sorted({str(r[0]) for r in c.execute(
            "SELECT table_schema FROM information_schema.tables WHERE table_name LIKE 'checkpoint%'").fetchall()})
    assert landed == ["public"], f"expected LangGraph's tables in public (no schema variable), found in {landed}"
    claim.partial(f"JEDISOS_DB_URL and JEDISOS_DB_SCHEMA configured JediSOS (connected to {database}, schema "
                  f"{settings.db_schema}); LANGGRAPH_DB_URL reached the server but §8 has no schema variable for "
                  f"LangGraph, so setup() put its tables in {landed[0]}",
                  fix="head confines LangGraph with search_path=langgraph on its pool (runtime/checkpointer.py); "
                      "Hindsight's two variables are checked by its e2e migration test",
                  url_variables=len(URL_VARIABLES), langgraph_schema=landed[0])


@pytest.mark.claim("S8-env-vars")
def test_section_8_url_breaks_on_a_password_with_url_characters(claim: ClaimRecorder) -> None:
    """§8 pastes ``${POSTGRES_PASSWORD}`` into each URL unescaped: a password holding ``@`` or ``/`` (as
    generated passwords often do) changes the host and database the URL names."""
    parts = {"POSTGRES_USER": "jedisos", "POSTGRES_PASSWORD": "s3cr@t/pw", "POSTGRES_HOST": "postgres",
             "POSTGRES_PORT": "5432", "POSTGRES_DB": "hindsight"}
    env = section8_environ(parts)
    named = conninfo_to_dict(env["JEDISOS_DB_URL"])
    read = f"host {named.get('host')!r}, password {named.get('password')!r}, database {named.get('dbname')!r}"
    assert named.get("host") != "postgres", f"§8's URL was read right: {read}"
    head = load_settings(postgres_user="jedisos", postgres_password="s3cr@t/pw", postgres_host="postgres",
                         postgres_port=5432, postgres_db="hindsight")
    url = make_url(head.database_url.libpq())
    assert (url.host, url.database, url.password) == ("postgres", "hindsight", "s3cr@t/pw")
    claim.fails(f"with POSTGRES_PASSWORD='s3cr@t/pw' the URL §8 composes for every owner is {read}, "
                "not host 'postgres', database 'hindsight'",
                fix="head assembles JEDISOS_DB_URL from the POSTGRES_* parts with the password quoted "
                    "(runtime/config.py); set the URL variables only with percent-encoded passwords")
