"""Measurement ``volume``: bytes per user-month measured in each design's database, projected with its retention."""

from __future__ import annotations

import itertools

import pytest

from jedisos_db.harness import designs
from jedisos_db.harness.measure import Context, Measured, volume
from jedisos_db.harness.measure.registry import MEASUREMENTS
from jedisos_db.runtime.urls import DatabaseURL

pytestmark = pytest.mark.slow
DESIGNS = ("recommended", "partitioned", "openai-1536")
ROWS_PER_USER = {"audit_logs": 3000, "cost_tracking": 6000}
"""The capacity model's rates: 20 turns a day x 5 audit and 10 cost rows x 30 days."""


@pytest.fixture(scope="module")
def measured(server_url: DatabaseURL) -> dict[str, Measured]:
    return {name: MEASUREMENTS["volume"](designs.load(name), Context(server_url, quick=True)) for name in DESIGNS}


def _num(m: Measured, name: str) -> float:
    value = m.figures[name]
    assert not isinstance(value, bool | str), (name, value)
    return float(value)


def test_every_design_names_the_same_figures_and_curves(measured: dict[str, Measured]) -> None:
    first = measured["recommended"]
    for m in measured.values():
        assert set(m.figures) == set(first.figures)
        assert set(m.series) == {f"projected_bytes_{n}_users" for n in volume.PROJECTED_USERS}
        assert m.figures["users"] == volume.QUICK_USERS


def test_the_measured_growth_is_the_written_rows(measured: dict[str, Measured]) -> None:
    for name, m in measured.items():
        audit, cost = _num(m, "audit_logs_bytes_per_user"), _num(m, "cost_tracking_bytes_per_user")
        assert _num(m, "bytes_per_user_month") == pytest.approx(audit + cost, abs=1)
        for table, rows in ROWS_PER_USER.items():
            # Each row with its index entries: more than a bare tuple header, less than a page.
            assert 100 * rows < _num(m, f"{table}_bytes_per_user") < 8192 * rows, (name, table)
        assert _num(m, "standing_bytes_per_user") == pytest.approx(
            _num(m, "schedules_bytes_per_user") + _num(m, "user_preferences_bytes_per_user"), abs=1)
        assert _num(m, "schedules_bytes_per_user") > 0
        assert _num(m, "user_preferences_bytes_per_user") > 0


def test_the_embedding_dimension_decides_the_memory_units_share(measured: dict[str, Measured]) -> None:
    small, large = measured["recommended"], measured["openai-1536"]
    assert (small.figures["embedding_dim"], large.figures["embedding_dim"]) == (384, 1536)
    # A float4 vector alone: 4 bytes a dimension, more with the HNSW index's copy.
    assert _num(small, "memory_unit_bytes") > 4 * 384
    assert _num(large, "memory_unit_bytes") - _num(small, "memory_unit_bytes") > 2 * 4 * (1536 - 384)
    assert _num(large, "projected_bytes_100_users_12_months") > _num(small, "projected_bytes_100_users_12_months")
    for m in (small, large):
        assert _num(m, "total_bytes_per_user_month") == pytest.approx(
            _num(m, "bytes_per_user_month") + _num(m, "memory_units_bytes_per_user_month"), abs=1)
    # The same rows at the same seed: only the memory units' share differs.
    assert _num(small, "bytes_per_user_month") == pytest.approx(_num(large, "bytes_per_user_month"), rel=0.01)


def _retained(m: Measured, audit_months: float) -> float:
    """One user's jedisos + memory units after 12 months, the audit table kept for ``audit_months``: debug/info
    (90 % of the rows) for the window, warning and above for all 12; cost rows (365-day window) all 12."""
    return (_num(m, "audit_logs_bytes_per_user") * (0.1 * 12 + 0.9 * audit_months)
            + _num(m, "cost_tracking_bytes_per_user") * 12 + _num(m, "standing_bytes_per_user")
            + _num(m, "memory_units_bytes_per_user_month") * 12)


def test_the_projection_applies_each_designs_retention(measured: dict[str, Measured]) -> None:
    # A batched DELETE keeps 90 days (3 months); dropping whole months keeps up to one month more.
    for name, audit_months in (("recommended", 3), ("partitioned", 4)):
        m = measured[name]
        empty = _num(m, "empty_schema_bytes")
        one = _num(m, "projected_bytes_1_users_12_months")
        assert one - empty == pytest.approx(_retained(m, audit_months), rel=1e-3, abs=2), name
        assert _num(m, "projected_bytes_10000_users_12_months") - empty == pytest.approx(
            100 * (_num(m, "projected_bytes_100_users_12_months") - empty), rel=1e-6)
        curve = m.series["projected_bytes_100_users"]
        assert [x for x, _ in curve] == [float(i) for i in range(1, volume.MONTHS + 1)]
        assert all(a[1] < b[1] for a, b in itertools.pairwise(curve))
        assert curve[-1][1] == pytest.approx(_num(m, "projected_bytes_100_users_12_months"), abs=1)
    # The partitioned schema's empty partitions (months ahead and the window's) take space of their own.
    assert _num(measured["partitioned"], "empty_schema_bytes") > _num(measured["recommended"], "empty_schema_bytes")


def test_a_design_below_head_is_measured_with_the_columns_it_has(server_url: DatabaseURL) -> None:
    """The documented design (006) lacks the idempotency key the repositories write: its audit and cost rows go
    in by raw COPY of its own columns, and the notes say so."""
    documented = volume.measure(designs.load("documented"), Context(server_url, quick=True))
    assert _num(documented, "audit_logs_bytes_per_user") > 100 * ROWS_PER_USER["audit_logs"]
    assert _num(documented, "cost_tracking_bytes_per_user") > 100 * ROWS_PER_USER["cost_tracking"]
    assert any("audit_logs, cost_tracking: written by raw COPY" in n for n in documented.notes), documented.notes
