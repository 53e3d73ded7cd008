"""The real Hindsight server for e2e and conformance tests (design §1, §2).

``hindsight_home(url)``: where Hindsight's database of the test database ``url`` lives: that database (the
design's one shared database), or, with ``--test-hindsight-dsn`` (a design placing Hindsight on a server of its
own), a database of the same name on that server, under the same owner role.

``hindsight_server``: Hindsight's own migrations into schema ``hindsight`` of a fresh test
database (on Hindsight's server), then the real API server on loopback, offline (mock LLM, rrf reranker, our TEI
endpoint). One per session: it takes ~7 s to start. ``hindsight_server_factory(url)`` does the
same on a database a test prepared itself (e.g. one also holding LangGraph and jedisos).
Both skip, with the reason, when ``hindsight-api-slim`` is not installed (``nox -s e2e`` installs it).

Every run of Hindsight's migrations in the session (each ``up`` / ``run_steps`` runs them) goes through
one warm interpreter (``ops.hindsight.warm_interpreter``): the same entry point and environment, without
~5 s of imports per run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from psycopg import sql

from jedisos_db.harness.hindsight import server as hs
from jedisos_db.ops import hindsight as hm
from jedisos_db.ops import provision
from jedisos_db.runtime.db.connect import connect
from jedisos_db.runtime.urls import DatabaseURL

from .databases import DatabaseFactory
from .roles import RolesFactory
from .server import given_hindsight_server


@dataclass(frozen=True)
class RunningHindsight:
    """A started server: where to reach it, which database and schema it owns, what it took."""

    base_url: str
    database_url: DatabaseURL
    schema: str
    server: hs.HindsightServer
    migration: hm.MigrationRun


HindsightFactory = Callable[..., RunningHindsight]
HindsightHome = Callable[[DatabaseURL], DatabaseURL]

TURNS_OPTION = "--hindsight-turns"
DEFAULT_TURNS = 20
"""Conversation turns the volume check retains through the real server: one day of §7's user, which fits
verify's time budget (Hindsight's consolidation of a turn takes seconds on two busy cores); the bytes a turn
writes are measured either way (252 KiB a turn from 20 turns, 219 KiB from 160: ``--hindsight-turns 160``)."""


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("jedisos-db").addoption(
        TURNS_OPTION, type=int, default=DEFAULT_TURNS, metavar="N",
        help=f"conversation turns the Hindsight volume check retains through the real server (default {DEFAULT_TURNS})")


def apart(a: DatabaseURL, b: DatabaseURL) -> bool:
    """Whether ``a`` and ``b`` are databases of two different servers (Hindsight placed on a server of its own)."""
    return server_of(a) != server_of(b)


def server_of(url: DatabaseURL) -> str:
    """The server of ``url`` for evidence: ``host:port`` (a unix socket's directory as the host)."""
    return f"{url.host}:{url.port or 5432}"


def _require_hindsight() -> None:
    if not hm.is_installed():
        pytest.skip(
            f"hindsight-api-slim is not installed for {hm.hindsight_python()} "
            "(pip install -e '.[hindsight]' or set JEDISOS_HINDSIGHT_PYTHON; nox -s e2e does it)"
        )


@pytest.fixture(scope="session", autouse=True)
def _hindsight_warm_interpreter() -> Iterator[None]:
    with hm.warm_interpreter():
        yield


@pytest.fixture(scope="session")
def hindsight_installed() -> None:
    """Skip (with the reason) unless hindsight-api-slim can be run."""
    _require_hindsight()


@pytest.fixture(scope="session")
def hindsight_server_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HindsightFactory]:
    """``start(database_url, schema="hindsight", settings=None, env=None) -> RunningHindsight``.

    ``env`` adds HINDSIGHT_API_* settings (e.g. a tenant extension); every server started is
    stopped at the end of the session.
    """
    started: list[hs.HindsightServer] = []

    def start(database_url: DatabaseURL, *, schema: str = hm.SCHEMA,
              settings: hs.HindsightSettings | None = None, env: dict[str, str] | None = None) -> RunningHindsight:
        _require_hindsight()
        migration = hm.run_migrations(database_url, schema=schema)
        log = tmp_path_factory.mktemp("hindsight") / "hindsight-api.log"
        server = hs.HindsightServer(database_url, schema=schema, settings=settings, log_path=log, env=env)
        server.start()
        started.append(server)
        return RunningHindsight(server.base_url, server.database_url, schema, server, migration)

    yield start
    for server in reversed(started):
        server.stop()


ADMISSION_OF_ONE = {"HINDSIGHT_API_ADMISSION_RECALL_MAX_IN_FLIGHT": "1",
                    "HINDSIGHT_API_ADMISSION_RECALL_MAX_WAIT_MS": "0"}
"""Hindsight's recall lane admitting one request and queueing none (its admission control)."""


@pytest.fixture(scope="session")
def hindsight_admin_url(request: pytest.FixtureRequest, server_url: DatabaseURL) -> DatabaseURL:
    """Admin URL of the server Hindsight's databases are on: ``--test-hindsight-dsn``'s, else the session's."""
    return given_hindsight_server(request.config) or server_url


@pytest.fixture(scope="session")
def hindsight_home(request: pytest.FixtureRequest, roles_factory: RolesFactory, role_names: dict[str, str],
                   server_is_private_embedded: bool) -> Iterator[HindsightHome]:
    """``home(url) -> url``: where Hindsight's database of the test database ``url`` lives (the module doc)."""
    own = given_hindsight_server(request.config)
    made: list[str] = []

    def home(url: DatabaseURL) -> DatabaseURL:
        if own is None:
            return url
        there = provision.ensure_database(own, url.database)
        made.append(there.database)
        if url.username == role_names["hindsight"]:  # the same role, created there too (roles are per server)
            return roles_factory(there).by_owner("hindsight").url(there)
        with connect(there) as conn:
            provision.ensure_extension(conn, "vector")
        return there

    yield home
    if own is None or server_is_private_embedded:
        return  # removed with the servers, as the main server's databases are
    for name in reversed(made):
        provision.drop_database(own, name)
    with connect(own) as conn:
        for role in role_names.values():
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


@pytest.fixture(scope="session")
def hindsight_busy_server(database_factory: DatabaseFactory, hindsight_home: HindsightHome,
                          hindsight_server_factory: HindsightFactory) -> RunningHindsight:
    """A second server whose recall lane admits one request at a time: hold one recall in flight
    (``.server.embeddings.hold()`` keeps its query embedding back) and the next recall gets 503 +
    ``Retry-After``, the way an overloaded server answers."""
    return hindsight_server_factory(hindsight_home(database_factory("hindsight_busy")), env=ADMISSION_OF_ONE)


@pytest.fixture(scope="session")
def hindsight_server(database_factory: DatabaseFactory, hindsight_home: HindsightHome,
                     hindsight_server_factory: HindsightFactory) -> RunningHindsight:
    """The session's real Hindsight server, on its own test database (``.base_url``, ``.database_url``)."""
    _require_hindsight()
    return hindsight_server_factory(hindsight_home(database_factory("hindsight")))
