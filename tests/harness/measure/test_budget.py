"""Measurement ``budget``: each design's connection budget as the side-by-side table's figures."""

from __future__ import annotations

from pathlib import Path

from jedisos_db.harness import designs
from jedisos_db.harness.measure import Context, budget
from jedisos_db.harness.measure.registry import MEASUREMENTS
from jedisos_db.ops.provision import ServerInfo
from jedisos_db.runtime.urls import DatabaseURL, parse

NOWHERE = parse("postgresql://nobody@127.0.0.1:1/none")
"""The budget is arithmetic over the design file: a server that does not answer proves nothing is asked."""


def test_recommended_fits_with_its_margin_and_documented_does_not() -> None:
    ctx = Context(NOWHERE)
    rec = budget.measure(designs.load("recommended"), ctx)
    # 40 Hindsight (no read database, no read pool), 2 x 4 LangGraph, 2 x (5 + 10) JediSOS against 200 - 3 reserved.
    assert {k: rec.figures[k] for k in ("main_demand_connections", "main_available_connections",
                                        "main_margin_connections", "main_fits", "margin_connections")} == {
        "main_demand_connections": 78, "main_available_connections": 197, "main_margin_connections": 119,
        "main_fits": True, "margin_connections": 119}
    doc = budget.measure(designs.load("documented"), ctx)
    # Hindsight's default pool (100), LangGraph 10 and JediSOS 5 + 10 fit the 197 slots.
    assert doc.figures["main_fits"] is True
    assert doc.figures["main_margin_connections"] == doc.figures["margin_connections"] == 197 - 125
    assert not any(k.startswith("hindsight_") for k in {*rec.figures, *doc.figures})
    assert any("shared-database" in n for n in rec.notes)


def test_a_server_of_its_own_gets_its_own_figures_and_the_smallest_margin_counts() -> None:
    split = budget.measure(designs.load("split-hindsight"), Context(NOWHERE))
    assert split.figures["hindsight_demand_connections"] == 100
    assert split.figures["hindsight_margin_connections"] == 250 - 3 - 100
    margins = [split.figures[f"{server}_margin_connections"] for server in ("main", "hindsight")]
    assert split.figures["margin_connections"] == min(int(m) for m in margins)


def test_with_hindsights_server_running_both_budgets_count_what_the_servers_report(
        server_url: DatabaseURL, server_info: ServerInfo) -> None:
    """Given Hindsight's own server, its size is what that server says (here the session's, not the file's 250)."""
    split = budget.measure(designs.load("split-hindsight"), Context(server_url, hindsight_server=server_url))
    available = server_info.max_connections - 3
    assert (split.figures["servers_measured"], split.figures["hindsight_available_connections"],
            split.figures["main_available_connections"]) == (2, available, available)
    assert split.figures["hindsight_margin_connections"] == available - 100
    assert any("Both servers ran" in n for n in split.notes)
    # A design sharing the main server is counted from its file as before, whatever the context holds.
    rec = budget.measure(designs.load("recommended"), Context(NOWHERE, hindsight_server=NOWHERE))
    assert (rec.figures["servers_measured"], rec.figures["main_available_connections"]) == (0, 197)


def test_a_user_file_changes_the_figures_without_code_changes(tmp_path: Path) -> None:
    path = tmp_path / "small.toml"
    path.write_text('name = "small"\nextends = "recommended"\ndescription = "x"\n[server]\nmax_connections = 70\n')
    small = budget.measure(designs.load(path), Context(NOWHERE))
    assert (small.figures["main_available_connections"], small.figures["main_margin_connections"]) == (67, 67 - 78)
    assert small.figures["main_fits"] is False
    assert MEASUREMENTS["budget"] is budget.measure
