"""The ``migrations`` measurement: each design's remaining chain run on a filled database, its locks watched."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from jedisos_db.harness import designs
from jedisos_db.harness.measure import Context, migrations, registry
from jedisos_db.ops import provision
from jedisos_db.runtime.db import migrations as chain
from jedisos_db.runtime.db.connect import connect
from jedisos_db.runtime.urls import DatabaseURL

AE = migrations.ACCESS_EXCLUSIVE


def test_it_is_registered() -> None:
    assert registry.MEASUREMENTS["migrations"] is migrations.measure


def test_what_each_design_runs_on_a_live_database(tmp_path: Path) -> None:
    assert migrations.live_revision() == "006"
    (tmp_path / "schema.sql").write_text("CREATE TABLE jedisos.t (id int);\n")
    ddl = tmp_path / "ddl.toml"
    ddl.write_text('name = "ddl"\ndescription = "x"\n[schema]\nsource = "ddl"\nddl = "schema.sql"\n')
    assert migrations.pending(designs.load(ddl)) is None
    assert migrations.pending(designs.load("documented")) is None
    assert migrations.pending(designs.load("recommended")) == ("006", "010")
    assert migrations.pending(designs.load("openai-1536")) == ("006", "010")
    assert migrations.pending(designs.load("partitioned")) == ("006", "p010")


def test_the_fill_is_the_capacity_models_twelve_months(tmp_path: Path) -> None:
    """100 users: 3,000 audit rows a month each, of which warning+ (10 %) are kept 12 months and debug/info
    90 days; 6,000 cost rows a month each, kept 365 days (so all 12 months)."""
    assert migrations.volumes(designs.load("recommended"), 100) == {
        "audit_logs": {"kept": 360_000, "purgeable": 810_000}, "cost_tracking": {"kept": 0, "purgeable": 7_200_000}}
    short = tmp_path / "short.toml"
    short.write_text('name = "short"\nextends = "recommended"\ndescription = "x"\n'
                     "[retention.audit_logs]\nkeep_days = 30\n")
    assert migrations.volumes(designs.load(short), 100)["audit_logs"] == {"kept": 360_000, "purgeable": 270_000}


@pytest.mark.parametrize(("pg", "ours"), [("AccessExclusiveLock", "ACCESS EXCLUSIVE"),
                                          ("ShareUpdateExclusiveLock", "SHARE UPDATE EXCLUSIVE"),
                                          ("RowExclusiveLock", "ROW EXCLUSIVE"), ("ShareLock", "SHARE")])
def test_lock_modes_read_as_the_documentation_names_them(pg: str, ours: str) -> None:
    assert migrations.lock_mode(pg) == ours


def _upgrade(server_url: DatabaseURL, name: str, users: int = 1, *,
             blocker: str | None = None) -> tuple[designs.Design, migrations.Upgrade]:
    """``blocker``: a transaction that has written to this table holds its ROW EXCLUSIVE lock until the monitor
    sees the upgrade queue behind it, as a live application's would."""
    design = designs.load(name)
    plan = migrations.pending(design)
    assert plan is not None
    with provision.scratch_database(server_url, f"jedisos_test_mig_{name.replace('-', '_')}") as url:
        start, target = plan
        chain.upgrade(url, start, versions=design.schema.versions)
        rows = migrations.fill(url, design, users)
        monitor = migrations.LockMonitor(url)
        if blocker is None:
            return design, migrations.run_upgrade(url, design, start, target, rows, monitor=monitor)
        with connect(url, autocommit=False) as conn:
            conn.execute(f"INSERT INTO jedisos.{blocker} (event_type) VALUES ('live writer')")

            def release() -> None:
                try:
                    monitor.wait_until(lambda s: any(lock.table == blocker for lock in s.waiting.values()), 30)
                finally:
                    conn.commit()

            thread = threading.Thread(target=release, daemon=True)
            thread.start()
            upgrade = migrations.run_upgrade(url, design, start, target, rows, monitor=monitor)
            thread.join(30)
        return design, upgrade


def _taken(upgrade: migrations.Upgrade, table: str) -> dict[str, set[str]]:
    """Lock modes each schema change took on ``table`` itself, by its SQL's first words."""
    return {" ".join(s.sql.split()[:4]): {h.lock.mode for h in s.holds if h.lock.relation == f"jedisos.{table}"}
            for s in upgrade.statements if s.schema_change and any(h.lock.table == table for h in s.holds)}


@pytest.mark.slow
def test_recommended_takes_access_exclusive_only_to_add_a_column(server_url: DatabaseURL) -> None:
    design, up = _upgrade(server_url, "recommended", blocker="audit_logs")
    assert up.rows_before == {"audit_logs": 11_700, "cost_tracking": 72_000}
    assert up.rows_after == {"audit_logs": 11_701, "cost_tracking": 72_000}  # and the live writer's row
    assert (up.rows_lost, up.error) == (0, None)
    assert {s.revision for s in up.statements if s.schema_change} == {"007", "008", "009", "010"}
    exclusive = {(s.revision, " ".join(s.sql.split()[:3]), h.lock.relation) for s, h in up.holds()}
    assert exclusive == {("010", "ALTER TABLE jedisos.audit_logs", "jedisos.audit_logs"),
                         ("010", "ALTER TABLE jedisos.cost_tracking", "jedisos.cost_tracking")}
    # 009's trigger blocks writes but not reads; 010's index is built CONCURRENTLY, blocking neither.
    assert _taken(up, "cost_tracking")["CREATE TRIGGER cost_tracking_roll_up_deleted AFTER"] == {"SHARE ROW EXCLUSIVE"}
    # The ADD COLUMN queued behind the live writer: seen waiting.
    alter = next(s for s in up.statements if s.sql.startswith("ALTER TABLE jedisos.audit_logs"))
    assert {(lock.relation, lock.mode) for lock in alter.waited} == {("jedisos.audit_logs", AE)}
    # 007's view is replaced under its own lock: it has no rows of its own, so it is no filled table.
    assert any(h.lock.relation == "jedisos.daily_cost_summary" and h.lock.mode == AE and h.rows == 0
               for _, h in up.holds(filled=False))
    # Both ADD COLUMNs run in one transaction: the first lock is held across the second statement, and not
    # while the first statement queued for it.
    (first, audit), (second, _) = up.holds()
    assert first is alter
    assert (second.ended - first.ended) * 1000 <= audit.held_ms
    assert audit.held_ms < (up.statements[-1].ended - first.began) * 1000
    measured = migrations.summarise(design, 1, up, None, None)
    assert measured.figures["statements"] == len([s for s in up.statements if s.schema_change])
    assert measured.figures["access_exclusive_statements"] == 2
    assert measured.figures["access_exclusive_max_table"] in ("jedisos.audit_logs", "jedisos.cost_tracking")
    assert sum("takes ACCESS EXCLUSIVE on jedisos." in n for n in measured.notes) == 2
    assert [n.split("` takes ")[1].split(" (")[0] for n in measured.notes if n.startswith("Blocks writes")] == [
        "SHARE ROW EXCLUSIVE on jedisos.cost_tracking"]


@pytest.mark.slow
def test_the_partitioned_rebuild_locks_each_table_for_its_swap_only_and_moves_rows_online(
        server_url: DatabaseURL) -> None:
    """p010 renames each table aside and creates it partitioned in a transaction of its own, then moves the rows
    over in batches that take no ACCESS EXCLUSIVE lock (each deletes rows aside and inserts them in one
    statement): the longest exclusive hold is a swap's catalog work, and no row is lost."""
    design, up = _upgrade(server_url, "partitioned")
    assert (up.rows_lost, up.error) == (0, None)
    assert {s.revision for s in up.statements if s.schema_change} == {"007", "008", "009", "010", "p010"}
    moves = [s for s in up.statements if s.sql.startswith("WITH moved AS (DELETE FROM jedisos.cost_tracking_")]
    assert len(moves) >= 2  # 72,000 rows in batches, then the one that finds nothing left
    assert not [s for s, _ in up.holds() if s.sql.startswith("WITH moved")]
    renames = {h.lock.relation: (s, h) for s, h in up.holds() if " RENAME TO " in s.sql}
    assert set(renames) == {"jedisos.audit_logs", "jedisos.cost_tracking"}
    audit_rename, audit_hold = renames["jedisos.audit_logs"]
    # Each swap commits on its own: audit_logs' lock is gone before cost_tracking's swap has ended.
    swapped = up.statements[up.statements.index(next(s for s in up.statements if s.sql.startswith("WITH moved"))) - 1]
    assert audit_rename.began + audit_hold.held_ms / 1000 < swapped.ended
    measured = migrations.summarise(design, 1, up, None, None)
    assert measured.figures["access_exclusive_statements"] == 4  # 010's two ADD COLUMNs, p010's two renames
    assert [n.split("`")[1].split(" RENAME")[0] for n in measured.notes if "RENAME" in n] == [
        "ALTER TABLE jedisos.audit_logs", "ALTER TABLE jedisos.cost_tracking"]


def test_a_design_with_nothing_to_run_says_so(server_url: DatabaseURL, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(migrations, "squawk_binary", lambda: None)  # as on a machine without the [squawk] extra
    measured = migrations.run(designs.load("documented"), Context(server=server_url), users=1)
    assert (measured.figures["statements"], measured.figures["total_s"]) == (0, 0.0)
    assert "squawk_findings" not in measured.figures
    assert any("runs no revision after 006" in n for n in measured.notes)
    assert measured.figures["access_exclusive_statements"] == 0
    assert any(migrations.SQUAWK_MISSING in n for n in measured.notes)


@pytest.mark.slow
@pytest.mark.skipif(migrations.squawk_binary() is None, reason=migrations.SQUAWK_MISSING)
def test_squawk_counts_the_chains_findings(server_url: DatabaseURL) -> None:
    found = migrations.squawk("CREATE INDEX i ON jedisos.audit_logs (user_id);\n")
    assert found is not None
    assert found["require-concurrent-index-creation"] == 1
    measured = migrations.run(designs.load("recommended"), Context(server=server_url, quick=True), users=1)
    chain, upgrade = measured.figures["squawk_findings"], measured.figures["squawk_upgrade_findings"]
    assert isinstance(chain, int)
    assert isinstance(upgrade, int)
    assert chain > upgrade > 0  # the whole chain from empty holds the upgrade's statements and more
