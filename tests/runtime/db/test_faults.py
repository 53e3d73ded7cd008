"""Connection faults are one typed error on every path (issue 11 point 3): the classifier, the engine,
the psycopg connect, the LangGraph pool; and a failed migration names its revision and changes nothing.

The server-side faults (killed backends, crash restarts, a hung server) are in tests/ops/test_faults.py.
"""

from __future__ import annotations

import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import psycopg
import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import text

from jedisos_db.runtime import checkpointer, urls
from jedisos_db.runtime.config import DEFAULT_CONNECT_TIMEOUT_S, Settings, load_settings
from jedisos_db.runtime.db import faults, migrations
from jedisos_db.runtime.db.connect import connect
from jedisos_db.runtime.db.engine import create_engine
from jedisos_db.runtime.errors import AuthenticationError, DatabaseUnavailableError, MigrationError
from jedisos_db.runtime.repositories.audit import AuditLogRepository
from jedisos_db.runtime.urls import DatabaseURL
from tests.plugins.databases import DatabaseFactory

GONE_SOCKET = urls.parse("postgresql://u@/db?host=/nonexistent-jedisos-socket-dir")


def test_retryable() -> None:
    assert DatabaseUnavailableError.retryable is True


@pytest.mark.parametrize("error", [
    FileNotFoundError(2, "No such file or directory"),
    ConnectionRefusedError(111, "refused"),
    TimeoutError(),
    asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    asyncpg.CannotConnectNowError("the database system is starting up"),
    asyncpg.InterfaceError("cannot perform operation: another operation is in progress"),
    asyncpg.InternalClientError("cannot switch to state 12; another operation (2) is in progress"),
    psycopg.OperationalError("connection failed"),
    sa_exc.TimeoutError("QueuePool limit of size 5 overflow 10 reached"),
    sa_exc.DBAPIError("SELECT 1", None, Exception("x"), connection_invalidated=True),
])
def test_connection_faults_are_recognised(error: Exception) -> None:
    assert faults.is_connection_fault(error)
    wrapped = sa_exc.DBAPIError("SELECT 1", None, RuntimeError("adapter"))
    wrapped.orig.__cause__ = error  # type: ignore[union-attr]  # what SQLAlchemy's asyncpg adapter builds
    assert faults.is_connection_fault(wrapped)


@pytest.mark.parametrize("error", [
    ValueError("bad"),
    asyncpg.UniqueViolationError("duplicate key"),
    asyncpg.QueryCanceledError("canceling statement due to statement timeout"),
    asyncpg.InterfaceError("the server expects 1 argument for this query, 2 were passed"),
    psycopg.errors.DeadlockDetected("deadlock detected"),  # an OperationalError, but the server answered
    sa_exc.DBAPIError("SELECT 1", None, Exception("x"), connection_invalidated=False),
])
def test_server_answers_are_not_connection_faults(error: Exception) -> None:
    assert not faults.is_connection_fault(error)


@pytest.mark.parametrize("error", [
    asyncpg.InvalidPasswordError('password authentication failed for user "app"'),
    asyncpg.InvalidAuthorizationSpecificationError('role "app" does not exist'),
    psycopg.OperationalError('connection failed: connection to server on socket "/s/.s.PGSQL.5432" failed: '
                             'FATAL:  password authentication failed for user "app"'),
    psycopg.OperationalError('connection failed: ... failed: FATAL:  no pg_hba.conf entry for host "10.0.0.1", '
                             'user "app", database "db", no encryption'),
    psycopg.OperationalError("connection failed: ... fe_sendauth: no password supplied"),
])
def test_refused_credentials_are_not_connection_faults(error: Exception) -> None:
    """A refusal is final (AuthenticationError, not retryable), where a fault is worth retrying."""
    assert faults.is_auth_failure(error)
    assert not faults.is_connection_fault(error)
    with (pytest.raises(AuthenticationError, match=r"^authentication failed: postgresql://app:\*\*\*@h/db refused "
                                                   r"role app: .*; fix the credentials") as info,
          faults.translating(urls.parse("postgresql://app:s3cret@h/db"), faults.CONNECTING)):
        raise error
    assert info.value.user == "app"
    assert not info.value.retryable
    assert info.value.__cause__ is None  # psycopg keeps the attempt, password included, on the error
    assert "s3cret" not in str(info.value)


def test_a_bare_timeout_still_says_what_happened() -> None:
    error = faults.unavailable(GONE_SOCKET, faults.CONNECTING, 1.25, TimeoutError())
    assert str(error) == ("database unavailable: cannot connect to postgresql://u@/db?host="
                          "%2Fnonexistent-jedisos-socket-dir (after 1.2 s): TimeoutError (no message)")


def test_translating_keeps_other_errors_and_the_cause() -> None:
    with pytest.raises(KeyError), faults.translating(GONE_SOCKET, "reading"):
        raise KeyError("not a fault")
    with (pytest.raises(DatabaseUnavailableError, match=r"^database unavailable: lost .* while reading "
                                                        r"\(after 0\.\d s\): ConnectionResetError: .*reset") as info,
          faults.translating(GONE_SOCKET, "reading")):
        raise ConnectionResetError(104, "reset")
    assert isinstance(info.value.__cause__, ConnectionResetError)


async def test_engine_connect_to_a_vanished_socket_is_typed() -> None:
    """Used to be a bare FileNotFoundError from asyncpg."""
    engine = create_engine(url=GONE_SOCKET)
    try:
        with pytest.raises(DatabaseUnavailableError,
                           match=r"^database unavailable: cannot connect to .*nonexistent.*FileNotFoundError"):
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        with pytest.raises(DatabaseUnavailableError):  # the repositories' path too
            await AuditLogRepository(engine).record_many([{"event_type": "e"}])
    finally:
        await engine.dispose()


@pytest.fixture
def silent_listener() -> Iterator[DatabaseURL]:
    """A TCP port that accepts connections and never answers: a black hole, as far as a client can tell."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield urls.parse(f"postgresql://u@127.0.0.1:{listener.getsockname()[1]}/db")


async def test_a_server_that_never_answers_is_typed_within_the_connect_timeout(silent_listener: DatabaseURL) -> None:
    """Used to wait 60 s and end in a bare TimeoutError with an empty message."""
    engine = create_engine(url=silent_listener, connect_timeout_s=0.5)
    started = time.monotonic()
    try:
        with pytest.raises(DatabaseUnavailableError, match=r"cannot connect to postgresql://u@127\.0\.0\.1:\d+/db "
                                                           r"\(after 0\.\d s\): TimeoutError"):
            async with engine.connect():
                pass
    finally:
        await engine.dispose()
    assert time.monotonic() - started < 0.5 + 2


def test_psycopg_connect_is_typed_within_its_timeout(silent_listener: DatabaseURL) -> None:
    started = time.monotonic()
    with pytest.raises(DatabaseUnavailableError, match=r"^database unavailable: cannot connect to .*127\.0\.0\.1"):
        connect(silent_listener, connect_timeout=2)
    assert time.monotonic() - started < 2 + 2
    with pytest.raises(DatabaseUnavailableError, match="nonexistent"):
        connect(GONE_SOCKET)


async def test_langgraph_pool_faults_are_typed() -> None:
    """Used to be psycopg's OperationalError / PoolTimeout."""
    sizing = checkpointer.PoolSizing(timeout=1.0, connect_timeout=1.0)
    pool = checkpointer.async_pool(GONE_SOCKET, sizing=sizing)
    with pytest.raises(DatabaseUnavailableError, match=r"^database unavailable: cannot connect to .*nonexistent"):
        await pool.open(wait=True, timeout=1.0)
    await pool.close()


def test_timeouts_come_from_the_settings() -> None:
    settings = load_settings(jedisos_db_url="postgresql://u@h/db", statement_timeout_ms=2000, connect_timeout_s=3)
    assert settings.command_timeout_s == 5.0
    assert settings.pool_timeout_s == 30.0
    assert checkpointer.PoolSizing().connect_timeout == DEFAULT_CONNECT_TIMEOUT_S == Settings.model_fields[
        "connect_timeout_s"].default
    engine = create_engine(settings, url=GONE_SOCKET)
    assert engine.pool.timeout() == 30.0  # type: ignore[attr-defined]  # QueuePool's checkout wait


# --- a failed migration: all or nothing, and it names the revision ----------------------------------

BROKEN = '''"""a revision that fails half-way

Revision ID: {revision}
Revises: {down}
"""

from alembic import op

revision = "{revision}"
down_revision = "{down}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE TABLE jedisos.half_done (id int)")
    op.execute("ALTER TABLE jedisos.no_such_table ADD COLUMN x int")


def downgrade() -> None:
    op.execute("DROP TABLE jedisos.half_done")
'''


def _scripts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, real_010: bool) -> Path:
    """Our revisions plus a broken one after them, in a temporary script directory the runner is pointed at:
    after 009 in place of the real 010, or after the real 010 as 011."""
    scripts = tmp_path / "alembic"
    ignored = ["__pycache__"] if real_010 else ["__pycache__", "010_add_event_idempotency_keys.py"]
    shutil.copytree(migrations.script_location(), scripts, ignore=shutil.ignore_patterns(*ignored))
    revision, down = ("011", "010") if real_010 else ("010", "009")
    (scripts / "versions" / f"{revision}_broken.py").write_text(BROKEN.format(revision=revision, down=down))
    monkeypatch.setattr(migrations, "script_location", lambda: scripts)
    return scripts


@pytest.fixture
def broken_scripts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Our revisions up to 009 plus a broken 010: every step of the run is in one transaction."""
    return _scripts(tmp_path, monkeypatch, real_010=False)


@pytest.fixture
def broken_after_010(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Our revisions, the real 010 included (it commits part-way: CREATE INDEX CONCURRENTLY), then a broken 011."""
    return _scripts(tmp_path, monkeypatch, real_010=True)


def _tables(url: DatabaseURL) -> set[str]:
    with connect(url) as conn:
        return {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'jedisos'")}


@pytest.mark.faults
def test_a_migration_failing_half_way_names_its_revision_and_changes_nothing(
        database_factory: DatabaseFactory, broken_scripts: Path) -> None:
    url = database_factory("broken_migration")
    migrations.upgrade(url, "006")
    before = _tables(url)
    with pytest.raises(MigrationError) as info:
        migrations.upgrade(url, "head")  # 007, 008, 009 succeed inside the transaction, then 010 fails
    message = str(info.value)
    assert message.startswith("upgrade to head failed at revision 010 (a revision that fails half-way): ")
    assert 'relation "jedisos.no_such_table" does not exist' in message
    assert message.endswith("the schema is unchanged (still at 006)")
    assert "\n" not in message
    assert migrations.current(url) == "006"
    assert _tables(url) == before  # neither 010's first table nor 007-009's objects
    assert "half_done" not in _tables(url)


def _idempotency_indexes(url: DatabaseURL) -> dict[str, bool]:
    with connect(url) as conn:
        rows = conn.execute("SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                            "WHERE c.relname LIKE '%%idempotency_key' AND c.relnamespace = 'jedisos'::regnamespace")
        return {name: valid for name, valid in rows}


def _columns(url: DatabaseURL, table: str) -> set[str]:
    with connect(url) as conn:
        return {r[0] for r in conn.execute("SELECT column_name FROM information_schema.columns "
                                           "WHERE table_schema = 'jedisos' AND table_name = %s", [table])}


@pytest.mark.faults
def test_a_run_failing_after_010_says_what_it_committed_and_the_catalog_agrees(
        database_factory: DatabaseFactory, broken_after_010: Path) -> None:
    """010 builds its indexes CONCURRENTLY, outside any transaction, so a run across it cannot be all or
    nothing; it used to say "the schema is unchanged (still at 006)" while 007-010 had partly committed
    (the version table at 009 with 010's column and indexes in place)."""
    url = database_factory("broken_after_010")
    migrations.upgrade(url, "006")
    tables_at_006 = _tables(url)
    with pytest.raises(MigrationError) as info:
        migrations.upgrade(url, "head")  # 007-009 commit, then 010 alone, then 011 fails
    message = str(info.value)
    assert message.startswith("upgrade to head failed at revision 011 (a revision that fails half-way): ")
    assert "revisions 007, 008, 009, 010 were applied and committed before it" in message
    assert "its own steps were rolled back" in message
    assert message.endswith("the schema is at revision 010")
    assert "unchanged" not in message
    assert "\n" not in message
    # The catalog is what the message says: exactly revision 010, nothing of 011.
    assert migrations.current(url) == "010"
    assert "idempotency_key" in _columns(url, "audit_logs") & _columns(url, "cost_tracking")
    assert _idempotency_indexes(url) == {"idx_audit_idempotency_key": True, "idx_cost_idempotency_key": True}
    assert "half_done" not in _tables(url)
    assert _tables(url) > tables_at_006  # 007-009's objects stayed
    with pytest.raises(MigrationError, match=r"failed at revision 011 .*the schema is unchanged \(still at 010\)$"):
        migrations.upgrade(url, "head")  # the rerun starts at 010: one leg, all or nothing again


@pytest.mark.faults
def test_a_run_failing_before_010_stays_all_or_nothing(database_factory: DatabaseFactory,
                                                       broken_after_010: Path) -> None:
    url = database_factory("broken_before_010")
    migrations.upgrade(url, "006")
    before = _tables(url)
    (broken_after_010 / "versions" / "011_broken.py").unlink()
    nine = next((broken_after_010 / "versions").glob("009_*.py"))
    failing = "def upgrade() -> None:\n    op.execute('SELECT no_such_function()')\n"
    nine.write_text(nine.read_text().replace("def upgrade() -> None:\n", failing, 1))
    with pytest.raises(MigrationError) as info:
        migrations.upgrade(url, "head")  # the first leg (007-009) fails: 010 never starts
    assert str(info.value).startswith("upgrade to head failed at revision 009 ")
    assert str(info.value).endswith("the schema is unchanged (still at 006)")
    assert migrations.current(url) == "006"
    assert _tables(url) == before
    assert "idempotency_key" not in _columns(url, "audit_logs")
