"""Measurement ``writes``: audit and cost writer throughput per design, as rows/s and × raw COPY."""

from __future__ import annotations

import asyncio
import statistics

import asyncpg
import pytest

from jedisos_db.harness import designs, writepaths
from jedisos_db.harness.measure import Context, Measured, writes
from jedisos_db.harness.measure.registry import MEASUREMENTS
from jedisos_db.runtime.errors import StateError
from jedisos_db.runtime.urls import DatabaseURL

pytestmark = pytest.mark.slow
DESIGNS = ("recommended", "partitioned")


BASELINE = "recommended"


@pytest.fixture(scope="module")
def measured(server_url: DatabaseURL) -> dict[str, Measured]:
    """Each design measured against the baseline (recommended: the baseline itself is not paired)."""
    base = designs.load(BASELINE)
    return {name: MEASUREMENTS["writes"](designs.load(name), Context(server_url, quick=True, baseline=base))
            for name in DESIGNS}


def test_every_design_names_the_same_figures_and_the_others_theirs_against_the_baseline(
        measured: dict[str, Measured]) -> None:
    names = {f"{kind}_{path}_rows_per_s" for kind in writepaths.KINDS for path in writes.PATHS} | {
        f"{kind}_{path}_x_copy" for kind in writepaths.KINDS for path in writes.PATHS[1:]} | {"rows", "rounds"}
    paired = {f"{kind}_{path}_x_baseline" for kind in writepaths.KINDS for path in writes.PATHS} | {"baseline"}
    for name, m in measured.items():
        assert set(m.figures) == (names if name == BASELINE else names | paired), name
        assert (m.figures["rows"], m.figures["rounds"]) == (writes.QUICK_ROWS, writes.QUICK_ROUNDS)
    assert measured["partitioned"].figures["baseline"] == BASELINE


def test_the_baseline_ratio_pairs_each_round_with_the_baselines_write_of_the_same_round(
        measured: dict[str, Measured]) -> None:
    m = measured["partitioned"]
    for kind in writepaths.KINDS:
        for path in writes.PATHS:
            mine, theirs = m.series[f"{kind}_{path}_rows_per_s"], m.series[f"{kind}_{path}_baseline_rows_per_s"]
            assert len(mine) == len(theirs) == writes.QUICK_ROUNDS
            per_round = sorted(p / b for (_, p), (_, b) in zip(mine, theirs, strict=True))
            assert float(m.figures[f"{kind}_{path}_x_baseline"]) == pytest.approx(per_round[len(per_round) // 2],
                                                                                 rel=1e-2)


def test_ratios_are_taken_against_copy_of_the_same_call(measured: dict[str, Measured]) -> None:
    for m in measured.values():
        f = {k: float(v) for k, v in m.figures.items() if k != "baseline"}
        for kind in writepaths.KINDS:
            copy = f[f"{kind}_copy_rows_per_s"]
            assert copy > 0
            curve = m.series[f"{kind}_copy_rows_per_s"]
            for path in writes.PATHS[1:]:
                # each round's rate over COPY's in the same round, the median of those
                per_round = sorted(p / c for (_, p), (_, c) in zip(m.series[f"{kind}_{path}_rows_per_s"], curve,
                                                                    strict=True))
                assert f[f"{kind}_{path}_x_copy"] == pytest.approx(per_round[len(per_round) // 2], rel=1e-2)
            assert [x for x, _ in curve] == [float(i) for i in range(1, writes.QUICK_ROUNDS + 1)]


def test_a_round_where_only_one_path_stalled_does_not_move_the_ratio() -> None:
    copy = [1.0, 1.0, 1.0, 3.0, 3.0]  # the machine slowed down for the last two rounds
    path = [1.25, 1.25, 3.75, 3.75, 3.75]  # and this path stalled once more, in round 3
    assert writes.paired_ratio(copy, path) == pytest.approx(0.8)
    assert statistics.median(copy) / statistics.median(path) == pytest.approx(1 / 3.75)  # what medians would say


def test_a_design_below_head_gets_copy_only_and_a_note_why(server_url: DatabaseURL) -> None:
    """The documented design stops at 006, before the idempotency key the repositories write: COPY alone is
    measured, against the baseline too."""
    documented = writes.measure(designs.load("documented"), Context(server_url, quick=True,
                                                                    baseline=designs.load(BASELINE)))
    assert float(documented.figures["audit_copy_rows_per_s"]) > 0
    assert float(documented.figures["audit_copy_x_baseline"]) > 0
    assert "audit_record_many_rows_per_s" not in documented.figures
    assert "audit_record_many_x_baseline" not in documented.figures
    assert any("idempotency_key" in n and "audit" in n and "the design's" in n for n in documented.notes)


async def test_a_round_that_wrote_the_wrong_number_of_rows_is_refused(migrated_db: DatabaseURL) -> None:
    conn = await asyncpg.connect(migrated_db.libpq())
    try:
        with pytest.raises(StateError, match="holds 0 rows after writing 5"):
            await writes.timed(conn, "audit", 5, lambda: asyncio.sleep(0))
    finally:
        await conn.close()
