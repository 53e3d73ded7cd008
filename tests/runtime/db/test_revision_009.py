"""Revision 009 (the cost rollup trigger) on a filled table: what it locks, that it rewrites nothing,
that it gives up instead of queueing writers, and that its downgrade leaves 008's catalog exactly."""

from __future__ import annotations

import time
from types import ModuleType

import pytest
from alembic.script import ScriptDirectory

from jedisos_db.ops import catalog
from jedisos_db.runtime.db import migrations
from jedisos_db.runtime.db.connect import connect
from jedisos_db.runtime.db.models import COST_ROLLUP_TRIGGER
from jedisos_db.runtime.owners import SCHEMA
from jedisos_db.runtime.urls import DatabaseURL
from tests.plugins.databases import DatabaseFactory

ROWS = 100_000


def _revision_009() -> ModuleType:
    module = ScriptDirectory.from_config(migrations.alembic_config()).get_revision("009").module
    assert isinstance(module, ModuleType)
    return module


@pytest.fixture
def filled_at_008(database_factory: DatabaseFactory) -> DatabaseURL:
    url = database_factory("rev009")
    migrations.upgrade(url, "008")
    with connect(url) as conn:
        conn.execute(f"""INSERT INTO {SCHEMA}.cost_tracking (timestamp, model, provider, source, input_tokens,
                                                            output_tokens, cost_usd, user_id)
                         SELECT now() - make_interval(mins => g), 'm' || g % 5, 'p', 'agent', g % 900, g % 70,
                                (g % 1000) / 1e6, 'u' || g % 40
                         FROM generate_series(1, {ROWS}) AS g""")
    return url


def _filenode(url: DatabaseURL) -> int:
    with connect(url) as conn:
        row = conn.execute(f"SELECT pg_relation_filenode('{SCHEMA}.cost_tracking')").fetchone()
    assert row is not None
    return int(row[0])


def test_upgrade_on_a_filled_table_rewrites_nothing_and_lets_readers_be(filled_at_008: DatabaseURL) -> None:
    """CREATE FUNCTION + CREATE TRIGGER: no rewrite (same file), no scan, and an open reading transaction
    (ACCESS SHARE) does not block it."""
    before = _filenode(filled_at_008)
    with connect(filled_at_008, autocommit=False) as reader:
        assert reader.execute(f"SELECT count(*) FROM {SCHEMA}.cost_tracking").fetchone() == (ROWS,)
        started = time.monotonic()
        migrations.upgrade(filled_at_008, "009")
        took = time.monotonic() - started
        reader.rollback()
    print(f"\n[rev009] upgrade on {ROWS} rows with a reader open: {took:.2f} s")
    assert migrations.current(filled_at_008) == "009"
    assert _filenode(filled_at_008) == before
    with connect(filled_at_008) as conn:
        assert conn.execute("SELECT tgname FROM pg_trigger WHERE tgrelid = %s::regclass AND NOT tgisinternal",
                            [f"{SCHEMA}.cost_tracking"]).fetchall() == [(COST_ROLLUP_TRIGGER,)]


def test_the_lock_it_takes_is_share_row_exclusive(filled_at_008: DatabaseURL) -> None:
    """Readers go on; writers wait for the commit. Never ACCESS EXCLUSIVE."""
    rev = _revision_009()
    assert rev.TRIGGER == COST_ROLLUP_TRIGGER
    with connect(filled_at_008, autocommit=False) as conn:
        conn.execute(rev.CREATE_FUNCTION)
        conn.execute(rev.CREATE_TRIGGER)
        modes = {r[0] for r in conn.execute(
            "SELECT mode FROM pg_locks WHERE pid = pg_backend_pid() AND relation = %s::regclass",
            [f"{SCHEMA}.cost_tracking"]).fetchall()}
        conn.rollback()
    assert modes == {"ShareRowExclusiveLock"}


def test_behind_an_open_writer_it_gives_up_instead_of_queueing(filled_at_008: DatabaseURL) -> None:
    """lock_timeout: behind a writer's open transaction the upgrade fails (and every writer after it is not
    left queued behind it); the schema stays at 008, and a rerun after the writer commits succeeds."""
    rev = _revision_009()
    with connect(filled_at_008, autocommit=False) as writer:
        writer.execute(f"INSERT INTO {SCHEMA}.cost_tracking (model, provider, source) VALUES ('m', 'p', 'agent')")
        started = time.monotonic()
        with pytest.raises(Exception, match="lock timeout"):
            migrations.upgrade(filled_at_008, "009")
        waited = time.monotonic() - started
        writer.commit()
    assert waited < 30, f"gave up after {waited:.1f} s; lock_timeout is {rev.LOCK_TIMEOUT}"
    assert migrations.current(filled_at_008) == "008"
    migrations.upgrade(filled_at_008, "009")
    assert migrations.current(filled_at_008) == "009"


def test_downgrade_restores_008s_catalog_exactly(filled_at_008: DatabaseURL) -> None:
    at_008 = catalog.snapshot(filled_at_008, SCHEMA)
    migrations.upgrade(filled_at_008, "009")
    at_009 = catalog.snapshot(filled_at_008, SCHEMA)
    assert set(at_009) - set(at_008) == {("trigger", f"cost_tracking.{COST_ROLLUP_TRIGGER}"),
                                         ("function", "roll_up_deleted_costs()")}
    migrations.downgrade(filled_at_008, "008")
    assert catalog.diff(at_008, catalog.snapshot(filled_at_008, SCHEMA)).render() == "catalogs are identical"
    with connect(filled_at_008) as conn:
        assert conn.execute(f"SELECT count(*) FROM {SCHEMA}.cost_tracking").fetchone() == (ROWS,)
