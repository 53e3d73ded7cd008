"""pytest-alembic's built-in checks, on the async (asyncpg) engine the application uses, for our chain and
for the partitioned design's (issue 10: a design's own migrations are checked like ours)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic.config import Config
from pytest_alembic.tests import (
    test_model_definitions_match_ddl,
    test_single_head_revision,
    test_up_down_consistency,
    test_upgrade,
)
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import NullPool

from jedisos_db.runtime.db.engine import create_engine
from jedisos_db.runtime.urls import DatabaseURL
from tests.plugins.databases import CHAINS, chain_config

__all__ = [
    "test_model_definitions_match_ddl",
    "test_single_head_revision",
    "test_up_down_consistency",
    "test_upgrade",
]


@pytest.fixture(params=CHAINS)
def alembic_config(request: pytest.FixtureRequest) -> Config:
    """Our chain (001-009), and the partitioned design's, which continues it from its own directory (p010)."""
    return chain_config(request.param)


@pytest.fixture
def alembic_engine(empty_db: DatabaseURL) -> Iterator[AsyncEngine]:
    # NullPool: pytest-alembic runs each step in its own asyncio.run(), and a pooled asyncpg
    # connection must not outlive the event loop it was opened on.
    engine = create_engine(url=empty_db, poolclass=NullPool)
    yield engine
    engine.sync_engine.dispose()
