"""Revision 010 (idempotency keys) on filled tables: no rewrite, the index built CONCURRENTLY while writes go
on, and its downgrade leaves 009's catalog exactly."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from jedisos_db.ops import catalog
from jedisos_db.runtime.db import migrations
from jedisos_db.runtime.db.connect import connect
from jedisos_db.runtime.owners import SCHEMA
from jedisos_db.runtime.urls import DatabaseURL
from tests.plugins.databases import DatabaseFactory

ROWS = 100_000
TABLES = ("audit_logs", "cost_tracking")
WAIT = 60.0


@pytest.fixture
def filled_at_009(database_factory: DatabaseFactory) -> DatabaseURL:
    url = database_factory("rev010")
    migrations.upgrade(url, "009")
    with connect(url) as conn:
        conn.execute(f"""INSERT INTO {SCHEMA}.cost_tracking (timestamp, model, provider, source, cost_usd, user_id)
                         SELECT now() - make_interval(mins => g), 'm' || g % 5, 'p', 'agent', (g % 1000) / 1e6,
                                'u' || g % 40
                         FROM generate_series(1, {ROWS}) AS g""")
        conn.execute(f"""INSERT INTO {SCHEMA}.audit_logs (timestamp, event_type, user_id, details)
                         SELECT now() - make_interval(mins => g), 'tool_executed', 'u' || g % 40,
                                jsonb_build_object('n', g)
                         FROM generate_series(1, {ROWS}) AS g""")
    return url


def _filenodes(conn: psycopg.Connection[tuple[object, ...]]) -> list[object]:
    return [conn.execute(f"SELECT pg_relation_filenode('{SCHEMA}.{t}')").fetchone() for t in TABLES]


def test_upgrade_on_filled_tables_lets_writers_through_while_the_index_builds(filled_at_009: DatabaseURL) -> None:
    """A reader's open snapshot holds CREATE INDEX CONCURRENTLY in its wait phase; meanwhile an INSERT into the
    table being indexed completes (with lock_timeout 2 s: it never queued behind the build). Nothing rewritten."""
    url = filled_at_009
    with connect(url) as conn:
        before = _filenodes(conn)
    failure: list[BaseException] = []

    def upgrade() -> None:
        try:
            migrations.upgrade(url, "010")
        except BaseException as exc:  # handed to the test thread
            failure.append(exc)

    with connect(url, autocommit=False) as reader, connect(url) as writer, connect(url) as watcher:
        reader.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        reader.execute("SELECT 1").fetchone()  # a snapshot, and no lock on the tables (ADD COLUMN would wait)
        thread = threading.Thread(target=upgrade)
        thread.start()
        deadline = time.monotonic() + WAIT
        while not watcher.execute("SELECT 1 FROM pg_stat_progress_create_index WHERE relid = %s::regclass",
                                  [f"{SCHEMA}.audit_logs"]).fetchone():
            assert thread.is_alive(), f"the upgrade ended without building the index: {failure}"
            assert time.monotonic() < deadline, "the index build never started"
        writer.execute("SET lock_timeout = '2s'")
        started = time.monotonic()
        writer.execute(f"INSERT INTO {SCHEMA}.audit_logs (event_type) VALUES ('during the build')")
        took = time.monotonic() - started
        still_building = watcher.execute("SELECT phase FROM pg_stat_progress_create_index WHERE relid = %s::regclass",
                                         [f"{SCHEMA}.audit_logs"]).fetchone()
        reader.rollback()
        thread.join(WAIT)
    assert not failure, failure
    assert still_building is not None, "the insert was not concurrent with the build"
    print(f"\n[rev010] insert during the index build ({still_building[0]}): {took * 1000:.1f} ms")
    assert took < 2
    assert migrations.current(url) == "010"
    with connect(url) as conn:
        assert _filenodes(conn) == before  # ADD COLUMN of a nullable column without default: no rewrite
        valid = conn.execute("SELECT indexrelid::regclass::text, indisvalid, indisunique FROM pg_index "
                             "WHERE indexrelid::regclass::text LIKE %s ORDER BY 1", [f"{SCHEMA}.idx_%idempotency%"]
                             ).fetchall()
        assert valid == [(f"{SCHEMA}.idx_audit_idempotency_key", True, True),
                         (f"{SCHEMA}.idx_cost_idempotency_key", True, True)]
        assert conn.execute(f"SELECT count(*) FROM {SCHEMA}.audit_logs").fetchone() == (ROWS + 1,)


def test_a_rerun_after_a_failed_build_finishes_the_job(filled_at_009: DatabaseURL) -> None:
    """The state a failed run leaves (its ADD COLUMN committed by the autocommit block, then an INVALID index
    from a build that failed): the rerun keeps the column and rebuilds the index; IF NOT EXISTS alone would keep
    the invalid one."""
    url = filled_at_009
    index = f"{SCHEMA}.idx_audit_idempotency_key"
    with connect(url) as conn:
        conn.execute(f"ALTER TABLE {SCHEMA}.audit_logs ADD COLUMN idempotency_key varchar(255)")
        conn.execute(f"INSERT INTO {SCHEMA}.audit_logs (event_type, idempotency_key) VALUES ('a', 'k'), ('b', 'k')")
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(f"CREATE UNIQUE INDEX CONCURRENTLY idx_audit_idempotency_key ON {SCHEMA}.audit_logs "
                         "(idempotency_key) WHERE idempotency_key IS NOT NULL")
        assert conn.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = %s::regclass", [index]
                            ).fetchone() == (False,)
        conn.execute(f"DELETE FROM {SCHEMA}.audit_logs WHERE event_type = 'b'")
    migrations.upgrade(url, "010")
    assert migrations.current(url) == "010"
    with connect(url) as conn:
        assert conn.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = %s::regclass", [index]
                            ).fetchone() == (True,)
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(f"INSERT INTO {SCHEMA}.audit_logs (event_type, idempotency_key) VALUES ('again', 'k')")


def test_downgrade_restores_009s_catalog_exactly(filled_at_009: DatabaseURL) -> None:
    at_009 = catalog.snapshot(filled_at_009, SCHEMA)
    migrations.upgrade(filled_at_009, "010")
    added = set(catalog.snapshot(filled_at_009, SCHEMA)) - set(at_009)
    assert {kind for kind, _ in added} >= {"index"}
    migrations.downgrade(filled_at_009, "009")
    assert catalog.diff(at_009, catalog.snapshot(filled_at_009, SCHEMA)).render() == "catalogs are identical"
    with connect(filled_at_009) as conn:
        assert conn.execute(f"SELECT count(*) FROM {SCHEMA}.cost_tracking").fetchone() == (ROWS,)
