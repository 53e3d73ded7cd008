"""Isolated databases on the session's server.

A template database is bootstrapped and migrated to head once per session; each test module
gets its own clone (``CREATE DATABASE ... TEMPLATE``, a file copy: milliseconds). Tests that
need a database without the jedisos tables take ``empty_db``. Everything created is dropped
at the end of the session, so ``--test-dsn`` can point at a shared server; on a server private to
the run (``server.private_embedded``) the server's removal takes it all at once instead.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from alembic.config import Config
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from jedisos_db.harness import designs
from jedisos_db.ops import provision
from jedisos_db.runtime.db import migrations
from jedisos_db.runtime.db.engine import create_engine
from jedisos_db.runtime.urls import DatabaseURL

DatabaseFactory = Callable[..., DatabaseURL]
PREFIX = "jedisos_test"


def postgres_env(url: DatabaseURL) -> dict[str, str | None]:
    """Section 8's ``POSTGRES_*`` naming ``url`` (a socket directory as ``POSTGRES_HOST``), with
    ``JEDISOS_DB_URL`` unset: for ``CliRunner(env=...)`` or ``monkeypatch``."""
    password = make_url(url.libpq()).password  # only the driver form carries it
    return {"JEDISOS_DB_URL": None, "POSTGRES_USER": url.username, "POSTGRES_PASSWORD": password or None,
            "POSTGRES_HOST": url.host, "POSTGRES_PORT": str(url.port or 5432), "POSTGRES_DB": url.database}


@pytest.fixture(scope="session")
def database_factory(server_url: DatabaseURL, server_is_private_embedded: bool) -> Iterator[DatabaseFactory]:
    """``create(hint, template=None, bootstrap=True) -> url`` of a new database, dropped at session end."""
    run = secrets.token_hex(3)
    created: list[str] = []

    def create(hint: str = "db", *, template: str | None = None, bootstrap: bool = True) -> DatabaseURL:
        safe = re.sub(r"[^a-z0-9_]", "_", hint.lower())[:30]
        name = f"{PREFIX}_{run}_{len(created)}_{safe}"
        url = provision.create_database(server_url, name, template=template)
        created.append(name)
        if bootstrap and template is None:
            provision.bootstrap(url)
        return url

    yield create
    if server_is_private_embedded:
        return  # removed with the server, which stops right after the session
    for name in reversed(created):
        provision.drop_database(server_url, name)


CHAINS = ("head", *(name for name in designs.builtin_names() if designs.load(name).schema.versions))
"""The migration chains pytest-alembic's checks run on: ours, and each built-in design's that adds revisions of its
own (``partitioned``)."""


def chain_config(chain: str) -> Config:
    """The Alembic config of ``chain`` (``head``, or a design whose versions continue ours, e.g. p010)."""
    return migrations.alembic_config(versions=designs.load(chain).schema.versions if chain != "head" else ())


DESIGN_OPTION = "--design"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("jedisos-db").addoption(
        DESIGN_OPTION, default=None,
        help="build the migrated test databases with this design (a built-in name or a design file, "
             "jedisos_db.harness.designs) instead of head: the same tests, judged on another design")


def pytest_report_header(config: pytest.Config) -> str:
    return f"jedisos-db design: {config.getoption(DESIGN_OPTION) or 'head (recommended)'}"


@pytest.fixture(scope="session")
def design(request: pytest.FixtureRequest) -> designs.Design:
    """The design the migrated test databases are built with: ``--design``'s, else ``recommended`` (head).
    A check that depends on the design (its head revision, its retention method, its monthly partitions)
    reads it here."""
    return designs.load(request.config.getoption(DESIGN_OPTION) or "recommended")


@pytest.fixture(scope="session")
def template_db(database_factory: DatabaseFactory, design: designs.Design) -> str:
    """Name of a database migrated to head (or built by ``--design``); clone it, never write to it."""
    url = database_factory("template")
    design.build(url)
    return url.database


@pytest.fixture(scope="module")
def migrated_db(database_factory: DatabaseFactory, template_db: str, request: pytest.FixtureRequest) -> DatabaseURL:
    """URL of this module's own database, at head."""
    return database_factory(request.module.__name__.rsplit(".", 1)[-1], template=template_db)


@pytest.fixture
def empty_db(database_factory: DatabaseFactory, request: pytest.FixtureRequest) -> DatabaseURL:
    """URL of a new database with ``vector`` and the ``jedisos`` schema, no tables."""
    return database_factory(request.node.name)


@pytest.fixture(scope="module")
async def engine(migrated_db: DatabaseURL) -> AsyncIterator[AsyncEngine]:
    """An asyncpg engine on the module's migrated database (the package's factory, default settings)."""
    eng = create_engine(url=migrated_db)
    try:
        yield eng
    finally:
        await eng.dispose()
