"""Isolated databases on the session's server.

A template database is bootstrapped and migrated to head once per session; each test module
gets its own clone (``CREATE DATABASE ... TEMPLATE``, a file copy: milliseconds). Tests that
need a database without the jedisos tables take ``empty_db``. Everything created is dropped
at the end of the session, so ``--dsn`` can point at a shared server.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from jedisos_db.ops import provision
from jedisos_db.runtime import urls
from jedisos_db.runtime.db import migrations

DatabaseFactory = Callable[..., str]
PREFIX = "jedisos_test"


@pytest.fixture(scope="session")
def database_factory(server_url: str) -> Iterator[DatabaseFactory]:
    """``create(hint, template=None, bootstrap=True) -> url`` of a new database, dropped at session end."""
    run = secrets.token_hex(3)
    created: list[str] = []

    def create(hint: str = "db", *, template: str | None = None, bootstrap: bool = True) -> str:
        safe = re.sub(r"[^a-z0-9_]", "_", hint.lower())[:30]
        name = f"{PREFIX}_{run}_{len(created)}_{safe}"
        url = provision.create_database(server_url, name, template=template)
        created.append(name)
        if bootstrap and template is None:
            provision.bootstrap(url)
        return url

    yield create
    for name in reversed(created):
        provision.drop_database(server_url, name)


@pytest.fixture(scope="session")
def template_db(database_factory: DatabaseFactory) -> str:
    """Name of a database migrated to head; clone it, never write to it."""
    url = database_factory("template")
    migrations.upgrade(url)
    name = urls.parse(url).database
    assert name is not None
    return name


@pytest.fixture(scope="module")
def migrated_db(database_factory: DatabaseFactory, template_db: str, request: pytest.FixtureRequest) -> str:
    """URL of this module's own database, at head."""
    return database_factory(request.module.__name__.rsplit(".", 1)[-1], template=template_db)


@pytest.fixture
def empty_db(database_factory: DatabaseFactory, request: pytest.FixtureRequest) -> str:
    """URL of a new database with ``vector`` and the ``jedisos`` schema, no tables."""
    return database_factory(request.node.name)


@pytest.fixture(scope="module")
async def engine(migrated_db: str) -> AsyncIterator[AsyncEngine]:
    """An asyncpg engine on the module's migrated database."""
    eng = create_async_engine(urls.to_asyncpg(migrated_db))
    try:
        yield eng
    finally:
        await eng.dispose()
