"""Terminal rendering of what the other rooms return: rich tables, built from their data.

Each function takes a result (a report, a verdict, bench results) and returns renderables; the
commands in :mod:`jedisos_db.cli.main` print them. Cells are :class:`~rich.text.Text`, never
markup, because they carry user text such as package extras (``jedisos-db[bench]``).
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from rich.console import Console, RenderableType
from rich.measure import Measurement
from rich.segment import Segments
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:  # the harness modules need optional extras (numpy, langgraph): imported where used
    from jedisos_db.harness import designs, pools, retention_race, vectorbench
    from jedisos_db.harness.capacity import CapacityReport
    from jedisos_db.harness.verify.run import Ledger
    from jedisos_db.ops import backup, budget, provision, startup
    from jedisos_db.runtime import retention


def table(*columns: str, title: str | None = None, numeric: Iterable[int] = (), caption: str | None = None) -> Table:
    """A table with these column headers; ``numeric`` columns are right-aligned."""
    right = set(numeric)
    out = Table(title=title, title_justify="left", title_style="bold", caption=caption or None,
                caption_justify="left")
    for i, name in enumerate(columns):
        # Fold long words rather than cut them ("…" would lose an env var's name on a narrow
        # terminal); the first column names the row and stays on one line.
        out.add_column(Text(name), justify="right" if i in right else "left", overflow="fold", no_wrap=i == 0)
    return out


def row(t: Table, *cells: object, bold: bool = False) -> None:
    t.add_row(*(Text(str(cell)) for cell in cells), style="bold" if bold else None)


WIDEST = 200
"""A table is printed at its natural width up to this many columns, even on a narrower terminal
or a pipe (80 columns to rich): folding a 12-column table into 80 would make it unreadable."""


def show(console: Console, renderables: Iterable[RenderableType]) -> None:
    """Print ``renderables``; tables at their natural width (up to :data:`WIDEST`)."""
    for renderable in renderables:
        if isinstance(renderable, Table):
            natural = Measurement.get(console, console.options.update(width=WIDEST), renderable).maximum
            options = console.options.update(width=max(console.width, min(natural, WIDEST)))
            # print(width=...) cannot exceed the console's width; pre-rendered segments can.
            console.print(Segments(console.render(renderable, options)))
        else:
            console.print(renderable)


def to_text(renderables: Iterable[RenderableType], width: int = 80) -> str:
    """Renderables as plain text, as :func:`show` prints them (for test output and benchmark summaries)."""
    console = Console(file=io.StringIO(), width=width, markup=False, highlight=False, color_system=None,
                      soft_wrap=True)
    show(console, renderables)
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(out, str)
    return out


# --- ops ---------------------------------------------------------------------------------------

def startup_steps(steps: Sequence[startup.StartupStep]) -> Table:
    t = table("step", "status", "detail", title="start-up order")
    for step in steps:
        row(t, step.name, step.status, step.detail)
    return t


def budget_verdict(verdict: budget.BudgetVerdict) -> list[RenderableType]:
    t = table("pool", "max/proc", "procs", "total", "source", numeric=(1, 2, 3))
    for p in verdict.pools:
        row(t, p.name, p.max_per_process, p.processes, p.total, p.source)
    fits = "fits" if verdict.fits else f"DOES NOT FIT: {-verdict.headroom} connection(s) short"
    return [t, Text(f"demand {verdict.demand} vs available {verdict.available} (max_connections "
                    f"{verdict.max_connections} - reserved {verdict.reserved}): {fits}")]


# --- ops: backup / restore --------------------------------------------------------------------

def backup_tables(manifest: backup.Manifest) -> Table:
    t = table("table", "rows", "checksum", numeric=(1,))
    for s in manifest.tables:
        row(t, s.name, s.rows, s.checksum)
    return t


def restore_check(check: backup.Verification) -> Table:
    t = table("table", "rows (backup)", "rows (restored)", "checksum equal", numeric=(1, 2))
    for c in check.tables:
        row(t, f"{c.schema}.{c.table}", c.expected.rows if c.expected else "-",
            c.actual.rows if c.actual else "-", "yes" if c.ok else "NO")
    return t


# --- runtime -----------------------------------------------------------------------------------

def retention_report(report: retention.RetentionReport) -> Table:
    t = table("rule", "would delete" if report.dry_run else "deleted", "batches", "what", numeric=(1, 2))
    for r in report.results:
        row(t, r.rule, r.rows, "-" if r.dry_run else r.batches, r.description + (f" ({r.note})" if r.note else ""))
    return t


# --- harness -----------------------------------------------------------------------------------

def capacity(report: CapacityReport) -> list[RenderableType]:
    """The capacity report's tables (the same content as capacity.md)."""
    from jedisos_db.harness.capacity import report as capacity_report

    out: list[RenderableType] = [Text(line) for line in capacity_report.headline(report)]
    for section in capacity_report.tables(report):
        out.append(Text(""))
        t = table(*section.columns, title=section.title, numeric=section.numeric, caption=section.intro)
        for i, cells in enumerate(section.rows):
            row(t, *cells, bold=i in section.emphasised)
        out.append(t)
        if section.note:
            out.append(Text(section.note))
    out += [Text(""), Text("Retention: " + capacity_report.retention_text(report))]
    return out


def pools_report(report: pools.IndependenceReport) -> list[RenderableType]:
    lat = table("probe", "condition", "n", "p50 ms", "p99 ms", "x idle p50", "x idle p99", "errors",
                title="latency of each pool's probe, idle and while another pool is saturated",
                numeric=(2, 3, 4, 5, 6))
    for latency in report.latencies:
        idle = report.get(latency.probe, "idle")
        ratios = ("", "") if latency.condition == "idle" else (
            f"{latency.p50_ms / idle.p50_ms:.2f}", f"{latency.p99_ms / idle.p99_ms:.2f}")
        row(lat, latency.probe, latency.condition, len(latency.samples), f"{latency.p50_ms:.2f}",
            f"{latency.p99_ms:.2f}", *ratios, "; ".join(latency.errors[:2]))
    sat = table("saturated", "pool max", "peak in use", "server saw", "waits", "timeouts", "operations", "errors",
                title="the saturated pools", numeric=(1, 2, 3, 4, 5, 6))
    for kind, s in report.saturations.items():
        row(sat, kind, s.max_size, s.peak_in_use, report.server_peaks.get(kind, 0), s.waited, s.timeouts,
            s.operations, "; ".join(s.errors[:2]))
    load = report.load
    return [lat, sat,
            Text(f"load: {load.load_tasks} tasks, jedisos pool {load.jedisos_pool_size}+{load.jedisos_max_overflow}, "
                 f"langgraph pool {load.langgraph.min_size}..{load.langgraph.max_size} shared by "
                 f"{load.langgraph_savers} savers"),
            Text("server: " + ", ".join(f"{k}={v}" for k, v in sorted(report.settings.items())))]


def server_settings(info: provision.ServerInfo, keys: Iterable[str]) -> str:
    s = info.settings
    return (f"PostgreSQL {info.server_version}, pgvector {info.pgvector_version}; "
            + ", ".join(f"{key}={s[key]}" for key in keys if key in s))


def vectorbench_results(results: Sequence[vectorbench.SuiteResult],
                        info: provision.ServerInfo | None = None) -> list[RenderableType]:
    """The recall/QPS sweep and the per-bank filtered case, headed by the server settings."""
    from jedisos_db.harness import vectorbench

    out: list[RenderableType] = []
    if info is not None:
        out.append(Text(f"Server: {server_settings(info, vectorbench.REPORTED_SETTINGS)}; HNSW built with "
                        f"maintenance_work_mem={vectorbench.MAINTENANCE_WORK_MEM}"))
    sweep = table("data", "rows", "m/ef_c", "build s", "index MB", "ef_search", "recall@k", "QPS 1 conn",
                  "QPS N conn", "p50 ms", "p99 ms", "plan", title="pgvector HNSW: recall and speed per ef_search",
                  numeric=range(1, 11))
    for r in results:
        b = r.build
        for s in r.sweep:
            row(sweep, r.kind, r.rows, f"{b['m']}/{b['ef_construction']}", f"{b['seconds']:.1f}",
                f"{b['index_bytes'] / 2**20:.1f}", s.ef_search, f"{s.recall:.3f}", f"{s.qps_1:.0f}",
                f"{s.qps_n:.0f} (N={r.connections})", f"{s.p50_ms:.2f}", f"{s.p99_ms:.2f}", s.plan)
    banks = results[0].banks if results else 0
    filtered = table("data", "rows", "iterative_scan", "ef_search", "recall@k", "rows returned", "QPS 1 conn",
                     "p50 ms", "p99 ms", "plan", numeric=(1, 3, 4, 5, 6, 7, 8),
                     title=f"Per-bank filtered kNN (WHERE bank_id = …, one bank of {banks})")
    for r in results:
        for f in r.filtered:
            row(filtered, r.kind, r.rows, f.iterative_scan, f.ef_search, f"{f.recall:.3f}", f"{f.mean_returned:.1f}",
                f"{f.qps_1:.0f}", f"{f.p50_ms:.2f}", f"{f.p99_ms:.2f}", f.plan)
    return [*out, sweep, filtered]


def designs_table(loaded: Sequence[designs.Design]) -> Table:
    """One row per design: what its file says, and its connection budget margin per server."""
    t = table("design", "jedisos schema", "max_conn", "pool demand", "margin", "embedding", "retention",
              "hindsight", title="designs", numeric=(2, 3, 4, 5))
    for d in loaded:
        source = d.schema.source if d.schema.source == "ddl" else f"revision {d.schema.revision}"
        if d.schema.partitioned:
            source += f", partitioned: {', '.join(d.schema.partitioned)}"
        budgets = d.budgets()
        demand = " / ".join(f"{v.demand}" for v in budgets.values())
        margin = " / ".join(f"{name} {v.headroom:+d}" for name, v in budgets.items())
        methods = ", ".join(f"{rule}: {spec.method}" for rule, spec in d.retention.items())
        row(t, d.name, source, d.max_connections, demand, margin, d.embedding_dim, methods,
            f"{d.hindsight_placement}, banks {d.banks}")
    return t


def race_results(results: Sequence[retention_race.RaceResult]) -> list[RenderableType]:
    """The retention race side by side; × is against the first design."""
    t = table("design", "method", "expired rows", "removal s", "x faster", "whole purge s", "idle p50/p99 ms",
              "during p50/p99 ms", "during n", "p99 x idle", "same n", "acked", "lost", "left", "kept lost",
              numeric=range(2, 15), title="removing expired audit rows while one writer inserts")
    base = results[0] if results else None
    for r in results:
        faster = f"{base.removal_s / r.removal_s:.1f}" if base is not None else ""
        row(t, r.design, r.method, r.rows, f"{r.removal_s:.3f}", faster, f"{r.purge_s:.3f}",
            f"{r.idle.p50_ms:.1f} / {r.idle.p99_ms:.1f}", f"{r.during.p50_ms:.1f} / {r.during.p99_ms:.1f}",
            len(r.during.samples), f"{r.p99_ratio:.2f}", f"{r.p99_ratio_same_n:.2f}", r.acknowledged,
            r.lost, r.expired_left, r.kept_lost)
    return [t, Text("removal: until no query sees the expired rows; whole purge: until the purge returned "
                    "(a partition drop then also dropped the detached months). p99 over fewer than 100 inserts is "
                    "their maximum: read 'during n' with it; 'same n' takes idle's p99 at that sample size.")]


def verdicts(ledger: Ledger) -> list[RenderableType]:
    """The ledger's summary: the counts, every claim that ran (false ones first), why the others did not."""
    from collections import Counter

    from jedisos_db.harness.verify import report

    t = table("claim", "§", "verdict", "key figures", "evidence", title="verdicts on the design as documented")
    ran = [c for c in report.ordered(ledger.claims) if c.verdict != "not_run"]
    for c in ran:
        evidence = c.evidence if len(c.evidence) <= 140 else c.evidence[:139] + "…"
        row(t, c.id, c.section, report.LABEL[c.verdict], report.key_figures(c.figures, 2), evidence,
            bold=c.verdict == "fails")
    why = Counter(c.evidence.split(";")[0].split(":")[0] for c in ledger.claims if c.verdict == "not_run")
    out: list[RenderableType] = [t] if ran else []
    if why:
        reasons = "; ".join(f"{n} {reason}" for reason, n in why.most_common())
        out.append(Text(f"not run: {sum(why.values())} — {reasons} (report.md lists each with its reason)"))
    out += [Text(line) for line in report.headline(ledger)]
    return out


def comparison(ledger: Ledger) -> list[RenderableType]:
    """Several designs side by side (``verify --design A --design B``): per design the counts and what was not
    measured, each measurement's figures with a column per design, and the claims whose verdict differs."""
    from jedisos_db.harness.verify import report

    blocks = report.side_by_side(ledger)
    wanted = {b.title for b in blocks if b.level == 3 and b.title in report.measurement_names(ledger)}
    wanted |= {blocks[0].title, report.AGAINST_TITLE, "Verdicts that differ between designs"}
    out: list[RenderableType] = []
    for b in blocks:
        if b.title not in wanted or not b.columns:
            continue
        columns = b.columns[:-1] if b is blocks[0] else b.columns  # the descriptions are in report.md
        t = table(*columns, title=b.title, numeric=b.numeric)
        for cells in b.rows:  # long evidence is in report.md; a cell here stays a few lines
            row(t, *(c if len(c) <= 140 else c[:139] + "…" for c in cells[:len(columns)]),
                bold=report.LABEL["fails"] in cells)
        out.append(t)
        out += [Text(line) for line in b.after]
    wrong = next(b for b in blocks if b.title.startswith("What is wrong"))
    out += [Text(line) for line in wrong.after]
    out += [Text(line) for line in blocks[0].text]
    return out
