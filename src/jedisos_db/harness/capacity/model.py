"""The capacity model's arithmetic: design §7 as data, the workload, projections, verdicts.

Pure functions over data (unit-tested with exact figures); nothing here needs a server:

- **§7 as data** — the design's volume table and total line, parsed;
- **project** — rows per turn (taken from §7's own figures: 20 turns a day give 600 memory units,
  3,000 audit rows, 6,000 cost rows a month) times measured bytes, per user per month and year,
  for N users, with and without the retention policy of :mod:`jedisos_db.runtime.retention`;
- **compare** — each §7 row beside the measurement, with a ratio and a verdict;
- **assemble** — :func:`build_report` turns measures into the :class:`CapacityReport` that
  :mod:`.report` writes and the CLI shows.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from jedisos_db.harness import datagen
from jedisos_db.ops import budget, provision
from jedisos_db.runtime import retention
from jedisos_db.runtime.errors import ConfigError, InvalidInputError
from jedisos_db.runtime.retention import RetentionRule

MIB = 2**20
DAYS_PER_MONTH = 30

DESIGN_SECTION_7 = """\
| 테이블 | 예상 레코드/월 (활발 사용자 1명) | 디스크 사용 |
|--------|------------------------------|-----------|
| Hindsight memory_units | ~600 (하루 20회 대화) | ~50MB |
| LangGraph checkpoints | ~600 (대화당 1개) | ~30MB |
| audit_logs | ~3,000 | ~10MB |
| cost_tracking | ~6,000 | ~5MB |
| installed_tools | ~50 (누적) | <1MB |
| schedules | ~10 (누적) | <1MB |
| marketplace_packages | ~100 (캐시) | <1MB |

**총 예상**: 활발 사용자 1명 기준, 월 ~100MB 증가. 1년 후 ~1.2GB.
"""
"""Design §7's volume table, verbatim (the seed document, 2026-02-17)."""


# --- design §7 as data ---------------------------------------------------------------------------

@dataclass(frozen=True)
class DesignRow:
    label: str
    """The table as §7 names it, e.g. ``Hindsight memory_units``."""
    table: str
    """The measured table it maps to (``memory_units``, ``checkpoints``, ``audit_logs`` …)."""
    records: int
    cumulative: bool
    """True for ``(누적)``/``(캐시)`` rows: a standing count, not growth per month."""
    disk_mib: float
    disk_is_upper_bound: bool
    """True for ``<1MB``: the design gives a bound, not an estimate."""
    note: str


@dataclass(frozen=True)
class DesignVolume:
    rows: list[DesignRow]
    total_month_mib: float
    total_year_mib: float


_ROW = re.compile(r"^\|\s*(?P<label>[^|]+?)\s*\|\s*~?(?P<records>[\d,]+)\s*(?:\((?P<note>[^)]*)\))?\s*\|"
                  r"\s*(?P<op>[~<])?(?P<disk>[\d.]+)\s*(?P<unit>[MG]B)\s*\|\s*$")
_TOTAL = re.compile(r"월\s*~?(?P<month>[\d.]+)\s*(?P<munit>[MG]B).*?1년 후\s*~?(?P<year>[\d.]+)\s*(?P<yunit>[MG]B)")


def _mib(value: str, unit: str) -> float:
    return float(value) * (1024 if unit == "GB" else 1)


def parse_section7(text: str = DESIGN_SECTION_7) -> DesignVolume:
    """§7's table and total line as data. Raises ``InvalidInputError`` naming what did not parse."""
    rows: list[DesignRow] = []
    for line in text.splitlines():
        m = _ROW.match(line.strip())
        if not m:
            continue
        label = m["label"].strip()
        note = (m["note"] or "").strip()
        rows.append(DesignRow(
            label=label, table=label.split()[-1], records=int(m["records"].replace(",", "")),
            cumulative=note in {"누적", "캐시"}, disk_mib=_mib(m["disk"], m["unit"]),
            disk_is_upper_bound=m["op"] == "<", note=note))
    total = _TOTAL.search(text)
    if not rows or total is None:
        raise InvalidInputError("design §7", "no volume table rows or no '월 ~N MB … 1년 후 ~N GB' total line found")
    return DesignVolume(rows, _mib(total["month"], total["munit"]), _mib(total["year"], total["yunit"]))


# --- the workload and retention model ------------------------------------------------------------

@dataclass(frozen=True)
class Workload:
    """What one active user makes. Rows per turn come from §7 itself (600/3,000/6,000 a month at
    20 turns a day); standing rows are §7's cumulative counts."""

    turns_per_day: float = 20.0
    memory_units_per_turn: float = 1.0
    graph_runs_per_turn: float = 1.0
    audit_per_turn: float = 5.0
    cost_per_turn: float = 10.0
    # Standing rows per user (schedules has user_id; user_preferences is one per user).
    schedules: int = 10
    user_preferences: int = 1
    # Standing rows per installation (the tables have no user column): §7 counts them per user,
    # which only matters for 1 user.
    installed_tools: int = 50
    mcp_servers: int = 5
    marketplace_packages: int = 100

    def __post_init__(self) -> None:
        if not self.turns_per_day > 0:
            raise ConfigError("--turns-per-day", f"must be > 0, got {self.turns_per_day}")

    @property
    def turns_per_month(self) -> float:
        return self.turns_per_day * DAYS_PER_MONTH


RULE_OF_TABLE: Final[Mapping[str, str]] = {
    "audit_logs": retention.AUDIT_RULE.name,
    "cost_tracking": retention.COST_RULE.name,
    # LangGraph threads are assumed to end the day they start: idle for N days = N days old.
    "checkpoints": retention.THREAD_RULE.name,
}
"""Which rule of the retention policy shrinks which growing table (the others are kept)."""


@dataclass(frozen=True)
class Retention:
    """The retention policy the runner applies (:data:`jedisos_db.runtime.retention.POLICY`),
    over the workload's severity mix (what share of audit rows a severity rule may delete)."""

    policy: tuple[RetentionRule, ...] = retention.POLICY
    severity_mix: Mapping[str, float] = field(default_factory=lambda: dict(datagen.SEVERITY_MIX))

    def rule_for(self, table: str) -> RetentionRule | None:
        name = RULE_OF_TABLE.get(table)
        return next((rule for rule in self.policy if rule.name == name), None)

    def deletable_share(self, rule: RetentionRule) -> float:
        """Share of a table's rows the rule deletes once they are old enough."""
        if not rule.only_severities:
            return 1.0
        return sum(self.severity_mix.get(severity, 0.0) for severity in rule.only_severities)


GROWTH_TABLES = ("memory_units", "checkpoints", "audit_logs", "cost_tracking")
PER_USER_STANDING = ("schedules", "user_preferences")
PER_INSTALLATION = ("installed_tools", "mcp_servers", "marketplace_packages")


def monthly_rows(w: Workload) -> dict[str, float]:
    """Rows (graph runs for ``checkpoints``) one user adds per month, per growing table."""
    t = w.turns_per_month
    return {"memory_units": t * w.memory_units_per_turn, "checkpoints": t * w.graph_runs_per_turn,
            "audit_logs": t * w.audit_per_turn, "cost_tracking": t * w.cost_per_turn}


def retained_months(table: str, months: float, r: Retention) -> float:
    """How many months of a growing table's rows are on disk after ``months`` with retention.

    Deleted rows' space is reused by later inserts once (auto)vacuum has run, so a table under a
    window policy plateaus at the window's size rather than shrinking on disk.
    """
    rule = r.rule_for(table)
    if rule is None:
        return months
    window = min(months, rule.keep.days / DAYS_PER_MONTH)
    share = r.deletable_share(rule)
    return months * (1 - share) + window * share


@dataclass(frozen=True)
class TableMeasure:
    """One table measured on the server (:mod:`.measure`)."""

    table: str
    unit: str
    """What one counted unit is: ``row``, or ``graph run`` for LangGraph."""
    count: int
    empty_bytes: int
    total_bytes: int
    heap_bytes: int
    avg_tuple_bytes: float
    source: str
    thread_turns: int = 0
    """LangGraph only: turns per thread in the run measured (bytes per run grow with it)."""

    @property
    def bytes_per_unit(self) -> float:
        return (self.total_bytes - self.empty_bytes) / self.count if self.count else 0.0


@dataclass(frozen=True)
class Measured:
    """Bytes per unit of each table: per row, per graph run for ``checkpoints``."""

    bytes_per_row: dict[str, float]
    empty_bytes: dict[str, int] = field(default_factory=dict)


def measured_from(measures: Sequence[TableMeasure]) -> Measured:
    return Measured({m.table: m.bytes_per_unit for m in measures}, {m.table: m.empty_bytes for m in measures})


def project_bytes(m: Measured, w: Workload, *, users: int, months: float,
                  retention: Retention | None) -> dict[str, float]:
    """Bytes per table after ``months`` for ``users`` users (retention None = keep everything)."""
    if users < 1:
        raise ConfigError("--users", f"must be >= 1, got {users}")
    if months < 0:
        raise ConfigError("--months", f"must be >= 0, got {months}")
    rows = monthly_rows(w)
    out: dict[str, float] = {}
    for table in GROWTH_TABLES:
        kept = months if retention is None else retained_months(table, months, retention)
        out[table] = users * rows[table] * kept * m.bytes_per_row[table]
    for table in PER_USER_STANDING:
        out[table] = users * getattr(w, table) * m.bytes_per_row[table]
    for table in PER_INSTALLATION:
        out[table] = getattr(w, table) * m.bytes_per_row[table] + m.empty_bytes.get(table, 0)
    return out


def total_bytes(m: Measured, w: Workload, *, users: int, months: float, retention: Retention | None) -> float:
    return sum(project_bytes(m, w, users=users, months=months, retention=retention).values())


@dataclass(frozen=True)
class Comparison:
    label: str
    design_records: int
    design_mib: float
    design_is_bound: bool
    measured_mib: float
    ratio: float
    verdict: str


def verdict(measured: float, design: float, *, upper_bound: bool) -> tuple[float, str]:
    """(measured / design, verdict). Within 2× either way is a match; a bound is met or exceeded."""
    ratio = measured / design if design > 0 else math.inf
    if upper_bound:
        return ratio, "within bound" if measured <= design else "exceeds bound"
    if ratio > 2:
        return ratio, "design underestimates"
    if ratio < 0.5:
        return ratio, "design overestimates"
    return ratio, "matches (within 2x)"


def compare(design: DesignVolume, m: Measured, w: Workload = Workload()) -> list[Comparison]:
    """Each §7 row beside the measurement at the design's own workload (20 turns a day, 1 user); rows
    whose table was not measured are left out."""
    rows = monthly_rows(w)
    out = []
    for d in design.rows:
        if d.table not in m.bytes_per_row:
            continue
        per_row = m.bytes_per_row[d.table]
        # Growth rows: our rows per turn are §7's records at 20 turns/day, so the two sides differ
        # only by bytes per row. Standing rows: the count plus the empty table's pages.
        measured = (d.records * per_row + m.empty_bytes.get(d.table, 0)) if d.cumulative else rows[d.table] * per_row
        ratio, word = verdict(measured / MIB, d.disk_mib, upper_bound=d.disk_is_upper_bound)
        out.append(Comparison(d.label, d.records, d.disk_mib, d.disk_is_upper_bound, measured / MIB, ratio, word))
    return out


# --- connection budget ---------------------------------------------------------------------------

@dataclass(frozen=True)
class ConnectionBudget:
    """The design's pools (§1) against the server's connection slots, via :mod:`jedisos_db.ops.budget`."""

    max_connections: int
    reserved: int
    demand_one_process: int
    fits_one_process: bool
    jedisos_processes_that_fit: int
    verdict: budget.BudgetVerdict
    """One JediSOS process beside one Hindsight server."""


def connection_budget(max_connections: int, reserved: int = budget.POSTGRES_SUPERUSER_RESERVED) -> ConnectionBudget:
    """One Hindsight server (default pools) plus JediSOS processes at the design's pool sizes."""
    pools = budget.design_pools(jedisos_processes=1)
    one = budget.connection_budget(pools, max_connections=max_connections, superuser_reserved=reserved)
    fixed = [p for p in pools if p.name.startswith("hindsight")]
    per_process = [p for p in pools if not p.name.startswith("hindsight")]
    fit = budget.max_processes(per_process, fixed, max_connections=max_connections, superuser_reserved=reserved)
    return ConnectionBudget(max_connections, reserved, one.demand, one.fits, fit, one)


# --- the whole model -----------------------------------------------------------------------------

@dataclass(frozen=True)
class CapacityConfig:
    users: tuple[int, ...] = (1, 100, 10_000)
    months: int = 12
    turns_per_day: float = 20.0
    embedding_dim: int = 384
    rows: int = 2000
    """Generated rows per jedisos table and memory units measured."""
    langgraph_threads: int = 3
    turns_per_thread: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.users or any(u < 1 for u in self.users):
            raise ConfigError("--users", f"each must be >= 1, got {list(self.users)}")
        if self.months < 1:
            raise ConfigError("--months", f"must be >= 1, got {self.months}")
        if self.embedding_dim not in (384, 1536):
            raise ConfigError("--embedding-dim", f"must be 384 or 1536, got {self.embedding_dim}")
        if self.rows < 10:
            raise ConfigError("--rows", f"must be >= 10 (page granularity swamps fewer), got {self.rows}")
        if self.langgraph_threads < 1 or self.turns_per_thread < 1:
            raise ConfigError("--turns-per-thread", "threads and turns per thread must be >= 1")
        Workload(turns_per_day=self.turns_per_day)

    @property
    def workload(self) -> Workload:
        return Workload(turns_per_day=self.turns_per_day)


@dataclass
class CapacityReport:
    config: CapacityConfig
    server: dict[str, Any]
    measures: list[TableMeasure]
    comparisons: list[Comparison]
    projections: dict[int, dict[str, dict[str, float]]]
    """users -> {"no_retention"|"retention"} -> table -> bytes after ``months``."""
    monthly: dict[int, dict[str, list[float]]]
    """users -> {"no_retention"|"retention"} -> total bytes at month 1..months."""
    budget: ConnectionBudget
    design: DesignVolume
    checkpoint_sensitivity: list[TableMeasure] = field(default_factory=list)
    """Bytes per graph run for other thread lengths (the message list is stored per version)."""
    retention: Retention = field(default_factory=Retention)
    created: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))

    def measured(self) -> Measured:
        return measured_from(self.measures)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["measures"] = [dict(asdict(m), bytes_per_unit=m.bytes_per_unit) for m in self.measures]
        return d


def build_report(config: CapacityConfig, measures: list[TableMeasure], server: provision.ServerInfo,
                 reserved_connections: int = 3, checkpoint_sensitivity: Sequence[TableMeasure] = ()
                 ) -> CapacityReport:
    """Everything after measurement: pure arithmetic on the measures."""
    m = measured_from(measures)
    w = config.workload
    kept = Retention()
    design = parse_section7()
    projections: dict[int, dict[str, dict[str, float]]] = {}
    monthly: dict[int, dict[str, list[float]]] = {}
    for users in config.users:
        projections[users] = {
            "no_retention": project_bytes(m, w, users=users, months=config.months, retention=None),
            "retention": project_bytes(m, w, users=users, months=config.months, retention=kept)}
        monthly[users] = {
            key: [total_bytes(m, w, users=users, months=mo, retention=ret) for mo in range(1, config.months + 1)]
            for key, ret in (("no_retention", None), ("retention", kept))}
    return CapacityReport(config, asdict(server), measures, compare(design, m), projections, monthly,
                          connection_budget(server.max_connections, reserved_connections), design,
                          list(checkpoint_sensitivity), kept)
