"""The retention race (issue 10) at a small size: both designs remove every expired row while the writer
inserts, keep the warning rows, and lose no acknowledged insert."""

from __future__ import annotations

import dataclasses
import math

import pytest
from typer.testing import CliRunner

from jedisos_db.cli.main import app
from jedisos_db.harness import designs, retention_race
from jedisos_db.harness.latency import Samples
from jedisos_db.runtime.errors import InvalidInputError, StateError
from jedisos_db.runtime.urls import DatabaseURL
from tests.rich_tables import row_of

pytestmark = pytest.mark.slow
ROWS = 20_000


@pytest.fixture(scope="module")
async def results(server_url: DatabaseURL) -> list[retention_race.RaceResult]:
    return await retention_race.compare(server_url, [designs.load("recommended"), designs.load("partitioned")],
                                        rows=ROWS, idle_inserts=50)


def test_each_design_removes_every_expired_row_and_nothing_else(results: list[retention_race.RaceResult]) -> None:
    assert [(r.design, r.method) for r in results] == [("recommended", "batched-delete"),
                                                       ("partitioned", "partition-drop")]
    for r in results:
        assert (r.rows, r.expired_left, r.kept_lost, r.lost) == (ROWS, 0, 0, 0), r


def test_the_writer_inserted_before_and_during_the_removal(results: list[retention_race.RaceResult]) -> None:
    for r in results:
        assert len(r.idle.samples) >= 50
        assert r.during.samples
        assert r.acknowledged >= len(r.idle.samples) + len(r.during.samples) + 1  # + the untimed warm-up insert
        assert r.removal_s > 0
        assert math.isfinite(r.p99_ratio)
    assert retention_race.speedup(results[0], results[1]) > 0


async def test_bad_sizes_are_refused(server_url: DatabaseURL) -> None:
    with pytest.raises(InvalidInputError, match="rows"):
        await retention_race.race(server_url, designs.load("recommended"), rows=10)
    small = retention_race.RaceResult("a", "batched-delete", 100, 1.0, 1.0, Samples([0.1, 0.2]), Samples([0.1]),
                                      3, 0, 0, 0)
    with pytest.raises(StateError, match="different sizes"):
        retention_race.speedup(small, dataclasses.replace(small, rows=200))


def test_inserts_over_idle_p99_counts_the_slow_ones_of_the_window() -> None:
    idle = Samples([0.001] * 99 + [0.002])  # p99: 1 ms
    during = Samples([0.0005, 0.001, 0.0011, 0.003])
    r = retention_race.RaceResult("a", "partition-drop", 100, 0.1, 0.2, idle, during, 104, 0, 0, 0)
    assert r.over_idle_p99 == 2
    assert dataclasses.replace(r, during=Samples([0.001] * 5)).over_idle_p99 == 0


def test_the_same_n_ratio_of_a_window_longer_than_idle_is_the_plain_ratio() -> None:
    idle = Samples([0.001] * 200)
    r = retention_race.RaceResult("a", "partition-drop", 100, 0.1, 5.0, idle, Samples([0.002] * 300), 501, 0, 0, 0)
    assert r.p99_ratio_same_n == r.p99_ratio == pytest.approx(2.0)
    shorter = dataclasses.replace(r, during=Samples([0.002] * 50))
    assert shorter.p99_ratio_same_n == pytest.approx(2.0)  # idle's p99 at n=50: the median of four block maxima


def test_the_default_idle_window_gives_the_same_n_ratio_many_runs() -> None:
    """A partition drop's window held ~120 inserts: idle's p99 at that size must be a median over many runs."""
    assert retention_race.IDLE_INSERTS // 120 >= 20


def test_quantiles_are_nearest_rank() -> None:
    hundred = Samples([i / 1000 for i in range(100, 0, -1)])
    assert (hundred.p50_ms, hundred.p99_ms) == pytest.approx((50.0, 99.0))
    assert Samples([0.001, 0.005, 0.002]).p99_ms == pytest.approx(5.0)  # under 100 samples: the maximum
    assert math.isnan(Samples([]).p50_ms)


def test_the_cli_prints_the_race_side_by_side(server_url: DatabaseURL) -> None:
    result = CliRunner().invoke(app, ["retention", "race", "--design", "recommended", "--rows", "1000",
                                      "--idle-inserts", "10", "--dsn", server_url.libpq()], env={"JEDISOS_DB_URL": ""})
    assert result.exit_code == 0, result.output
    cells = row_of(result.output, "recommended")
    assert cells[:3] == ["recommended", "batched-delete", "1000"]
    assert cells[-3:] == ["0", "0", "0"]  # lost, left, kept lost
