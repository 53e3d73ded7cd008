"""Configuration from the environment variables of design section 8 (claim ``S8-env-vars`` in docs/design-claims.md).

One :class:`Settings` object. The database URL is ``JEDISOS_DB_URL`` when set, otherwise it is
assembled from ``POSTGRES_USER``/``POSTGRES_PASSWORD``/``POSTGRES_HOST``/``POSTGRES_PORT``/
``POSTGRES_DB`` exactly as section 8 composes it (:class:`DatabaseSettings`, the one place that
composition lives; :func:`env_database_url` is what the CLI, Alembic and the load runner read).
Every missing or malformed value becomes one :class:`~jedisos_db.runtime.errors.ConfigError`
naming the variable.

Variables beyond section 8 (pool sizes, timeouts, keys) use the ``JEDISOS_DB_`` prefix; the
Fernet keys live in ``JEDISOS_FERNET_KEYS`` (comma-separated, newest first).
"""

from __future__ import annotations

import re
from functools import cached_property
from typing import Any, TypeVar

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import URL

from jedisos_db.runtime import urls
from jedisos_db.runtime.errors import ConfigError
from jedisos_db.runtime.owners import SCHEMA
from jedisos_db.runtime.urls import DatabaseURL

MAX_WAIT_S = 86_400
"""The longest wait any timeout may be set to (a day): beyond it a value is a typo (ms for s), not a policy."""
DEFAULT_CONNECT_TIMEOUT_S = 10.0
"""Seconds to open a connection, for every pool and one-off connection of the package."""
DEFAULT_POOL_TIMEOUT_S = 30.0
"""Seconds to wait for a free pooled connection (the jedisos engine and the LangGraph pool)."""

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

# Field name -> the environment variable a user sets; errors must name the latter.
ENV_NAMES = {
    "postgres_user": "POSTGRES_USER",
    "postgres_password": "POSTGRES_PASSWORD",
    "postgres_db": "POSTGRES_DB",
    "postgres_host": "POSTGRES_HOST",
    "postgres_port": "POSTGRES_PORT",
    "jedisos_db_url": "JEDISOS_DB_URL",
    "jedisos_db_schema": "JEDISOS_DB_SCHEMA",
    "pool_size": "JEDISOS_DB_POOL_SIZE",
    "max_overflow": "JEDISOS_DB_MAX_OVERFLOW",
    "statement_timeout_ms": "JEDISOS_DB_STATEMENT_TIMEOUT_MS",
    "connect_timeout_s": "JEDISOS_DB_CONNECT_TIMEOUT_S",
    "pool_timeout_s": "JEDISOS_DB_POOL_TIMEOUT_S",
    "application_name": "JEDISOS_DB_APPLICATION_NAME",
    "fernet_keys": "JEDISOS_FERNET_KEYS",
}


# Any of these set means the environment names a database by parts (the others are then required).
_COMPOSED_REQUIRED = ("postgres_user", "postgres_host", "postgres_db")


class DatabaseSettings(BaseSettings):
    """Only the variables that name the database: what a command needs to find its target."""

    # env_ignore_empty: `JEDISOS_DB_URL=` (set but empty) means unset, as it does for libpq's PG* variables.
    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", env_file=None,
                                      hide_input_in_errors=True, env_ignore_empty=True)

    postgres_user: str | None = Field(default=None, validation_alias="POSTGRES_USER")
    postgres_password: SecretStr | None = Field(default=None, validation_alias="POSTGRES_PASSWORD")
    postgres_db: str | None = Field(default=None, validation_alias="POSTGRES_DB")
    postgres_host: str | None = Field(default=None, validation_alias="POSTGRES_HOST")
    postgres_port: int = Field(default=5432, ge=1, le=65535, validation_alias="POSTGRES_PORT")
    jedisos_db_url: SecretStr | None = Field(default=None, validation_alias="JEDISOS_DB_URL")

    @property
    def names_database(self) -> bool:
        """True when ``JEDISOS_DB_URL`` or any of ``POSTGRES_USER``/``_HOST``/``_DB`` is set."""
        return self.jedisos_db_url is not None or any(getattr(self, name) for name in _COMPOSED_REQUIRED)

    @cached_property
    def database_url(self) -> DatabaseURL:
        """The URL of the jedisos database, validated once (it prints redacted; ``.libpq()`` has the password)."""
        if self.jedisos_db_url is not None:
            return urls.parse(self.jedisos_db_url.get_secret_value(), field="JEDISOS_DB_URL")
        for name in _COMPOSED_REQUIRED:
            if not getattr(self, name):
                raise ConfigError(ENV_NAMES[name], "is not set (and JEDISOS_DB_URL is not set either); "
                                                   "set JEDISOS_DB_URL or all POSTGRES_* variables")
        url = URL.create(
            "postgresql",
            username=self.postgres_user,
            password=self.postgres_password.get_secret_value() if self.postgres_password else None,
            host=self.postgres_host,
            port=self.postgres_port,
            database=self.postgres_db,
        )
        return urls.parse(url, field="POSTGRES_HOST")


class Settings(DatabaseSettings):
    """The jedisos data layer's settings; build it with :func:`load_settings`."""

    jedisos_db_schema: str = Field(default=SCHEMA, validation_alias="JEDISOS_DB_SCHEMA")
    # Section 1: create_async_engine(db_url, pool_size=5, max_overflow=10).
    pool_size: int = Field(default=5, ge=1, le=1000, validation_alias="JEDISOS_DB_POOL_SIZE")
    max_overflow: int = Field(default=10, ge=0, le=1000, validation_alias="JEDISOS_DB_MAX_OVERFLOW")
    # Every wait a caller can meet has a bound (issue 11): the server cancels a statement after
    # statement_timeout (0 = no limit, for migrations and retention); the client gives up on a server
    # that does not answer at all (SIGSTOP, black hole) after connect_timeout_s, or after the statement
    # timeout plus connect_timeout_s for a statement (see engine.py); pool_timeout_s bounds the wait
    # for a free pooled connection.
    statement_timeout_ms: int = Field(default=30_000, ge=0, le=MAX_WAIT_S * 1000,
                                      validation_alias="JEDISOS_DB_STATEMENT_TIMEOUT_MS")
    connect_timeout_s: float = Field(default=DEFAULT_CONNECT_TIMEOUT_S, gt=0, le=MAX_WAIT_S,
                                     validation_alias="JEDISOS_DB_CONNECT_TIMEOUT_S")
    pool_timeout_s: float = Field(default=DEFAULT_POOL_TIMEOUT_S, gt=0, le=MAX_WAIT_S,
                                  validation_alias="JEDISOS_DB_POOL_TIMEOUT_S")
    application_name: str = Field(default="jedisos-app", min_length=1, max_length=63,
                                  validation_alias="JEDISOS_DB_APPLICATION_NAME")
    fernet_keys: SecretStr | None = Field(default=None, validation_alias="JEDISOS_FERNET_KEYS")

    @property
    def db_schema(self) -> str:
        return self.jedisos_db_schema

    @property
    def command_timeout_s(self) -> float | None:
        """How long the client waits for any answer to a statement: the server's own limit plus one
        connect timeout (a server that cannot even cancel its statement by then is not answering).
        None with no statement limit: a migration may rightly run for hours."""
        return command_timeout(self.statement_timeout_ms, self.connect_timeout_s)

    def __repr__(self) -> str:
        # pydantic masks SecretStr already; the URL property is never part of the repr.
        return f"Settings(schema={self.db_schema!r}, pool_size={self.pool_size}, max_overflow={self.max_overflow})"


S = TypeVar("S", bound=DatabaseSettings)


def _build(cls: type[S], overrides: dict[str, Any]) -> S:
    """``cls`` from the environment plus ``overrides``; pydantic's errors become one :class:`ConfigError`."""
    try:
        return cls(**{ENV_NAMES.get(k, k): v for k, v in overrides.items()})
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = str(first["loc"][0]) if first["loc"] else "settings"
        name = ENV_NAMES.get(loc.lower(), loc.upper())
        raise ConfigError(name, first["msg"].lower()) from None


def command_timeout(statement_timeout_ms: int, connect_timeout_s: float) -> float | None:
    """The client's wait for any answer to a statement: the server's limit plus one connect timeout (the
    time to hear the server's own cancellation); None when statements have no limit (0)."""
    if statement_timeout_ms == 0:
        return None
    return statement_timeout_ms / 1000 + connect_timeout_s


def check_wait(field: str, seconds: float, *, zero_allowed: bool = False) -> float:
    """``seconds`` when it is a sane wait (> 0, or 0 when that means "no limit"; at most a day), else a
    :class:`ConfigError` naming ``field``: for timeouts given as arguments rather than settings."""
    low_ok = seconds >= 0 if zero_allowed else seconds > 0
    if not (low_ok and seconds <= MAX_WAIT_S):
        bound = ">= 0" if zero_allowed else "> 0"
        raise ConfigError(field, f"must be {bound} and at most {MAX_WAIT_S} seconds (a day); got {seconds}")
    return seconds


def env_database_url() -> DatabaseURL | None:
    """The database the environment names (``JEDISOS_DB_URL``, else section 8's ``POSTGRES_*``), or None.

    Only the URL's variables are read, so an unrelated bad setting does not stop a command that
    just needs its target.
    """
    names = _build(DatabaseSettings, {})
    return names.database_url if names.names_database else None


def load_settings(**overrides: Any) -> Settings:
    """Read the environment (plus ``overrides`` by field name); one :class:`ConfigError` on bad input."""
    settings = _build(Settings, overrides)
    if not _IDENTIFIER.match(settings.db_schema):
        raise ConfigError("JEDISOS_DB_SCHEMA", f"{settings.db_schema!r} is not a lower-case SQL identifier")
    if settings.fernet_keys is not None:
        # Parse now so a malformed key fails at startup, not at the first secret write.
        from jedisos_db.runtime.secrets import SecretCipher

        SecretCipher.from_string(settings.fernet_keys.get_secret_value(), field="JEDISOS_FERNET_KEYS")
    _ = settings.database_url  # fail at load time, naming the variable, not at first connect
    return settings
