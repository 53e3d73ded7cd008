"""The capacity model's arithmetic (design §7): exact figures, no server."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math

import pytest

from jedisos_db.harness import datagen
from jedisos_db.harness.capacity import model
from jedisos_db.runtime import retention
from jedisos_db.runtime.errors import ConfigError

GROWTH = ("memory_units", "checkpoints", "audit_logs", "cost_tracking")
ALL_TABLES = (*GROWTH, "schedules", "user_preferences", "installed_tools", "mcp_servers", "marketplace_packages")


def _flat(bytes_per_row: float = 1000.0, empty: int = 0) -> model.Measured:
    return model.Measured(dict.fromkeys(ALL_TABLES, bytes_per_row), dict.fromkeys(ALL_TABLES, empty))


# --- §7 as data --------------------------------------------------------------------------------

def test_section7_parses_into_the_design_rows() -> None:
    """Design §7: seven rows, records and disk as the document states them."""
    design = model.parse_section7()
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
        model.parse_section7("no table here")


def test_rows_per_turn_reproduce_section7_records() -> None:
    """Design §7: at 20 turns a day the workload yields exactly the design's records per month."""
    design = {r.table: r.records for r in model.parse_section7().rows if not r.cumulative}
    assert model.monthly_rows(model.Workload()) == pytest.approx(design)
    assert model.monthly_rows(model.Workload(turns_per_day=10))["audit_logs"] == 1500


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
    assert model.retained_months(table, months, model.Retention()) == pytest.approx(kept)


def test_retention_is_the_runners_policy() -> None:
    """One source of truth: the projection applies the rules ``jedisos-db retention run`` applies,
    over the severity mix the generated audit rows have."""
    r = model.Retention()
    assert r.policy is retention.POLICY
    assert r.rule_for("audit_logs") is retention.AUDIT_RULE
    assert r.rule_for("cost_tracking") is retention.COST_RULE
    assert r.rule_for("checkpoints") is retention.THREAD_RULE
    assert r.rule_for("memory_units") is None
    assert r.deletable_share(retention.AUDIT_RULE) == pytest.approx(
        datagen.SEVERITY_MIX["debug"] + datagen.SEVERITY_MIX["info"])
    assert r.deletable_share(retention.COST_RULE) == 1.0


def test_a_changed_policy_changes_the_projection() -> None:
    """The windows are read from the policy, not restated: a 30-day audit rule keeps one month."""
    shorter = dataclasses.replace(retention.AUDIT_RULE, keep=dt.timedelta(days=30))
    r = model.Retention(policy=(shorter, retention.COST_RULE, retention.THREAD_RULE))
    assert model.retained_months("audit_logs", 12, r) == pytest.approx(12 * 0.1 + 1 * 0.9)
    everything = dataclasses.replace(retention.AUDIT_RULE, only_severities=())
    r = model.Retention(policy=(everything, retention.COST_RULE, retention.THREAD_RULE))
    assert model.retained_months("audit_logs", 12, r) == pytest.approx(3.0)


def test_projection_exact_bytes() -> None:
    """Rows per month x months x bytes per row x users; installation tables do not scale with users."""
    m = _flat(1000.0, empty=8192)
    no = model.project_bytes(m, model.Workload(), users=2, months=12, retention=None)
    assert no["memory_units"] == 2 * 600 * 12 * 1000
    assert no["audit_logs"] == 2 * 3000 * 12 * 1000
    assert no["schedules"] == 2 * 10 * 1000
    assert no["installed_tools"] == 50 * 1000 + 8192
    kept = model.project_bytes(m, model.Workload(), users=2, months=12, retention=model.Retention())
    assert kept["audit_logs"] == pytest.approx(2 * 3000 * 3.9 * 1000)
    assert kept["checkpoints"] == 2 * 600 * 1 * 1000
    assert kept["memory_units"] == no["memory_units"]
    many = model.project_bytes(m, model.Workload(), users=200, months=12, retention=None)
    assert many["memory_units"] == 100 * no["memory_units"]
    assert many["installed_tools"] == no["installed_tools"]
    assert model.total_bytes(m, model.Workload(), users=2, months=12, retention=None) == sum(no.values())


def test_projection_rejects_bad_input_naming_the_option() -> None:
    with pytest.raises(ConfigError, match="--users"):
        model.project_bytes(_flat(), model.Workload(), users=0, months=1, retention=None)
    with pytest.raises(ConfigError, match="--turns-per-day"):
        model.Workload(turns_per_day=0)
    with pytest.raises(ConfigError, match="--embedding-dim"):
        model.CapacityConfig(embedding_dim=768)
    with pytest.raises(ConfigError, match="--months"):
        model.CapacityConfig(months=0)


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
    assert model.verdict(measured, design, upper_bound=bound) == pytest.approx((ratio, word))


def test_verdict_against_zero_design_is_infinite() -> None:
    assert model.verdict(1.0, 0.0, upper_bound=False) == (math.inf, "design underestimates")


def test_compare_sets_each_design_row_beside_the_measure() -> None:
    """Design §7: bytes per row that reproduce the design's MB give ratio 1 on every growth row."""
    design = model.parse_section7()
    per_row = {r.table: r.disk_mib * model.MIB / r.records for r in design.rows}
    per_row.update(user_preferences=0.0, mcp_servers=0.0)
    rows = model.compare(design, model.Measured(per_row))
    assert [c.label for c in rows] == [r.label for r in design.rows]
    for c in rows:
        assert c.ratio == pytest.approx(1.0), c
        assert c.verdict in {"matches (within 2x)", "within bound"}


@pytest.mark.claim("S1-max-connections-200")
def test_connection_budget_arithmetic() -> None:
    """Design §1: max_connections=200 holds one Hindsight server's default pool (100; no read pool without a
    read database) plus up to three JediSOS processes; PostgreSQL's default 100 holds none."""
    at_200 = model.connection_budget(200)
    assert at_200.jedisos_processes_that_fit == (197 - 100) // 25 == 3
    assert at_200.demand_one_process == 100 + 10 + 15
    assert at_200.fits_one_process
    assert at_200.verdict.headroom == 72
    at_100 = model.connection_budget(100)
    assert (at_100.jedisos_processes_that_fit, at_100.fits_one_process) == (0, False)
    at_500 = model.connection_budget(500)
    assert at_500.jedisos_processes_that_fit == (497 - 100) // 25
    assert at_500.fits_one_process
