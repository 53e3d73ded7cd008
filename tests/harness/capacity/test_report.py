"""The capacity report's tables and files, from known measures (no server)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jedisos_db.harness.capacity import model, report
from jedisos_db.ops import provision
from tests.harness.capacity.test_model import ALL_TABLES


def _synthetic() -> model.CapacityReport:
    measures = [model.TableMeasure(t, "row", 100, 8192, 8192 + 100 * 500, 100 * 400, 380.0, "synthetic")
                for t in ALL_TABLES]
    info = provision.ServerInfo("18.6", "0.8.6", 200, "pg_stat_statements", {"max_connections": "200"})
    return model.build_report(model.CapacityConfig(users=(1, 100, 10_000), months=12), measures, info)


def test_report_files_from_known_measures(tmp_path: Path) -> None:
    """Markdown, JSON and two PNGs; the JSON's totals are the projection's."""
    r = _synthetic()
    paths = report.write_report(r, tmp_path)
    assert sorted(p.name for p in paths) == ["capacity.json", "capacity.md", "capacity_bytes_per_row.png",
                                             "capacity_growth.png"]
    for png in paths[2:]:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads((tmp_path / "capacity.json").read_text())
    assert data["projections"]["10000"]["no_retention"]["memory_units"] == 10_000 * 600 * 12 * 500
    assert r.monthly[1]["no_retention"][11] == pytest.approx(sum(r.projections[1]["no_retention"].values()))
    md = (tmp_path / "capacity.md").read_text()
    assert "| Hindsight memory_units | 600 | ~50 MB |" in md
    assert "| 10,000 |" in md
    assert "| **total, year 1** |  | ~1.2 GB |" in md


def test_tables_carry_the_figures() -> None:
    """Each table of the report, as the CLI shows it and capacity.md lays it out."""
    r = _synthetic()
    by_key = {t.key: t for t in report.tables(r)}
    assert list(by_key) == ["measured", "design", "projection", "per_table", "budget"]
    assert by_key["measured"].rows[0][:4] == ("memory_units", "row", "100", "500")
    assert [row[0] for row in by_key["projection"].rows] == ["1", "100", "10,000"]
    design = by_key["design"]
    assert {design.rows[i][0] for i in design.emphasised} == {"total, month 1", "total, year 1"}
    budget = by_key["budget"]
    assert [row[0] for row in budget.rows] == ["hindsight asyncpg pool", "langgraph psycopg pool",
                                               "jedisos sqlalchemy engine"]
    assert "Demand 125 vs available 197 (max_connections 200 - reserved 3): fits." in budget.note
    assert "beside one Hindsight server with its default pools: 3 " in budget.note


def test_retention_text_comes_from_the_policy() -> None:
    text = report.retention_text(_synthetic())
    assert "audit_logs: debug/info older than 90 days (warning and above kept) (90% of generated rows)" in text
    assert "cost_tracking: older than 365 days, rolled into daily_cost_rollup" in text
    assert "langgraph_threads: idle for 30 days" in text


def test_sensitivity_table_only_with_measured_checkpoints() -> None:
    r = _synthetic()
    main = model.TableMeasure("checkpoints", "graph run", 30, 0, 30 * 40_000, 0, 0.0, "real graph run",
                              thread_turns=10)
    other = model.TableMeasure("checkpoints", "graph run", 30, 0, 30 * 20_000, 0, 0.0, "real graph run",
                               thread_turns=1)
    r.measures = [*(m for m in r.measures if m.table != "checkpoints"), main]
    r.checkpoint_sensitivity = [other]
    [sensitivity] = [t for t in report.tables(r) if t.key == "sensitivity"]
    assert sensitivity.rows == [("1", "20,000"), ("10 (used above)", "40,000")]
    assert "## LangGraph checkpoints vs thread length" in report.render_markdown(r)
