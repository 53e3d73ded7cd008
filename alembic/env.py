"""Alembic environment for the ``jedisos`` schema (asyncpg, like the application).

- The version table is ``jedisos.schema_migrations``.
- Autogenerate only ever sees ``jedisos``: ``hindsight``, ``langgraph`` and ``public`` belong to
  others, so it must never propose touching them.
- Upgrades and downgrades run in one transaction behind an advisory lock, so two processes
  starting at once apply each revision once and both succeed. The lock is session-level and polled
  (``pg_try_advisory_lock``) outside any transaction: a revision that must build an index
  ``CONCURRENTLY`` (revision 010) commits inside its ``autocommit_block``, and a waiter that blocked in a
  statement would hold a snapshot that index build waits for, a cycle no deadlock detector sees.
"""

from __future__ import annotations

import asyncio
import functools
import time
from typing import Any

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import NullPool
from sqlalchemy.util import await_only

from jedisos_db.runtime import config as runtime_config
from jedisos_db.runtime.db.engine import create_engine
from jedisos_db.runtime.db.models import VIEW_INFO, Base
from jedisos_db.runtime.db.revision_columns import AUTOCOMMIT_BLOCKS
from jedisos_db.runtime.errors import ConfigError, LockTimeoutError
from jedisos_db.runtime.owners import MIGRATION_LOCK_KEY, SCHEMA
from jedisos_db.runtime.urls import DatabaseURL

config = context.config
target_metadata = Base.metadata
VERSION_TABLE = config.get_main_option("version_table") or "schema_migrations"


def _include_name_for(default_schema: str | None) -> Any:
    def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
        if type_ == "schema":
            # None is the connection's default schema: only ours when search_path starts with it.
            return (name or default_schema) == SCHEMA
        return True

    return include_name


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any,
                   partitions: frozenset[str] = frozenset(), partitioned: frozenset[str] = frozenset()) -> bool:
    if type_ == "table":
        if name == VERSION_TABLE:
            return False
        if getattr(obj, "info", {}).get("is_view") == VIEW_INFO["is_view"]:
            return False
    # A design's partitions (alembic/variants/partitioned) are storage of a modelled parent, not models.
    table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", None)
    if type_ == "index" and getattr(obj, "unique", False) and table in partitioned:
        return False  # widened by the partition keys, as PostgreSQL requires (p010's _fit_unique)
    return not (reflected and table in partitions)


PARTITIONS_SQL = f"""SELECT c.relname FROM pg_class c
                     WHERE c.relispartition AND c.relnamespace = to_regnamespace('{SCHEMA}')"""
PARTITIONED_SQL = f"""SELECT c.relname FROM pg_class c
                      WHERE c.relkind = 'p' AND NOT c.relispartition AND c.relnamespace = to_regnamespace('{SCHEMA}')"""


def _configure(default_schema: str | None = None, partitions: frozenset[str] = frozenset(),
               partitioned: frozenset[str] = frozenset(), **kwargs: Any) -> None:
    context.configure(
        target_metadata=config.attributes.get("target_metadata") or target_metadata,
        version_table=VERSION_TABLE,
        version_table_schema=SCHEMA,
        include_schemas=True,
        include_name=_include_name_for(default_schema),
        include_object=functools.partial(include_object, partitions=partitions, partitioned=partitioned),
        compare_type=True,
        compare_server_default=True,
        # migrations.upgrade() counts the steps that ran, to name the one that failed.
        on_version_apply=config.attributes.get("on_version_apply"),
        **kwargs,
    )


LOCK_WAIT_SECONDS = 900.0
"""How long a run waits for another run's migrations before it gives up (LockTimeoutError)."""
LOCK_POLL_SECONDS = (0.01, 0.5)
"""First and longest pause between two tries of the lock (doubling in between)."""


def _take_migration_lock(connection: Connection) -> None:
    """The session-level migration lock, polled: between tries this connection holds no snapshot."""
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    pause, longest = LOCK_POLL_SECONDS
    while True:
        got = connection.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": MIGRATION_LOCK_KEY}).scalar_one()
        connection.commit()
        if got:
            return
        if time.monotonic() > deadline:
            raise LockTimeoutError(f"another migration run held the migration lock for more than "
                                   f"{LOCK_WAIT_SECONDS:.0f} s; try again when it has finished")
        await_only(asyncio.sleep(pause))
        pause = min(pause * 2, longest)


def do_run_migrations(connection: Connection) -> None:
    # Asked before the catalog read below begins a transaction of its own.
    handed_over = connection.in_transaction()
    partitions = frozenset(str(n) for n in connection.execute(text(PARTITIONS_SQL)).scalars())
    partitioned = frozenset(str(n) for n in connection.execute(text(PARTITIONED_SQL)).scalars())
    if not handed_over:
        connection.commit()
    _configure(default_schema=connection.dialect.default_schema_name, partitions=partitions,
               partitioned=partitioned, connection=connection)
    # A revision may commit half-way (an autocommit block, for CREATE INDEX CONCURRENTLY) only when this file
    # owns the transaction; see AUTOCOMMIT_BLOCKS.
    config.attributes[AUTOCOMMIT_BLOCKS] = not handed_over
    if handed_over:
        # Handed over inside the caller's transaction (pytest-alembic): the lock may not commit it.
        connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
        _migrate(connection)
        return
    # Taken before Alembic reads the version table: a second process waits here and then finds the
    # revisions already applied. Closing the connection (NullPool) releases it too, whatever happens.
    _take_migration_lock(connection)
    try:
        _migrate(connection)
    finally:
        connection.rollback()
        connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK_KEY})
        connection.commit()


def _migrate(connection: Connection) -> None:
    with context.begin_transaction():
        # Only when missing: CREATE SCHEMA checks the database CREATE right even with IF NOT EXISTS,
        # and the least-privilege jedisos_app owns its schema but may not create schemas.
        connection.execute(text(
            f"DO $$ BEGIN IF to_regnamespace('{SCHEMA}') IS NULL THEN CREATE SCHEMA \"{SCHEMA}\"; END IF; END $$"
        ))
        context.run_migrations()


def _url() -> DatabaseURL:
    """The URL handed over by ``jedisos_db.runtime.db.migrations``, else the environment's.

    From the environment it is the data layer's own resolution (``JEDISOS_DB_URL``, else the
    section-8 ``POSTGRES_*`` parts), never the embedded server: a bare ``alembic upgrade`` must
    not start a database of its own.
    """
    handed: DatabaseURL | None = config.attributes.get("url")
    if handed is not None:
        return handed
    url = runtime_config.env_database_url()
    if url is None:
        raise ConfigError("JEDISOS_DB_URL", "is not set (nor POSTGRES_USER/POSTGRES_HOST/POSTGRES_DB); "
                                            "set it, or call jedisos_db.runtime.db.migrations with a URL")
    return url


async def run_async_migrations(engine: AsyncEngine | None = None) -> None:
    owned = engine is None
    if engine is None:
        # NullPool: a migration run holds one connection and ends; statement_timeout 0 because a
        # revision that builds an index on a large table may rightly take longer than the app's limit.
        engine = create_engine(url=_url(), poolclass=NullPool, application_name="jedisos-db-migrations",
                               statement_timeout_ms=0)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(do_run_migrations)
            await connection.commit()
    finally:
        if owned:
            await engine.dispose()


def run_migrations_offline() -> None:
    _configure(url=_url().asyncpg(), literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
elif isinstance(config.attributes.get("connection"), AsyncEngine):
    # pytest-alembic hands over the async engine under test for commands ...
    asyncio.run(run_async_migrations(config.attributes["connection"]))
elif isinstance(config.attributes.get("connection"), Connection):
    # ... a live sync connection for some of its checks ...
    do_run_migrations(config.attributes["connection"])
elif config.attributes.get("connection") is not None:
    # ... and an engine-like wrapper around one for others.
    with config.attributes["connection"].connect() as connection:
        do_run_migrations(connection)
else:
    asyncio.run(run_async_migrations())
