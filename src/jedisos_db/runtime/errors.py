"""Typed errors. Each one renders as a single readable line; the CLI prints exactly that line."""

from __future__ import annotations


class JedisosDBError(Exception):
    """Base class for every error this package raises on purpose."""


class ConfigError(JedisosDBError):
    """A setting is missing or malformed. ``field`` names the variable or option."""

    def __init__(self, field: str, rule: str) -> None:
        self.field = field
        self.rule = rule
        super().__init__(f"{field}: {rule}")


class DatabaseUnavailableError(JedisosDBError):
    """The server could not be reached or started."""


class MissingExtensionError(JedisosDBError):
    """A required extension is neither installed nor installable by the current role."""


class DockerUnavailableError(JedisosDBError):
    """No Docker engine answers; the Docker source cannot be used."""


class MigrationError(JedisosDBError):
    """Alembic could not bring the schema to the requested revision."""
