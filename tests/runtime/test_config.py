"""Settings from the environment variables of design §8."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from jedisos_db.runtime.config import ENV_NAMES, env_database_url, load_settings
from jedisos_db.runtime.errors import ConfigError

POSTGRES = {"POSTGRES_USER": "jedisos", "POSTGRES_PASSWORD": "changeme", "POSTGRES_DB": "hindsight",
            "POSTGRES_HOST": "postgres", "POSTGRES_PORT": "5432"}


@pytest.fixture(autouse=True)
def bare_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_NAMES.values():
        monkeypatch.delenv(name, raising=False)


def set_env(monkeypatch: pytest.MonkeyPatch, values: dict[str, str]) -> None:
    for key, value in values.items():
        monkeypatch.setenv(key, value)


@pytest.mark.claim("S8-env-vars")
def test_url_is_assembled_from_postgres_parts_as_section_8_composes_it(monkeypatch: pytest.MonkeyPatch) -> None:
    set_env(monkeypatch, POSTGRES)
    settings = load_settings()
    assert settings.database_url.libpq() == "postgresql://jedisos:changeme@postgres:5432/hindsight"
    assert "changeme" not in str(settings.database_url)
    assert (settings.db_schema, settings.pool_size, settings.max_overflow) == ("jedisos", 5, 10)
    assert settings.application_name == "jedisos-app"


@pytest.mark.claim("S8-env-vars")
def test_jedisos_db_url_wins_and_is_taken_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    set_env(monkeypatch, {**POSTGRES, "JEDISOS_DB_URL": "postgresql://app:pw@db.internal:6432/jedisos"})
    assert load_settings().database_url.libpq() == "postgresql://app:pw@db.internal:6432/jedisos"


@pytest.mark.claim("S1-jedisos-schema-env")
def test_overrides_pool_schema_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    set_env(monkeypatch, {**POSTGRES, "JEDISOS_DB_SCHEMA": "jedisos_staging", "JEDISOS_DB_POOL_SIZE": "20",
                          "JEDISOS_DB_MAX_OVERFLOW": "0", "JEDISOS_DB_STATEMENT_TIMEOUT_MS": "5000"})
    settings = load_settings()
    assert (settings.db_schema, settings.pool_size, settings.max_overflow, settings.statement_timeout_ms) == (
        "jedisos_staging", 20, 0, 5000)


@pytest.mark.parametrize(("env", "variable", "rule"), [
    ({}, "POSTGRES_USER", "is not set"),
    ({"POSTGRES_USER": "u", "POSTGRES_DB": "d"}, "POSTGRES_HOST", "is not set"),
    ({**POSTGRES, "POSTGRES_PORT": "eighty"}, "POSTGRES_PORT", "integer"),
    ({**POSTGRES, "POSTGRES_PORT": "70000"}, "POSTGRES_PORT", "less than or equal to 65535"),
    ({**POSTGRES, "JEDISOS_DB_POOL_SIZE": "0"}, "JEDISOS_DB_POOL_SIZE", "greater than or equal to 1"),
    ({**POSTGRES, "JEDISOS_DB_MAX_OVERFLOW": "-1"}, "JEDISOS_DB_MAX_OVERFLOW", "greater than or equal to 0"),
    ({**POSTGRES, "JEDISOS_DB_SCHEMA": "Robert'); DROP"}, "JEDISOS_DB_SCHEMA", "not a lower-case SQL identifier"),
    ({"JEDISOS_DB_URL": "mysql://u@h/d"}, "JEDISOS_DB_URL", "is not PostgreSQL"),
    ({"JEDISOS_DB_URL": "postgresql://u@h"}, "JEDISOS_DB_URL", "names no database"),
    ({**POSTGRES, "JEDISOS_FERNET_KEYS": "not-a-key"}, "JEDISOS_FERNET_KEYS", "key #1 is not"),
])
@pytest.mark.claim("S8-env-vars")
def test_missing_or_malformed_value_is_one_error_naming_the_variable(
        monkeypatch: pytest.MonkeyPatch, env: dict[str, str], variable: str, rule: str) -> None:
    set_env(monkeypatch, env)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.field == variable
    assert rule in info.value.rule


def test_secrets_stay_out_of_repr_and_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    key = Fernet.generate_key().decode()
    set_env(monkeypatch, {**POSTGRES, "POSTGRES_PASSWORD": "hunter2-secret", "JEDISOS_FERNET_KEYS": key})
    settings = load_settings()
    assert "hunter2-secret" not in repr(settings)
    assert key not in repr(settings)
    assert key not in str(settings.model_dump())
    set_env(monkeypatch, {"JEDISOS_FERNET_KEYS": key + ",bad"})
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "key #2" in str(info.value)
    assert key not in str(info.value)




def test_keyword_overrides_by_field_name() -> None:
    settings = load_settings(jedisos_db_url="postgresql://u@h/d", pool_size=3, application_name="worker")
    assert (settings.database_url.libpq(), settings.pool_size, settings.application_name) == (
        "postgresql://u@h/d", 3, "worker")


def test_env_database_url_is_none_when_nothing_names_a_database(monkeypatch: pytest.MonkeyPatch) -> None:
    assert env_database_url() is None
    set_env(monkeypatch, {"POSTGRES_PASSWORD": "x", "POSTGRES_PORT": "5433", "JEDISOS_DB_URL": ""})
    assert env_database_url() is None  # a password or port alone names no database; empty means unset


def test_env_database_url_composes_postgres_parts_or_takes_jedisos_db_url(monkeypatch: pytest.MonkeyPatch) -> None:
    set_env(monkeypatch, {**POSTGRES, "POSTGRES_PASSWORD": "p@ss/word"})
    url = env_database_url()
    assert url is not None
    assert (url.username, url.host, url.port, url.database) == ("jedisos", "postgres", 5432, "hindsight")
    assert "p%40ss%2Fword" in url.libpq()  # escaped, so any password survives the composition
    set_env(monkeypatch, {"JEDISOS_DB_URL": "postgresql://app@db.internal/jedisos"})
    assert env_database_url() == load_settings().database_url
    assert str(env_database_url()) == "postgresql://app@db.internal/jedisos"


def test_env_database_url_ignores_unrelated_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """A command that only needs its target is not stopped by a bad pool size or key."""
    set_env(monkeypatch, {**POSTGRES, "JEDISOS_DB_POOL_SIZE": "0", "JEDISOS_FERNET_KEYS": "not-a-key"})
    url = env_database_url()
    assert url is not None
    assert url.database == "hindsight"
    set_env(monkeypatch, {"POSTGRES_HOST": ""})
    with pytest.raises(ConfigError) as info:
        env_database_url()
    assert info.value.field == "POSTGRES_HOST"
