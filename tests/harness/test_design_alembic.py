"""pytest-alembic's built-ins on the partitioned design's chain (001-009 + p010), as on ours."""

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

from jedisos_db.harness import designs
from jedisos_db.runtime.db import migrations
from jedisos_db.runtime.db.engine import create_engine
from jedisos_db.runtime.urls import DatabaseURL

__all__ = [
    "test_model_definitions_match_ddl",
    "test_single_head_revision",
    "test_up_down_consistency",
    "test_upgrade",
]

pytestmark = pytest.mark.slow


@pytest.fixture
def alembic_config() -> Config:
    return migrations.alembic_config(versions=designs.load("partitioned").schema.versions)


@pytest.fixture
def alembic_engine(empty_db: DatabaseURL) -> Iterator[AsyncEngine]:
    # NullPool: pytest-alembic runs each step in its own asyncio.run() (see test_alembic_builtins.py).
    engine = create_engine(url=empty_db, poolclass=NullPool)
    yield engine
    engine.sync_engine.dispose()


def test_the_chain_ends_in_the_partitioned_revision() -> None:
    assert migrations.head(versions=designs.load("partitioned").schema.versions) == "p010"
    assert migrations.head() == "009"
