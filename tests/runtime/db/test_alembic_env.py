"""alembic/env.py finds its database like every other entry point, minus the embedded server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from alembic import command

from jedisos_db.runtime import config
from jedisos_db.runtime.db import migrations
from jedisos_db.runtime.errors import ConfigError
from tests.plugins.databases import DatabaseFactory, postgres_env

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def bare_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in config.ENV_NAMES.values():
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_without_a_handed_url_env_py_reads_postgres_parts(database_factory: DatabaseFactory,
                                                          bare_env: pytest.MonkeyPatch) -> None:
    """design §8: POSTGRES_* alone reaches Alembic (the config carries no URL)."""
    url = database_factory("alembic_env_parts")
    for name, value in postgres_env(url).items():
        if value is not None:
            bare_env.setenv(name, value)
    command.upgrade(migrations.alembic_config(), "002")
    assert migrations.current(url) == "002"


def test_without_any_url_env_py_says_what_to_set_and_starts_no_server(bare_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError) as info:
        command.upgrade(migrations.alembic_config(), "head")
    assert info.value.field == "JEDISOS_DB_URL"
    assert "POSTGRES_USER" in info.value.rule


def test_alembic_by_hand_with_postgres_parts(database_factory: DatabaseFactory) -> None:
    """The README's `alembic upgrade head` from the source tree, with the URL only in the environment."""
    url = database_factory("alembic_env_hand")
    env = {k: v for k, v in os.environ.items() if k not in config.ENV_NAMES.values()}
    env.update({k: v for k, v in postgres_env(url).items() if v is not None})
    run = subprocess.run([sys.executable, "-m", "alembic", "upgrade", "head"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert migrations.current(url) == migrations.head()
