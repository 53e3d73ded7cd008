"""`jedisos-db capacity` end to end: measure in a scratch database, show the tables, write the report."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from jedisos_db.cli.main import app
from jedisos_db.runtime.db.connect import connect
from jedisos_db.runtime.urls import DatabaseURL
from tests.harness.capacity.test_model import ALL_TABLES


def test_cli_end_to_end_tiny(server_url: DatabaseURL, tmp_path: Path) -> None:
    """`jedisos-db capacity` measures in a scratch database, writes the report, and drops the scratch."""
    result = CliRunner().invoke(app, ["capacity", "--users", "1", "--users", "100", "--months", "2", "--rows", "20",
                                      "--dsn", server_url.libpq(), "--out", str(tmp_path)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "Design §7 beside the measurement" in result.output
    assert "LangGraph checkpoints vs thread length" in result.output
    assert "Demand 125 vs available 197 (max_connections 200 - reserved 3): fits." in result.output
    assert f"wrote {tmp_path / 'capacity.md'}" in result.output
    md = (tmp_path / "capacity.md").read_text()
    assert "## LangGraph checkpoints vs thread length" in md
    data = json.loads((tmp_path / "capacity.json").read_text())
    assert {m["table"] for m in data["measures"]} >= set(ALL_TABLES)
    with connect(server_url) as conn:
        left = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'jedisos_capacity_%'").fetchall()
    assert left == []


def test_cli_bad_option_is_one_line(server_url: DatabaseURL, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["capacity", "--users", "1", "--embedding-dim", "768",
                                      "--dsn", server_url.libpq(), "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert "--embedding-dim: must be 384 or 1536, got 768" in result.output
