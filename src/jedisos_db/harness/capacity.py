"""Capacity model: measured bytes per row on the real server, projected to N users (design §7).

Design §7 estimates rows per month and disk use per active user. This module replaces the
estimate with measurements and sets the two side by side:

1. **measure** — in a scratch database on the target server: every ``jedisos`` table filled with
   representative generated rows (:mod:`jedisos_db.harness.datagen`), ``VACUUM ANALYZE``d, its
   ``pg_total_relation_size`` minus the empty table's, divided by the rows; LangGraph checkpoints
   from a real graph run through ``PostgresSaver`` in schema ``langgraph``; Hindsight memory units
   from the ``hindsight`` schema's catalog statistics when a Hindsight server has filled it, else
   from the bench table shaped like ``memory_units`` (:mod:`jedisos_db.harness.vectorbench`);
2. **project** — rows per turn (taken from §7's own figures: 20 turns a day give 600 memory units,
   3,000 audit rows, 6,000 cost rows a month) times measured bytes, per user per month and year,
   for N users, with and without the §7 retention policy;
3. **compare** — each §7 row beside the measurement, with a ratio and a verdict;
4. **report** — Markdown, JSON and PNG plots into an output directory.

The projection and comparison are pure functions (unit-tested with exact figures); only
:func:`measure` needs a server.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import secrets
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import create_engine, insert, select
from sqlalchemy.engine import Engine

from jedisos_db.harness import datagen
from jedisos_db.ops import budget, provision
from jedisos_db.runtime.db import migrations, models
from jedisos_db.runtime.db.connect import connect
from jedisos_db.runtime.errors import ConfigError, InvalidInputError, NotFoundError
from jedisos_db.runtime.owners import HINDSIGHT_SCHEMA, SCHEMA
from jedisos_db.runtime.urls import DatabaseURL

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
    """§7's table and total line as data. Raises ``ValueError`` naming what did not parse."""
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


@dataclass(frozen=True)
class Retention:
    """§7's recommended policy: audit debug/info after 90 days, cost detail after 365 days,
    LangGraph threads 30 days after they end (threads are assumed to end the day they start)."""

    audit_days: int = 90
    audit_deletable_share: float = datagen.SEVERITY_MIX["debug"] + datagen.SEVERITY_MIX["info"]
    cost_days: int = 365
    checkpoint_days: int = 30


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
    if table == "audit_logs":
        window = min(months, r.audit_days / DAYS_PER_MONTH)
        return months * (1 - r.audit_deletable_share) + window * r.audit_deletable_share
    if table == "cost_tracking":
        return min(months, r.cost_days / DAYS_PER_MONTH)
    if table == "checkpoints":
        return min(months, r.checkpoint_days / DAYS_PER_MONTH)
    return months


@dataclass(frozen=True)
class Measured:
    """Bytes per unit of each table: per row, per graph run for ``checkpoints``."""

    bytes_per_row: dict[str, float]
    empty_bytes: dict[str, int] = field(default_factory=dict)


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
    """Each §7 row beside the measurement at the design's own workload (20 turns a day, 1 user)."""
    rows = monthly_rows(w)
    out = []
    for d in design.rows:
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
    table: str
    """``BudgetVerdict.render()`` for one JediSOS process beside one Hindsight server."""


def connection_budget(max_connections: int, reserved: int = budget.POSTGRES_SUPERUSER_RESERVED) -> ConnectionBudget:
    """One Hindsight server (default pools) plus JediSOS processes at the design's pool sizes."""
    pools = budget.design_pools(jedisos_processes=1)
    verdict = budget.connection_budget(pools, max_connections=max_connections, superuser_reserved=reserved)
    fixed = [p for p in pools if p.name.startswith("hindsight")]
    per_process = [p for p in pools if not p.name.startswith("hindsight")]
    fit = budget.max_processes(per_process, fixed, max_connections=max_connections, superuser_reserved=reserved)
    return ConnectionBudget(max_connections, reserved, verdict.demand, verdict.fits, fit, verdict.render())


# --- measurement (needs a server) ----------------------------------------------------------------

@dataclass(frozen=True)
class TableMeasure:
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


Advance = Callable[[str, float], None]
"""Progress callback: (step name, units done)."""


def _noop(_step: str, _n: float) -> None:
    return None


def _sizes(conn: psycopg.Connection[Any], schema: str, table: str) -> tuple[int, int]:
    row = conn.execute(
        "SELECT pg_total_relation_size(c.oid), pg_relation_size(c.oid) FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s",
        [schema, table]).fetchone()
    if row is None:
        raise NotFoundError(f"table {schema}.{table} not found")
    return int(row[0]), int(row[1])


def _schema_bytes(conn: psycopg.Connection[Any], schema: str) -> int:
    row = conn.execute(
        "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind = 'r'",
        [schema]).fetchone()
    assert row is not None
    return int(row[0])


def _avg_tuple(conn: psycopg.Connection[Any], schema: str, table: str) -> float:
    row = conn.execute(sql.SQL("SELECT avg(pg_column_size(t.*)) FROM {}.{} t").format(
        sql.Identifier(schema), sql.Identifier(table))).fetchone()
    return float(row[0]) if row and row[0] is not None else 0.0


def measure_jedisos(url: DatabaseURL, rows: int, *, seed: int = 0, advance: Advance = _noop) -> list[TableMeasure]:
    """Bytes per row of the seven ``jedisos`` tables of a database migrated to head (fills them)."""
    engine: Engine = create_engine(url.psycopg())
    out: list[TableMeasure] = []
    try:
        with connect(url) as conn:
            order = ["installed_tools", "mcp_servers", "audit_logs", "cost_tracking", "user_preferences",
                     "schedules", "marketplace_packages"]
            for table in order:
                empty, _ = _sizes(conn, SCHEMA, table)
                model_table = models.Base.metadata.tables[f"{SCHEMA}.{table}"]
                if table == "mcp_servers":
                    tools = models.Base.metadata.tables[f"{SCHEMA}.installed_tools"]
                    with engine.connect() as sa:
                        ids = list(sa.execute(select(tools.c.id).limit(rows)).scalars())
                    generated = datagen.mcp_server_rows(ids, seed=seed)
                else:
                    generated = datagen.ROW_GENERATORS[table](rows, seed=seed)
                for start in range(0, len(generated), 1000):
                    chunk = generated[start:start + 1000]
                    with engine.begin() as sa:
                        sa.execute(insert(model_table), chunk)
                    advance(table, len(chunk))
                conn.execute(sql.SQL("VACUUM ANALYZE {}.{}").format(sql.Identifier(SCHEMA), sql.Identifier(table)))
                total, heap = _sizes(conn, SCHEMA, table)
                out.append(TableMeasure(table, "row", len(generated), empty, total, heap,
                                        _avg_tuple(conn, SCHEMA, table), "generated rows (jedisos_db.harness.datagen)"))
    finally:
        engine.dispose()
    return out


def _langgraph_available() -> str | None:
    try:
        import jedisos_db.harness.agentgraph
        import jedisos_db.runtime.checkpointer  # noqa: F401
    except ImportError as exc:
        return f"langgraph / langgraph-checkpoint-postgres not importable ({exc}); pip install 'jedisos-db[bench]'"
    return None


FALLBACK_CHECKPOINT_BYTES_PER_RUN = 3 * 4.5 * 1024
"""DESIGN.md's verified figure (3 checkpoint rows per run, ~4.5 KB each), used only when
LangGraph is not installed, and labelled so in the report."""


def measure_langgraph(url: DatabaseURL, *, threads: int = 3, turns_per_thread: int = 10, seed: int = 0,
                      advance: Advance = _noop) -> TableMeasure:
    """Bytes per graph run of a small real graph checkpointed by ``PostgresSaver`` in ``langgraph``.

    The state is the design's ``AgentState`` (§3-2): messages, memory_context, bank_id,
    tool_call_count. Each turn adds a user message and an assistant reply; the checkpointer stores
    the whole message list per version, so bytes per run grow with the thread's length: the figure
    holds for threads of ``turns_per_thread`` turns.
    """
    reason = _langgraph_available()
    if reason is not None:
        return TableMeasure("checkpoints", "graph run", 1, 0, int(FALLBACK_CHECKPOINT_BYTES_PER_RUN), 0, 0.0,
                            f"FALLBACK, not measured: {reason}; using DESIGN.md's 3 rows x 4.5 KB per run")
    import random

    from langgraph.checkpoint.postgres import PostgresSaver

    from jedisos_db.harness import agentgraph
    from jedisos_db.runtime import checkpointer

    rng = random.Random(seed)
    checkpointer.ensure_schema(url)
    # The checkpointer factory's schema-confined connection (only `langgraph` on the search_path).
    with psycopg.connect(url.libpq(), **checkpointer.connection_kwargs()) as conn:
        saver = PostgresSaver(conn)
        saver.setup()
        with connect(url) as admin:
            admin.execute(sql.SQL("VACUUM ANALYZE"))
            empty = _schema_bytes(admin, checkpointer.SCHEMA)
            graph = agentgraph.build(saver, seed=seed)
            checkpoints = 0
            for t in range(threads):
                config: Any = {"configurable": {"thread_id": f"jedisos-capacity-{seed}-{t}"}}
                for _ in range(turns_per_thread):
                    graph.invoke(agentgraph.user_turn(rng, f"bank-user-{t:05d}"), config)
                    advance("checkpoints", 1)
                checkpoints += sum(1 for _ in saver.list(config))
            admin.execute("VACUUM ANALYZE")
            total = _schema_bytes(admin, checkpointer.SCHEMA)
    runs = threads * turns_per_thread
    return TableMeasure("checkpoints", "graph run", runs, empty, total, 0, (total - empty) / max(checkpoints, 1),
                        f"real graph run: PostgresSaver in schema langgraph, {threads} threads x "
                        f"{turns_per_thread} turns, {checkpoints} checkpoints ({checkpoints / runs:.1f} per run); "
                        "avg tuple column = bytes per checkpoint", thread_turns=turns_per_thread)


def hindsight_memory_units(url: DatabaseURL, *, min_rows: int = 1000) -> TableMeasure | None:
    """Bytes per memory unit of a Hindsight server's own ``memory_units`` in this database, or None.

    Catalog statistics only (``reltuples``, relation sizes): the harness never reads Hindsight's
    rows. None when the schema is absent or holds fewer than ``min_rows`` units.
    """
    with connect(url) as conn:
        live = conn.execute(
            "SELECT c.reltuples::bigint FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname = 'memory_units'", [HINDSIGHT_SCHEMA]).fetchone()
        if live is None or live[0] < min_rows:
            return None
        total, heap = _sizes(conn, HINDSIGHT_SCHEMA, "memory_units")
    return TableMeasure("memory_units", "row", int(live[0]), 0, total, heap, heap / int(live[0]),
                        "Hindsight server's own memory_units (catalog statistics: reltuples, sizes)")


def bench_memory_units(url: DatabaseURL, *, dim: int = 384, rows: int = 2000, seed: int = 0,
                       advance: Advance = _noop) -> TableMeasure:
    """Bytes per memory unit of the bench table shaped like Hindsight's (with its indexes)."""
    from jedisos_db.harness import vectorbench

    table = f"memory_units_capacity_{dim}"
    data = vectorbench.make_dataset(rows, kind="clustered", dim=dim, queries=1, seed=seed)
    with vectorbench.connect(url) as conn:
        vectorbench.create_table(conn, table, dim, hindsight_indexes=True)
        conn.execute("VACUUM ANALYZE")
        empty, _ = _sizes(conn, vectorbench.BENCH_SCHEMA, table)
        vectorbench.fill(conn, table, data, progress=lambda n: advance("memory_units", n))
        conn.execute(sql.SQL("VACUUM ANALYZE {}.{}").format(sql.Identifier(vectorbench.BENCH_SCHEMA),
                                                            sql.Identifier(table)))
        vectorbench.build_index(conn, table, vectorbench.HnswParams())
        total, heap = _sizes(conn, vectorbench.BENCH_SCHEMA, table)
        avg = _avg_tuple(conn, vectorbench.BENCH_SCHEMA, table)
    return TableMeasure("memory_units", "row", rows, empty, total, heap, avg,
                        f"bench table {vectorbench.BENCH_SCHEMA}.{table}: Hindsight's memory_units columns, "
                        f"vector({dim}), HNSW m=16/ef_construction=64 + Hindsight's 8 btree and GIN indexes "
                        "(no Hindsight server data found)")


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


@contextmanager
def scratch_database(url: DatabaseURL, *, migrate: bool = True) -> Iterator[DatabaseURL]:
    """A database of its own on the server of ``url`` (migrated to head), dropped afterwards."""
    name = f"jedisos_capacity_{secrets.token_hex(4)}"
    scratch = provision.create_database(url, name)
    try:
        provision.bootstrap(scratch)
        if migrate:
            migrations.upgrade(scratch)
        yield scratch
    finally:
        provision.drop_database(url, name)


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
    created: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))

    def measured(self) -> Measured:
        return measured_from(self.measures)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["measures"] = [dict(asdict(m), bytes_per_unit=m.bytes_per_unit) for m in self.measures]
        return d


def measured_from(measures: Sequence[TableMeasure]) -> Measured:
    return Measured({m.table: m.bytes_per_unit for m in measures}, {m.table: m.empty_bytes for m in measures})


def build_report(config: CapacityConfig, measures: list[TableMeasure], server: provision.ServerInfo,
                 reserved_connections: int = 3, checkpoint_sensitivity: Sequence[TableMeasure] = ()
                 ) -> CapacityReport:
    """Everything after measurement: pure arithmetic on the measures."""
    m = measured_from(measures)
    w = Workload(turns_per_day=config.turns_per_day)
    design = parse_section7()
    projections: dict[int, dict[str, dict[str, float]]] = {}
    monthly: dict[int, dict[str, list[float]]] = {}
    for users in config.users:
        projections[users] = {
            "no_retention": project_bytes(m, w, users=users, months=config.months, retention=None),
            "retention": project_bytes(m, w, users=users, months=config.months, retention=Retention())}
        monthly[users] = {
            key: [sum(project_bytes(m, w, users=users, months=mo, retention=ret).values())
                  for mo in range(1, config.months + 1)]
            for key, ret in (("no_retention", None), ("retention", Retention()))}
    return CapacityReport(config, asdict(server), measures, compare(design, m), projections, monthly,
                          connection_budget(server.max_connections, reserved_connections), design,
                          list(checkpoint_sensitivity))


@dataclass(frozen=True)
class Measurement:
    measures: list[TableMeasure]
    server: provision.ServerInfo
    checkpoint_sensitivity: list[TableMeasure]


def sensitivity_lengths(turns_per_thread: int) -> tuple[int, ...]:
    """Thread lengths whose bytes per run are shown beside the configured one."""
    return tuple(sorted({1, 3 * turns_per_thread} - {turns_per_thread}))


def measure(url: DatabaseURL, config: CapacityConfig, advance: Advance = _noop) -> Measurement:
    """All measurements, in a scratch database on the server of ``url``; and the server's settings.

    Memory units come from a Hindsight server's data in the database of ``url`` when it has some.
    """
    hindsight = hindsight_memory_units(url)
    with scratch_database(url) as db:
        info = provision.server_info(db)  # in a database with `vector`, so its version shows
        measures = measure_jedisos(db, config.rows, seed=config.seed, advance=advance)
        measures.append(measure_langgraph(db, threads=config.langgraph_threads,
                                          turns_per_thread=config.turns_per_thread, seed=config.seed,
                                          advance=advance))
        measures.append(hindsight or bench_memory_units(db, dim=config.embedding_dim, rows=config.rows,
                                                        seed=config.seed, advance=advance))
    sensitivity = []
    total_runs = config.langgraph_threads * config.turns_per_thread
    for n in sensitivity_lengths(config.turns_per_thread):
        # A database each, and about as many runs as the main measurement: small deltas would
        # vanish into free space left in pages by earlier runs.
        with scratch_database(url, migrate=False) as db:
            sensitivity.append(measure_langgraph(db, threads=max(1, math.ceil(total_runs / n)), turns_per_thread=n,
                                                 seed=config.seed + n, advance=advance))
    return Measurement(measures, info, sensitivity)


def reserved_connections(url: DatabaseURL) -> int:
    with connect(url) as conn:
        row = conn.execute("SELECT current_setting('superuser_reserved_connections')::int + "
                           "current_setting('reserved_connections')::int").fetchone()
    return int(row[0]) if row else 3


# --- output ----------------------------------------------------------------------------------

def _mb(b: float) -> str:
    return f"{b / MIB:,.2f}"


def _gb(b: float) -> str:
    return f"{b / 2**30:,.2f}"


def render_markdown(r: CapacityReport) -> str:
    c = r.config
    w = Workload(turns_per_day=c.turns_per_day)
    s = r.server
    settings = ", ".join(f"{k}={v}" for k, v in sorted(s["settings"].items()))
    lines = [
        "# JediSOS capacity model (design §7, measured)", "",
        f"Generated {r.created} on PostgreSQL {s['server_version']}, pgvector {s['pgvector_version']} ({settings}).",
        f"Workload: {c.turns_per_day:g} turns/day per user ({w.turns_per_month:g}/month); per turn "
        f"{w.memory_units_per_turn:g} memory unit, {w.graph_runs_per_turn:g} graph run, {w.audit_per_turn:g} audit "
        f"rows, {w.cost_per_turn:g} cost rows (§7's own ratios); embedding vector({c.embedding_dim}); "
        f"{c.rows} generated rows per table.", "",
        "## Measured bytes per row", "",
        "| table | unit | counted | bytes/unit (total - empty) | heap bytes/unit | avg tuple bytes | source |",
        "|---|---|---:|---:|---:|---:|---|"]
    for t in r.measures:
        heap = f"{t.heap_bytes / t.count:,.0f}" if t.heap_bytes else "-"
        lines.append(f"| {t.table} | {t.unit} | {t.count} | {t.bytes_per_unit:,.0f} | {heap} | "
                     f"{t.avg_tuple_bytes:,.0f} | {t.source} |")
    lines += ["", "## Design §7 beside the measurement (1 user, 20 turns/day, per month; standing rows as counted)",
              "", "| §7 row | §7 records | §7 disk | measured | measured / §7 | verdict |",
              "|---|---:|---:|---:|---:|---|"]
    for cmp_ in r.comparisons:
        bound = "<" if cmp_.design_is_bound else "~"
        lines.append(f"| {cmp_.label} | {cmp_.design_records:,} | {bound}{cmp_.design_mib:g} MB | "
                     f"{cmp_.measured_mib:,.2f} MB | {cmp_.ratio:.2f} | {cmp_.verdict} |")
    design_w = Workload()
    m = r.measured()
    month = sum(project_bytes(m, design_w, users=1, months=1, retention=None).values())
    year = sum(project_bytes(m, design_w, users=1, months=12, retention=None).values())
    rm, vm = verdict(month / MIB, r.design.total_month_mib, upper_bound=False)
    ry, vy = verdict(year / MIB, r.design.total_year_mib, upper_bound=False)
    lines += [f"| **total, month 1** | | ~{r.design.total_month_mib:g} MB | {_mb(month)} MB | {rm:.2f} | {vm} |",
              f"| **total, year 1** | | ~{r.design.total_year_mib / 1024:g} GB | {_gb(year)} GB | {ry:.2f} | {vy} |",
              "", f"## Projection after {c.months} months", "",
              "| users | per user / month | per user / year | total, no retention | total, §7 retention | "
              "retention saves |", "|---:|---:|---:|---:|---:|---:|"]
    for users in c.users:
        no = sum(r.projections[users]["no_retention"].values())
        ret = sum(r.projections[users]["retention"].values())
        per_month = sum(project_bytes(m, w, users=1, months=1, retention=None).values())
        per_year = sum(project_bytes(m, w, users=1, months=12, retention=None).values())
        lines.append(f"| {users:,} | {_mb(per_month)} MB | {_gb(per_year)} GB | {_gb(no)} GB | {_gb(ret)} GB | "
                     f"{(1 - ret / no) * 100 if no else 0:.0f}% |")
    biggest = max(c.users)
    lines += ["", f"Per table for {biggest:,} users after {c.months} months:", "",
              "| table | no retention | §7 retention |", "|---|---:|---:|"]
    for table, size in r.projections[biggest]["no_retention"].items():
        lines.append(f"| {table} | {_gb(size)} GB | {_gb(r.projections[biggest]['retention'][table])} GB |")
    b = r.budget
    lines += ["", "## Connection budget (design §1 pools, jedisos_db.ops.budget)", "", "```", b.table, "```", "",
              f"JediSOS processes that fit beside one Hindsight server with its default pools: "
              f"**{b.jedisos_processes_that_fit}** (max_connections {b.max_connections}, {b.reserved} reserved).",
              *_sensitivity_lines(r),
              "", "## Not measured", "",
              "Without a running Hindsight server only `memory_units` is measured (on the bench table); Hindsight's "
              "other tables (documents, entities, unit_entities, memory_links, …) add to it, memory_links per unit. "
              "WAL, backups and free space left by DELETE before VACUUM are not included.",
              "", "## Retention (§7)", "",
              f"audit_logs debug/info after {Retention().audit_days} days ({Retention().audit_deletable_share:.0%} of "
              f"generated audit rows), cost_tracking after {Retention().cost_days} days (rolled up first into "
              "jedisos.daily_cost_rollup, one row per day, user, source and model, so daily_cost_summary keeps "
              "answering; the design's plain view would lose that history), "
              f"LangGraph threads {Retention().checkpoint_days} "
              "days after they end; memory units are kept. Space freed by DELETE is reused after VACUUM, "
              "not returned to the OS: tables plateau at the window's size.",
              "", "Plots: `capacity_growth.png`, `capacity_bytes_per_row.png`."]
    return "\n".join(lines) + "\n"


def _sensitivity_lines(r: CapacityReport) -> list[str]:
    main = next((m for m in r.measures if m.table == "checkpoints"), None)
    rows = sorted([*r.checkpoint_sensitivity, *([main] if main else [])], key=lambda m: m.thread_turns)
    if len(rows) < 2 or main is None or main.source.startswith("FALLBACK"):
        return []
    lines = ["", "## LangGraph checkpoints vs thread length", "",
             "Each checkpoint version stores the whole message list, so bytes per run grow with the thread:", "",
             "| turns in the thread | bytes per graph run |", "|---:|---:|"]
    for m in rows:
        lines.append(f"| {m.thread_turns}{' (used above)' if m is main else ''} | {m.bytes_per_unit:,.0f} |")
    return lines


def write_plots(r: CapacityReport, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    fig, axes = plt.subplots(1, len(r.config.users), figsize=(5 * len(r.config.users), 4), squeeze=False)
    months = list(range(1, r.config.months + 1))
    for ax, users in zip(axes[0], r.config.users, strict=True):
        for key, label in (("no_retention", "no retention"), ("retention", "§7 retention")):
            ax.plot(months, [b / 2**30 for b in r.monthly[users][key]], marker="o", label=label)
        ax.set_title(f"{users:,} user{'s' if users != 1 else ''}")
        ax.set_xlabel("month")
        ax.set_ylabel("GiB")
        ax.legend()
    fig.suptitle(f"Projected disk, {r.config.turns_per_day:g} turns/day per user")
    fig.tight_layout()
    paths.append(out / "capacity_growth.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(8, 4))
    labels = [c.label.split()[-1] for c in r.comparisons]
    x = range(len(labels))
    ax.bar([i - 0.2 for i in x], [c.design_mib for c in r.comparisons], width=0.4, label="design §7")
    ax.bar([i + 0.2 for i in x], [c.measured_mib for c in r.comparisons], width=0.4, label="measured")
    ax.set_xticks(list(x), labels, rotation=30, ha="right")
    ax.set_yscale("log")
    ax.set_ylabel("MiB (1 user, month 1 / standing)")
    ax.legend()
    fig.tight_layout()
    paths.append(out / "capacity_bytes_per_row.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)
    return paths


def write_report(r: CapacityReport, out: Path) -> list[Path]:
    """capacity.md, capacity.json and two PNG plots in ``out``; returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    md = out / "capacity.md"
    md.write_text(render_markdown(r), encoding="utf-8")
    js = out / "capacity.json"
    js.write_text(json.dumps(r.as_dict(), indent=2, default=str), encoding="utf-8")
    return [md, js, *write_plots(r, out)]


def run(url: DatabaseURL, config: CapacityConfig, out: Path,
        advance: Advance = _noop) -> tuple[CapacityReport, list[Path]]:
    """Measure on the server of ``url``, build the report, write it into ``out``."""
    done = measure(url, config, advance)
    report = build_report(config, done.measures, done.server, reserved_connections(url), done.checkpoint_sensitivity)
    return report, write_report(report, out)


def progress_totals(config: CapacityConfig) -> dict[str, float]:
    """Units each progress step counts to (for a progress bar per step)."""
    tables = ["installed_tools", "mcp_servers", "audit_logs", "cost_tracking", "user_preferences",
              "schedules", "marketplace_packages"]
    totals: dict[str, float] = dict.fromkeys(tables, float(config.rows))
    runs = config.langgraph_threads * config.turns_per_thread
    totals["checkpoints"] = float(runs + sum(max(1, math.ceil(runs / n)) * n
                                             for n in sensitivity_lengths(config.turns_per_thread)))
    totals["memory_units"] = float(config.rows)
    return totals
