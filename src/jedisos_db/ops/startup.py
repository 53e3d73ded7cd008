"""Bring a database to the state the design's start-up order leaves it in (section 1, "migration order";
claims ``S1-migration-order`` and ``S1-any-order`` in docs/design-claims.md).

1. PostgreSQL running, ``vector`` installed in ``public``;
2. Hindsight's own migrations into schema ``hindsight`` (only when Hindsight is installed);
3. LangGraph's ``setup()`` into schema ``langgraph``;
4. the jedisos schema migrated to head by Alembic.

Each owner's step goes through that owner's own entry point; this module never issues SQL
against ``hindsight`` or ``langgraph``. Idempotent: a second run finds everything in place and
every step reports ``unchanged``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import psycopg

from jedisos_db.ops import catalog, provision
from jedisos_db.runtime.db import migrations
from jedisos_db.runtime.db.connect import connect
from jedisos_db.runtime.errors import ConfigError, LockTimeoutError
from jedisos_db.runtime.owners import HINDSIGHT_SCHEMA, LANGGRAPH_SCHEMA, OWNERS, STARTUP_LOCK_KEY
from jedisos_db.runtime.urls import DatabaseURL

DESIGN_ORDER: tuple[str, ...] = OWNERS
DEFAULT_LOCK_TIMEOUT = 600.0
"""Seconds a run waits for a concurrent one to finish (Hindsight's migrations of a fresh database take a while)."""
LOCK_POLL_SECONDS = 0.2

Status = Literal["applied", "unchanged", "skipped"]


@dataclass(frozen=True)
class StartupStep:
    name: str
    status: Status
    detail: str


@dataclass(frozen=True)
class StartupReport:
    url: DatabaseURL
    embedded: bool
    server: provision.ServerInfo
    revision_before: str | None
    revision: str | None
    stages: list[StartupStep] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return any(stage.status == "applied" for stage in self.stages)


def _module_available(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


def step_extension(url: DatabaseURL) -> StartupStep:
    with connect(url) as conn:
        had = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone() is not None
    provision.bootstrap(url)
    return StartupStep("extension", "unchanged" if had else "applied", "vector in public, schema jedisos")


def step_hindsight(url: DatabaseURL) -> StartupStep:
    """Hindsight's own Alembic migrations, through its entry point (``jedisos_db.harness.hindsight.server``)."""
    from jedisos_db.ops import hindsight as server

    if not server.is_installed():
        return StartupStep("hindsight", "skipped",
                           f"hindsight-api-slim is not installed for {server.hindsight_python()} "
                           f"(pip install 'jedisos-db[hindsight]' or set {server.ENV_PYTHON})")
    # The catalog (pg_catalog only) tells whether the migrations changed anything.
    before = catalog.snapshot(url, HINDSIGHT_SCHEMA)
    run = server.run_migrations(url, schema=HINDSIGHT_SCHEMA)
    after = catalog.snapshot(url, HINDSIGHT_SCHEMA)
    tables = sum(1 for kind, _ in after if kind == "relation")
    status: Status = "unchanged" if before == after else "applied"
    return StartupStep("hindsight", status, f"schema {HINDSIGHT_SCHEMA}: {tables} relations ({run.seconds:.1f} s)")


def step_langgraph(url: DatabaseURL) -> StartupStep:
    if not _module_available("langgraph.checkpoint.postgres"):
        return StartupStep("langgraph", "skipped",
                           "langgraph-checkpoint-postgres is not installed (pip install 'jedisos-db[langgraph]')")
    from jedisos_db.runtime import checkpointer

    before, after = checkpointer.setup(url, schema=LANGGRAPH_SCHEMA)
    status: Status = "unchanged" if before == after else "applied"
    return StartupStep("langgraph", status,
                       f"schema {LANGGRAPH_SCHEMA}: checkpoint migration {before if before is not None else 'none'}"
                       f" -> {after}")


def step_jedisos(url: DatabaseURL) -> StartupStep:
    before = migrations.current(url)
    migrations.upgrade(url, "head")
    after = migrations.current(url)
    status: Status = "unchanged" if before == after else "applied"
    return StartupStep("jedisos", status, f"schema jedisos: revision {before or 'base'} -> {after}")


OWNER_STEPS: dict[str, Callable[[DatabaseURL], StartupStep]] = {
    "hindsight": step_hindsight,
    "langgraph": step_langgraph,
    "jedisos": step_jedisos,
}


@contextlib.contextmanager
def serialised(url: DatabaseURL, *, timeout: float = DEFAULT_LOCK_TIMEOUT) -> Iterator[None]:
    """Hold the start-up lock for the block: concurrent runs on one database take turns, end to end.

    A session-level advisory lock on a dedicated connection, so it spans every owner's step, whatever
    connections (or processes, for Hindsight) those use; LangGraph's setup() takes no lock of its own.
    Raises :class:`LockTimeoutError` when another run holds it longer than ``timeout`` seconds.
    """
    if timeout <= 0:
        raise ConfigError("lock_timeout", f"must be a positive number of seconds, got {timeout}")
    with connect(url, application_name="jedisos-db-startup") as conn:
        # Polled with pg_try_advisory_lock, not waited for in pg_advisory_lock: a waiting statement holds a
        # snapshot, and LangGraph's CREATE INDEX CONCURRENTLY in the holder's run waits for every older
        # snapshot in the database, a cycle PostgreSQL's deadlock detector cannot see (it spans the client).
        deadline = time.monotonic() + timeout
        while conn.execute("SELECT pg_try_advisory_lock(%s)", [STARTUP_LOCK_KEY]).fetchone() != (True,):
            if time.monotonic() > deadline:
                raise LockTimeoutError(f"another `up` on {url} held the start-up lock for more than {timeout:.0f} s;"
                                       " try again when it has finished")
            time.sleep(LOCK_POLL_SECONDS)
        try:
            yield
        finally:  # closing the connection would release it too; this keeps a pooled server tidy
            with contextlib.suppress(psycopg.Error):
                conn.execute("SELECT pg_advisory_unlock(%s)", [STARTUP_LOCK_KEY])


def run_steps(url: DatabaseURL, order: Sequence[str] = DESIGN_ORDER, *,
              owner_urls: Mapping[str, DatabaseURL] | None = None,
              lock_timeout: float = DEFAULT_LOCK_TIMEOUT) -> list[StartupStep]:
    """The extension first, then the owners' own migrations in ``order`` (any order works), all under
    :func:`serialised`.

    ``owner_urls`` runs each owner's step under its own role (``jedisos-db roles``); owners
    missing from it use ``url``.
    """
    with serialised(url, timeout=lock_timeout):
        return _run_steps(url, order, owner_urls)


def _run_steps(url: DatabaseURL, order: Sequence[str],
               owner_urls: Mapping[str, DatabaseURL] | None) -> list[StartupStep]:
    if sorted(order) != sorted(OWNERS):
        raise ConfigError("order", f"must name each of {', '.join(OWNERS)} once, got {list(order)}")
    per_owner = dict(owner_urls or {})
    unknown = set(per_owner) - set(OWNERS)
    if unknown:
        raise ConfigError("owner_urls", f"unknown owner(s) {sorted(unknown)}; expected {', '.join(OWNERS)}")
    return [step_extension(per_owner.get("jedisos", url)),
            *(OWNER_STEPS[owner](per_owner.get(owner, url)) for owner in order)]


def up(dsn: DatabaseURL | str | None = None, *, data_dir: Path | None = None,
       settings: provision.ServerSettings | None = None,
       start_timeout: float = provision.DEFAULT_START_TIMEOUT, progress: provision.Progress | None = None,
       lock_timeout: float = DEFAULT_LOCK_TIMEOUT) -> StartupReport:
    """Run the design's start-up order on :func:`~jedisos_db.ops.provision.resolve_target`'s database
    (``dsn``, ``$JEDISOS_DB_URL``, ``POSTGRES_*``, else the embedded server, started or reused,
    waiting up to ``start_timeout`` seconds for it). Concurrent runs take turns (:func:`serialised`)."""
    given = provision.given_target(dsn)
    url = given or provision.embedded_target(data_dir, settings, start_timeout=start_timeout, progress=progress)
    embedded = given is None
    with serialised(url, timeout=lock_timeout):
        before = migrations.current(url)
        stages = _run_steps(url, DESIGN_ORDER, None)
        after = migrations.current(url)
    return StartupReport(
        url=url,
        embedded=embedded,
        server=provision.server_info(url),
        revision_before=before,
        revision=after,
        stages=stages,
    )
