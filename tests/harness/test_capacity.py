"""The capacity model (design §7): exact arithmetic, and measurement at tiny scale on the real server."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from jedisos_db.cli.main import app
from jedisos_db.harness import capacity as cap
from jedisos_db.ops import provision
from jedisos_db.runtime.db.connect import connect
from jedisos_db.runtime.errors import ConfigError
from jedisos_db.runtime.urls import DatabaseURL

GROWTH = ("memory_units", "checkpoints", "audit_logs", "cost_tracking")
ALL_TABLES = (*GROWTH, "schedules", "user_preferences", "installed_tools", "mcp_servers", "marketplace_packages")


def _flat(bytes_per_row: float = 1000.0, empty: int = 0) -> cap.Measured:
    return cap.Measured(dict.fromkeys(ALL_TABLES, bytes_per_row), dict.fromkeys(ALL_TABLES, empty))


# --- §7 as data --------------------------------------------------------------------------------

def test_section7_parses_into_the_design_rows() -> None:
    """Design §7: seven rows, records and disk as the document states them."""
    design = cap.parse_section7()
    assert [(r.table, r.records, r.cumulative, r.disk_mib, r.disk_is_upper_bound) for r in design.rows] == [
        ("memory_units", 600, False, 50.0, False),
        ("checkpoints", 600, False, 30.0, False),
        ("audit_logs", 3000, False, 10.0, False),
        ("cost_tracking", 6000, False, 5.0, False),
        ("installed_tools", 50, True, 1.0, True),
        ("schedules", 10, True, 1.0, True),
        ("marketplace_packages", 100, True, 1.0, True),
    ]
    assert design.rows[0].label == "Hindsight memory_units"
    assert design.rows[0].note == "하루 20회 대화"
    assert design.total_month_mib == 100.0
    assert design.total_year_mib == pytest.approx(1.2 * 1024)


def test_section7_without_a_table_is_an_error_naming_it() -> None:
    with pytest.raises(ValueError, match="design §7"):
        cap.parse_section7("no table here")


def test_rows_per_turn_reproduce_section7_records() -> None:
    """Design §7: at 20 turns a day the workload yields exactly the design's records per month."""
    design = {r.table: r.records for r in cap.parse_section7().rows if not r.cumulative}
    assert cap.monthly_rows(cap.Workload()) == pytest.approx(design)
    assert cap.monthly_rows(cap.Workload(turns_per_day=10))["audit_logs"] == 1500


# --- retention and projection --------------------------------------------------------------------

@pytest.mark.parametrize(("table", "months", "kept"), [
    ("audit_logs", 12, 12 * 0.1 + 3 * 0.9),   # warnings and worse stay; debug/info keep 90 days
    ("audit_logs", 2, 2.0),                    # inside the window nothing is gone yet
    ("cost_tracking", 12, 12.0),
    ("cost_tracking", 24, 365 / 30),
    ("checkpoints", 12, 1.0),                  # threads go 30 days after they end
    ("memory_units", 12, 12.0),                # memories are kept
])
def test_retained_months(table: str, months: float, kept: float) -> None:
    """Design §7 retention: 90-day audit debug/info, 365-day cost, 30-day LangGraph threads."""
    assert cap.retained_months(table, months, cap.Retention()) == pytest.approx(kept)


def test_projection_exact_bytes() -> None:
    """Rows per month x months x bytes per row x users; installation tables do not scale with users."""
    m = _flat(1000.0, empty=8192)
    no = cap.project_bytes(m, cap.Workload(), users=2, months=12, retention=None)
    assert no["memory_units"] == 2 * 600 * 12 * 1000
    assert no["audit_logs"] == 2 * 3000 * 12 * 1000
    assert no["schedules"] == 2 * 10 * 1000
    assert no["installed_tools"] == 50 * 1000 + 8192
    kept = cap.project_bytes(m, cap.Workload(), users=2, months=12, retention=cap.Retention())
    assert kept["audit_logs"] == pytest.approx(2 * 3000 * 3.9 * 1000)
    assert kept["checkpoints"] == 2 * 600 * 1 * 1000
    assert kept["memory_units"] == no["memory_units"]
    many = cap.project_bytes(m, cap.Workload(), users=200, months=12, retention=None)
    assert many["memory_units"] == 100 * no["memory_units"]
    assert many["installed_tools"] == no["installed_tools"]


def test_projection_rejects_bad_input_naming_the_option() -> None:
    with pytest.raises(ConfigError, match="--users"):
        cap.project_bytes(_flat(), cap.Workload(), users=0, months=1, retention=None)
    with pytest.raises(ConfigError, match="--turns-per-day"):
        cap.Workload(turns_per_day=0)
    with pytest.raises(ConfigError, match="--embedding-dim"):
        cap.CapacityConfig(embedding_dim=768)
    with pytest.raises(ConfigError, match="--months"):
        cap.CapacityConfig(months=0)


# --- verdicts ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("measured", "design", "bound", "ratio", "word"), [
    (100.0, 50.0, False, 2.0, "matches (within 2x)"),
    (25.0, 50.0, False, 0.5, "matches (within 2x)"),
    (201.0, 100.0, False, 2.01, "design underestimates"),
    (4.0, 10.0, False, 0.4, "design overestimates"),
    (0.5, 1.0, True, 0.5, "within bound"),
    (1.0, 1.0, True, 1.0, "within bound"),
    (2.0, 1.0, True, 2.0, "exceeds bound"),
])
def test_verdict(measured: float, design: float, bound: bool, ratio: float, word: str) -> None:
    assert cap.verdict(measured, design, upper_bound=bound) == (pytest.approx(ratio), word)


def test_verdict_against_zero_design_is_infinite() -> None:
    assert cap.verdict(1.0, 0.0, upper_bound=False) == (math.inf, "design underestimates")


def test_compare_sets_each_design_row_beside_the_measure() -> None:
    """Design §7: bytes per row that reproduce the design's MB give ratio 1 on every growth row."""
    design = cap.parse_section7()
    per_row = {r.table: r.disk_mib * cap.MIB / r.records for r in design.rows}
    per_row.update(user_preferences=0.0, mcp_servers=0.0)
    rows = cap.compare(design, cap.Measured(per_row))
    assert [c.label for c in rows] == [r.label for r in design.rows]
    for c in rows:
        assert c.ratio == pytest.approx(1.0), c
        assert c.verdict in {"matches (within 2x)", "within bound"}


def test_sensitivity_lengths() -> None:
    assert cap.sensitivity_lengths(10) == (1, 30)
    assert cap.sensitivity_lengths(1) == (3,)


def test_connection_budget_arithmetic() -> None:
    """Design §1: max_connections=200 cannot hold one Hindsight server's default pools plus JediSOS."""
    at_200 = cap.connection_budget(200)
    assert at_200.jedisos_processes_that_fit == 0
    assert at_200.demand_one_process == 100 + 100 + 10 + 15
    assert not at_200.fits_one_process
    assert "DOES NOT FIT: 28 connection(s) short" in at_200.table
    at_500 = cap.connection_budget(500)
    assert at_500.jedisos_processes_that_fit == (497 - 200) // 25
    assert at_500.fits_one_process


def _synthetic_report(tmp_path: Path) -> tuple[cap.CapacityReport, list[Path]]:
    measures = [cap.TableMeasure(t, "row", 100, 8192, 8192 + 100 * 500, 100 * 400, 380.0, "synthetic")
                for t in ALL_TABLES]
    info = provision.ServerInfo("18.6", "0.8.6", 200, "pg_stat_statements", {"max_connections": "200"})
    config = cap.CapacityConfig(users=(1, 100, 10_000), months=12)
    report = cap.build_report(config, measures, info)
    return report, cap.write_report(report, tmp_path)


def test_report_files_from_known_measures(tmp_path: Path) -> None:
    """Markdown, JSON and two PNGs; the JSON's totals are the projection's."""
    report, paths = _synthetic_report(tmp_path)
    assert sorted(p.name for p in paths) == ["capacity.json", "capacity.md", "capacity_bytes_per_row.png",
                                             "capacity_growth.png"]
    for png in paths[2:]:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads((tmp_path / "capacity.json").read_text())
    assert data["projections"]["10000"]["no_retention"]["memory_units"] == 10_000 * 600 * 12 * 500
    assert report.monthly[1]["no_retention"][11] == pytest.approx(
        sum(report.projections[1]["no_retention"].values()))
    md = (tmp_path / "capacity.md").read_text()
    assert "| Hindsight memory_units | 600 | ~50 MB |" in md
    assert "| 10,000 |" in md


# --- measurement on the real server, tiny scale ----------------------------------------------------

def test_measure_jedisos_tables(migrated_db: DatabaseURL) -> None:
    """Every jedisos table measured: positive bytes per row, heap per row at least the tuple itself."""
    measures = {m.table: m for m in cap.measure_jedisos(migrated_db, 60)}
    assert set(measures) == {"installed_tools", "mcp_servers", "audit_logs", "cost_tracking", "user_preferences",
                             "schedules", "marketplace_packages"}
    for m in measures.values():
        assert m.count == 60, m
        assert m.bytes_per_unit > 0, m
        assert m.heap_bytes / m.count >= m.avg_tuple_bytes, f"{m.table}: heap/row below tuple size: {m}"
    with connect(migrated_db) as conn:
        row = conn.execute("SELECT count(*) FROM jedisos.audit_logs").fetchone()
    assert row is not None
    assert row[0] == 60


def test_measure_langgraph_from_a_real_graph_run(empty_db: DatabaseURL) -> None:
    """A real graph run checkpointed in schema langgraph: 3 checkpoints per run (DESIGN.md), none in public."""
    m = cap.measure_langgraph(empty_db, threads=1, turns_per_thread=3)
    assert not m.source.startswith("FALLBACK"), m.source
    assert m.count == 3
    assert "9 checkpoints (3.0 per run)" in m.source
    assert m.bytes_per_unit > 0
    with connect(empty_db) as conn:
        tables = conn.execute("SELECT table_schema, table_name FROM information_schema.tables "
                              "WHERE table_name LIKE 'checkpoint%' ORDER BY 2").fetchall()
    assert {s for s, _ in tables} == {"langgraph"}, tables


def test_memory_units_from_the_bench_table(empty_db: DatabaseURL) -> None:
    """Without a Hindsight server's data, the bench table stands in; a row holds at least its vector."""
    assert cap.hindsight_memory_units(empty_db) is None
    m = cap.bench_memory_units(empty_db, dim=384, rows=120)
    assert m.source.startswith("bench table jedisos_bench.")
    assert m.avg_tuple_bytes > 4 * 384  # vector(384) is 4 bytes a dimension plus a header
    assert m.bytes_per_unit > m.avg_tuple_bytes


def test_memory_units_at_1536_dimensions(empty_db: DatabaseURL) -> None:
    """--embedding-dim 1536 (OpenAI-size embeddings): a row holds a 6 KB vector."""
    m = cap.bench_memory_units(empty_db, dim=1536, rows=30)
    assert "vector(1536)" in m.source
    assert m.avg_tuple_bytes > 4 * 1536


def test_cli_end_to_end_tiny(server_url: DatabaseURL, tmp_path: Path) -> None:
    """`jedisos-db capacity` measures in a scratch database, writes the report, and drops the scratch."""
    result = CliRunner().invoke(app, ["capacity", "--users", "1", "--users", "100", "--months", "2", "--rows", "20",
                                      "--dsn", server_url.libpq(), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "Design §7 beside the measurement" in result.output
    assert "## LangGraph checkpoints vs thread length" in result.output
    assert (tmp_path / "capacity.md").exists()
    data = json.loads((tmp_path / "capacity.json").read_text())
    assert {m["table"] for m in data["measures"]} >= set(ALL_TABLES)
    with connect(server_url) as conn:
        left = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'jedisos_capacity_%'").fetchall()
    assert left == []


def test_cli_bad_option_is_one_line(server_url: DatabaseURL, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["capacity", "--users", "1", "--embedding-dim", "768", "--dsn", server_url.libpq(),
                                      "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert "--embedding-dim: must be 384 or 1536, got 768" in result.output


def test_memory_units_from_a_hindsight_schema_uses_catalog_statistics(empty_db: DatabaseURL) -> None:
    """With a filled ``hindsight.memory_units`` the model measures it (from the catalog only)
    instead of the bench table; below ``min_rows`` it declines. The table here stands in for the
    real server's: the function reads ``reltuples`` and relation sizes, never the rows."""
    with connect(empty_db) as conn:
        conn.execute("CREATE SCHEMA hindsight")
        conn.execute("CREATE TABLE hindsight.memory_units (id bigserial PRIMARY KEY, text text NOT NULL)")
        conn.execute("INSERT INTO hindsight.memory_units (text) SELECT repeat('m', 200) FROM generate_series(1, 1500)")
        conn.execute("ANALYZE hindsight.memory_units")
    measured = cap.hindsight_memory_units(empty_db, min_rows=1000)
    assert measured is not None
    assert measured.count == 1500
    assert "Hindsight server's own memory_units" in measured.source
    # 200-byte text plus tuple header and the primary key index entry: a few hundred bytes a row.
    assert 200 < measured.bytes_per_unit < 1000
    assert cap.hindsight_memory_units(empty_db, min_rows=2000) is None
