"""Database URLs: one libpq-style URL in, the driver-specific forms out.

Users give a libpq URL (``postgresql://user:pw@host:5432/db`` or the unix-socket form
``postgresql://user@/db?host=/run/postgresql``). SQLAlchemy wants ``postgresql+asyncpg://``,
psycopg and libpq tools want the plain form. Keeping the conversion in one place means
every entry point (CLI, tests, Alembic's env.py) accepts exactly the same inputs.
"""

from __future__ import annotations

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from jedisos_db.runtime.errors import ConfigError

_ACCEPTED_SCHEMES = {"postgresql", "postgres", "postgresql+asyncpg", "postgresql+psycopg"}


def parse(url: str, *, field: str = "--dsn") -> URL:
    """Parse and validate ``url``; raise :class:`ConfigError` naming ``field`` when it is unusable."""
    if not url or not url.strip():
        raise ConfigError(field, "is empty; expected postgresql://user:password@host:port/dbname")
    try:
        parsed = make_url(url.strip())
    except ArgumentError as exc:
        raise ConfigError(
            field, f"is not a database URL ({exc}); expected postgresql://user@host/db"
        ) from None
    if parsed.drivername not in _ACCEPTED_SCHEMES:
        raise ConfigError(
            field,
            f"scheme {parsed.drivername!r} is not PostgreSQL; expected one of postgresql://, "
            "postgresql+asyncpg://, postgresql+psycopg://",
        )
    if not parsed.database:
        raise ConfigError(field, "names no database; add /dbname to the URL")
    if not parsed.host and "host" not in parsed.query:
        raise ConfigError(field, "names no host; give host[:port] or ?host=/socket/dir")
    return parsed


def to_asyncpg(url: str | URL) -> URL:
    """The SQLAlchemy URL for the asyncpg driver (what the jedisos engine and Alembic use)."""
    parsed = url if isinstance(url, URL) else parse(url)
    return parsed.set(drivername="postgresql+asyncpg")


def to_psycopg(url: str | URL) -> URL:
    """The SQLAlchemy URL for psycopg 3 (sync admin work, LangGraph)."""
    parsed = url if isinstance(url, URL) else parse(url)
    return parsed.set(drivername="postgresql+psycopg")


def to_libpq(url: str | URL) -> str:
    """A plain libpq connection string, usable by psycopg.connect, psql, pg_dump and Hindsight."""
    parsed = url if isinstance(url, URL) else parse(url)
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def with_database(url: str | URL, database: str) -> URL:
    """The same server, another database."""
    parsed = url if isinstance(url, URL) else parse(url)
    return parsed.set(database=database)


def redact(url: str | URL) -> str:
    """The URL with its password masked, for logs and output."""
    parsed = url if isinstance(url, URL) else make_url(url)
    if not parsed.password:  # "postgres:@" means no password; don't suggest one was hidden
        parsed = parsed._replace(password=None)  # URL.set() treats None as "unchanged"
    return parsed.render_as_string(hide_password=True)
