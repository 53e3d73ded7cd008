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


@pytest.fixture(scope="module")
def measured(server_url: DatabaseURL) -> dict[str, Measured]:
    return {name: MEASUREMENTS["writes"](designs.load(name), Context(server_url, quick=True)) for name in DESIGNS}


def test_every_design_names_the_same_figures(measured: dict[str, Measured]) -> None:
    names = {f"{kind}_{path}_rows_per_s" for kind in writepaths.KINDS for path in writes.PATHS} | {
        f"{kind}_{path}_x_copy" for kind in writepaths.KINDS for path in writes.PATHS[1:]} | {"rows", "rounds"}
    for m in measured.values():
        assert set(m.figures) == names
        assert (m.figures["rows"], m.figures["rounds"]) == (writes.QUICK_ROWS, writes.QUICK_ROUNDS)


def test_ratios_are_taken_against_copy_of_the_same_call(measured: dict[str, Measured]) -> None:
    for m in measured.values():
        f = {k: float(v) for k, v in m.figures.items()}
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
    """The documented design stops at 006, before the idempotency key the repositories write."""
    documented = writes.measure(designs.load("documented"), Context(server_url, quick=True))
    assert float(documented.figures["audit_copy_rows_per_s"]) > 0
    assert "audit_record_many_rows_per_s" not in documented.figures
    assert any("idempotency_key" in n and "audit" in n for n in documented.notes)


async def test_a_round_that_wrote_the_wrong_number_of_rows_is_refused(migrated_db: DatabaseURL) -> None:
    conn = await asyncpg.connect(migrated_db.libpq())
    try:
        with pytest.raises(StateError, match="holds 0 rows after writing 5"):
            await writes.timed(conn, "audit", 5, lambda: asyncio.sleep(0))
    finally:
        await conn.close()
