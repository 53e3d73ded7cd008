"""Measurement ``retention``: the retention race for one design at ``--quick`` size, as the report's figures."""

from __future__ import annotations

import asyncio
import math
import statistics

import pytest

from jedisos_db.harness import designs, retention_race
from jedisos_db.harness.latency import Samples
from jedisos_db.harness.measure import Context, Measured, retention
from jedisos_db.harness.measure.registry import MEASUREMENTS
from jedisos_db.ops import provision
from jedisos_db.runtime.urls import DatabaseURL

pytestmark = pytest.mark.slow
DESIGNS = ("recommended", "partitioned")


@pytest.fixture(scope="module")
def measured(server_url: DatabaseURL) -> dict[str, Measured]:
    steps: list[tuple[int, int]] = []
    out = {name: MEASUREMENTS["retention"](designs.load(name), Context(server_url, quick=True,
                                                                         progress=lambda *a: steps.append(a)))
           for name in DESIGNS}
    assert steps[-1] == (retention.QUICK_RACES + 1, retention.QUICK_RACES + 1)
    return out


def test_every_design_names_the_same_figures(measured: dict[str, Measured]) -> None:
    rec, part = measured["recommended"], measured["partitioned"]
    assert set(rec.figures) == set(part.figures) >= {
        "rows", "method", "removal_s", "purge_s", "insert_p50_idle_ms", "insert_p99_idle_ms", "insert_p50_during_ms",
        "insert_p99_during_ms", "p99_during_x_idle", "p99_during_x_idle_same_n", "inserts_during_over_idle_p99",
        "acknowledged", "lost", "expired_left", "kept_lost"}
    assert (rec.figures["method"], part.figures["method"]) == ("batched-delete", "partition-drop")


def test_each_design_removes_the_expired_rows_and_loses_no_acknowledged_insert(
        measured: dict[str, Measured]) -> None:
    for m in measured.values():
        f = m.figures
        assert (f["rows"], f["lost"], f["expired_left"], f["kept_lost"]) == (retention.QUICK_ROWS, 0, 0, 0), f


def test_the_cost_rule_removes_its_rows_and_keeps_their_history(measured: dict[str, Measured]) -> None:
    rows = retention.QUICK_ROWS // retention.COST_SHARE
    for name, m in measured.items():
        f = m.figures
        assert (f["cost_rows"], f["cost_removed"], f["cost_left"], f["cost_calls_in_summary"]) == (rows, rows, 0, rows)
        assert 0 < float(f["cost_removal_s"]) <= float(f["cost_purge_s"]), name


def test_the_documented_cost_delete_loses_the_history(server_url: DatabaseURL) -> None:
    documented = designs.load("documented")
    with provision.scratch_database(server_url, documented.scratch_name("cost_test")) as url:
        documented.build(url)
        cost = asyncio.run(retention.cost_purge(url, documented, 500))
    assert (cost["cost_removed"], cost["cost_left"], cost["cost_calls_in_summary"]) == (500, 0, 0)


def test_the_figures_agree_with_each_other_and_with_the_curves(measured: dict[str, Measured]) -> None:
    for m in measured.values():
        f = {k: float(v) for k, v in m.figures.items() if isinstance(v, int | float)}
        assert 0 < f["removal_s"] <= f["purge_s"]
        assert f["insert_p50_idle_ms"] <= f["insert_p99_idle_ms"]
        assert f["insert_p50_during_ms"] <= f["insert_p99_during_ms"]
        assert f["p99_during_x_idle"] == pytest.approx(f["insert_p99_during_ms"] / f["insert_p99_idle_ms"], rel=1e-2)
        during, idle = m.series["insert_ms_during"], m.series["insert_ms_idle"]
        assert len(during) == f["inserts_during"] >= 1
        assert f["acknowledged"] >= len(during) + len(idle)
        idle_p99 = sorted(ms for _, ms in idle)[math.ceil(0.99 * len(idle)) - 1]  # nearest rank, as latency.py
        assert f["inserts_during_over_idle_p99"] == sum(ms > idle_p99 for _, ms in during)
        if len(during) < 100:  # nearest-rank p99 of fewer than 100 inserts is the slowest of them
            assert max(ms for _, ms in during) == pytest.approx(f["insert_p99_during_ms"], abs=1e-3)


def test_the_figures_are_the_median_race_and_every_race_is_listed(measured: dict[str, Measured]) -> None:
    for m in measured.values():
        f = m.figures
        ratios = [float(x) for x in str(f["p99_during_x_idle_runs"]).split(", ")]
        removals = [float(x) for x in str(f["removal_s_runs"]).split(", ")]
        assert f["races"] == len(ratios) == len(removals) == retention.QUICK_RACES
        assert float(f["p99_during_x_idle"]) == pytest.approx(statistics.median_high(ratios), rel=1e-2)
        assert float(f["removal_s"]) == pytest.approx(statistics.median_high(removals), rel=1e-2)


def _race(ratio: float, *, lost: int = 0, removal_s: float = 1.0, during: int = 100) -> retention_race.RaceResult:
    """A race whose insert p99 during the purge is ``ratio`` times idle's (100 idle inserts)."""
    idle = [0.001] * 100
    return retention_race.RaceResult("d", "batched-delete", 1000, removal_s, removal_s, Samples(idle),
                                     Samples([0.001 * ratio] * during), 100 + during, lost, 0, 0)


def test_a_loss_in_any_race_shows_and_an_even_count_takes_the_upper_median() -> None:
    races = [_race(1.5, removal_s=3.0), _race(1.0, lost=2, removal_s=1.0), _race(1.1, removal_s=2.0),
             _race(2.0, removal_s=4.0)]
    f = retention.from_races(races).figures
    assert (f["races"], f["lost"], f["acknowledged"]) == (4, 2, 800)
    assert (f["p99_during_x_idle"], f["removal_s"]) == (1.5, 3.0)  # of 1.0 1.1 1.5 2.0: never the flattering 1.1
    assert f["p99_during_x_idle_runs"] == "1.500, 1.000, 1.100, 2.000"


def test_a_purge_longer_than_idle_compares_with_idles_p99_as_it_is() -> None:
    """More inserts during the purge than idle: idle's p99 at the same n would need more idle samples than exist."""
    f = retention.from_race(_race(1.25, during=250)).figures
    assert f["insert_p99_idle_same_n_ms"] == f["insert_p99_idle_ms"] == 1.0
    assert f["p99_during_x_idle_same_n"] == f["p99_during_x_idle"] == 1.25
