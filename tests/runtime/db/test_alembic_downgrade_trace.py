"""pytest-alembic's experimental downgrade-leaves-no-trace, made to look at the jedisos schema.

The check reflects the connection's default schema only. With the default search_path that is
``public``, where this project creates nothing, so it would compare two empty schemas and pass
whatever the downgrades did. Here the engine's search_path is ``jedisos``. (Proof it looks: without
the version-table note in the fixture below it fails, reporting ``schema_migrations`` as left behind.)
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic.config import Config
from pytest_alembic.tests.experimental import test_downgrade_leaves_no_trace
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import NullPool

from jedisos_db.runtime.db import migrations
from jedisos_db.runtime.db.engine import create_engine
from jedisos_db.runtime.owners import SCHEMA
from jedisos_db.runtime.urls import DatabaseURL
from tests.plugins.databases import CHAINS, chain_config

__all__ = ["test_downgrade_leaves_no_trace"]


@pytest.fixture(params=CHAINS)
def alembic_config(request: pytest.FixtureRequest) -> Config:
    """Our chain, and the partitioned design's (issue 10: a design's own migrations are checked like ours)."""
    return chain_config(request.param)


@pytest.fixture
def alembic_engine(empty_db: DatabaseURL) -> Iterator[AsyncEngine]:
    # The version table stays after `downgrade base` by design; create it up front so the
    # pre-001 state and the post-001-downgrade state are comparable.
    migrations.upgrade(empty_db, "base")
    assert migrations.current(empty_db) is None
    engine = create_engine(url=empty_db, poolclass=NullPool, server_settings={"search_path": SCHEMA})
    yield engine
    engine.sync_engine.dispose()
