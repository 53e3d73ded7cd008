"""The one PostgreSQL server of a test session.

Default: a fresh embedded PostgreSQL 18.6 + pgvector 0.8.6 in a temporary directory, stopped at
the end. ``--test-dsn URL`` (or ``JEDISOS_TEST_DSN``) names an admin server to run the whole suite
on instead: test databases are created on it and dropped afterwards, so the role in that URL must
be allowed to CREATE DATABASE and to create ``vector``. (Unlike the CLI's ``--dsn``, it is never
the database the tests work in; ``JEDISOS_DB_URL`` and ``POSTGRES_*`` are not read here.)
``--test-dsn-private`` (or ``$JEDISOS_TEST_DSN_PRIVATE``) says the ``--test-dsn`` server is an embedded
one started for this run alone and removed after it (``jedisos-db verify`` starts one so): it is judged as
the embedded server, and, as on the session's own embedded server, what the session created is left to the
server's removal instead of being dropped database by database (each DROP DATABASE costs a checkpoint).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from jedisos_db.harness.verify.run import HINDSIGHT_SERVER_ENV, PRIVATE_SERVER_ENV
from jedisos_db.ops import provision
from jedisos_db.runtime import urls
from jedisos_db.runtime.urls import DatabaseURL

ENV_TEST_DSN = "JEDISOS_TEST_DSN"
OPTION = "--test-dsn"
PRIVATE_OPTION = "--test-dsn-private"
HINDSIGHT_OPTION = "--test-hindsight-dsn"
ENV_HINDSIGHT_DSN = HINDSIGHT_SERVER_ENV
"""Admin URL of a second server for Hindsight's databases: a design that places Hindsight on a server of its own
(``[hindsight] placement = "own-server"``; ``jedisos-db verify`` starts that server and sets the variable)."""


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("jedisos-db")
    group.addoption(
        OPTION,
        default=os.environ.get(ENV_TEST_DSN),
        help=f"admin URL of a server to run on instead of the embedded one (env {ENV_TEST_DSN}); "
        "test databases are created on it and dropped afterwards",
    )
    group.addoption(
        PRIVATE_OPTION, action="store_true", default=bool(os.environ.get(PRIVATE_SERVER_ENV)),
        help=f"the {OPTION} server is an embedded one private to this run and removed after it "
        "(jedisos-db verify's): judge it as the embedded server and leave the test databases to its removal",
    )
    group.addoption(
        HINDSIGHT_OPTION, default=os.environ.get(ENV_HINDSIGHT_DSN),
        help=f"admin URL of a second server Hindsight's databases go to (env {ENV_HINDSIGHT_DSN}): Hindsight on a "
        "server of its own; private to the run exactly when the main server is",
    )
    group.addoption(
        "--max-connections",
        type=int,
        default=200,
        help="max_connections of the embedded server (default: the design's 200)",
    )


def given_server(config: pytest.Config) -> DatabaseURL | None:
    """The admin server ``--test-dsn`` / ``$JEDISOS_TEST_DSN`` names, or None for the embedded one."""
    dsn = config.getoption(OPTION)
    return urls.parse(dsn, field=OPTION) if dsn else None


def given_hindsight_server(config: pytest.Config) -> DatabaseURL | None:
    """The admin server ``--test-hindsight-dsn`` names (Hindsight on a server of its own), or None (the session's)."""
    dsn = config.getoption(HINDSIGHT_OPTION)
    return urls.parse(dsn, field=HINDSIGHT_OPTION) if dsn else None


def private_embedded(config: pytest.Config) -> bool:
    """Whether the session's server is an embedded one of this run alone (its own, or ``--test-dsn-private``)."""
    return given_server(config) is None or bool(config.getoption(PRIVATE_OPTION))


def pytest_report_header(config: pytest.Config) -> str:
    given = given_server(config)
    header = f"jedisos-db server: {f'{OPTION} {given}' if given else 'embedded (temporary)'}"
    hindsight = given_hindsight_server(config)
    return header if hindsight is None else f"{header}; Hindsight's server: {HINDSIGHT_OPTION} {hindsight}"


@pytest.fixture(scope="session")
def server_url(request: pytest.FixtureRequest) -> Iterator[DatabaseURL]:
    """Admin URL of the session's server (database ``postgres`` on the embedded one)."""
    given = given_server(request.config)
    if given is not None:
        yield given
        return
    settings = provision.observed_settings(request.config.getoption("--max-connections"))
    with provision.private_server(settings, prefix="jedisos-test-pg-") as url:
        yield url


@pytest.fixture(scope="session")
def server_is_private_embedded(request: pytest.FixtureRequest) -> bool:
    """True when the server is an embedded PostgreSQL of this run alone (see :func:`private_embedded`)."""
    return private_embedded(request.config)


@pytest.fixture(scope="session")
def server_info(server_url: DatabaseURL) -> provision.ServerInfo:
    return provision.server_info(server_url)
