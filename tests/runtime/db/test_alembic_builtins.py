"""pytest-alembic's built-in checks, on the async (asyncpg) engine the application uses."""

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

from jedisos_db.runtime.db import migrations
from jedisos_db.runtime.db.engine import create_engine
from jedisos_db.runtime.urls import DatabaseURL

__all__ = [
    "test_model_definitions_match_ddl",
    "test_single_head_revision",
    "test_up_down_consistency",
    "test_upgrade",
]


@pytest.fixture
def alembic_config() -> Config:
    return migrations.alembic_config()


@pytest.fixture
def alembic_engine(empty_db: DatabaseURL) -> Iterator[AsyncEngine]:
    # NullPool: pytest-alembic runs each step in its own asyncio.run(), and a pooled asyncpg
    # connection must not outlive the event loop it was opened on.
    engine = create_engine(url=empty_db, poolclass=NullPool)
    yield engine
    engine.sync_engine.dispose()
