"""The capacity report's content, and its files: ``capacity.md``, ``capacity.json``, PNG plots.

:func:`tables` is the report's content as rows of text, once: :func:`render_markdown` lays it out
for the file, and the CLI (``jedisos-db capacity``) shows the same tables in the terminal.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from jedisos_db.harness.capacity.model import MIB, CapacityReport, Workload, total_bytes, verdict

GROWTH_PLOT = "capacity_growth.png"
BYTES_PLOT = "capacity_bytes_per_row.png"


@dataclass(frozen=True)
class ReportTable:
    """One table of the report: a title, a sentence before and after, cells as text."""

    key: str
    title: str
    columns: tuple[str, ...]
    rows: Sequence[tuple[str, ...]]
    numeric: frozenset[int] = field(default_factory=frozenset)
    """Indexes of right-aligned (numeric) columns."""
    emphasised: frozenset[int] = field(default_factory=frozenset)
    """Indexes of rows shown in bold (totals)."""
    intro: str = ""
    note: str = ""


def _mb(b: float) -> str:
    return f"{b / MIB:,.2f}"


def _gb(b: float) -> str:
    return f"{b / 2**30:,.2f}"


def headline(r: CapacityReport) -> list[str]:
    """Where and with what the figures were made: the server, its settings, the workload."""
    c = r.config
    w = c.workload
    s = r.server
    settings = ", ".join(f"{k}={v}" for k, v in sorted(s["settings"].items()))
    return [f"Generated {r.created} on PostgreSQL {s['server_version']}, pgvector {s['pgvector_version']} "
            f"({settings}).",
            f"Workload: {c.turns_per_day:g} turns/day per user ({w.turns_per_month:g}/month); per turn "
            f"{w.memory_units_per_turn:g} memory unit, {w.graph_runs_per_turn:g} graph run, {w.audit_per_turn:g} "
            f"audit rows, {w.cost_per_turn:g} cost rows (§7's own ratios); embedding vector({c.embedding_dim}); "
            f"{c.rows} generated rows per table."]


def _measured(r: CapacityReport) -> ReportTable:
    rows = []
    for t in r.measures:
        heap = f"{t.heap_bytes / t.count:,.0f}" if t.heap_bytes else "-"
        rows.append((t.table, t.unit, str(t.count), f"{t.bytes_per_unit:,.0f}", heap, f"{t.avg_tuple_bytes:,.0f}",
                     t.source))
    return ReportTable("measured", "Measured bytes per row",
                       ("table", "unit", "counted", "bytes/unit (total - empty)", "heap bytes/unit", "avg tuple bytes",
                        "source"), rows, frozenset({2, 3, 4, 5}))


def _design(r: CapacityReport) -> ReportTable:
    rows = []
    for c in r.comparisons:
        bound = "<" if c.design_is_bound else "~"
        rows.append((c.label, f"{c.design_records:,}", f"{bound}{c.design_mib:g} MB", f"{c.measured_mib:,.2f} MB",
                     f"{c.ratio:.2f}", c.verdict))
    m = r.measured()
    month = total_bytes(m, Workload(), users=1, months=1, retention=None)
    year = total_bytes(m, Workload(), users=1, months=12, retention=None)
    rm, vm = verdict(month / MIB, r.design.total_month_mib, upper_bound=False)
    ry, vy = verdict(year / MIB, r.design.total_year_mib, upper_bound=False)
    rows += [("total, month 1", "", f"~{r.design.total_month_mib:g} MB", f"{_mb(month)} MB", f"{rm:.2f}", vm),
             ("total, year 1", "", f"~{r.design.total_year_mib / 1024:g} GB", f"{_gb(year)} GB", f"{ry:.2f}", vy)]
    return ReportTable("design", "Design §7 beside the measurement (1 user, 20 turns/day, per month; standing rows "
                                 "as counted)",
                       ("§7 row", "§7 records", "§7 disk", "measured", "measured / §7", "verdict"), rows,
                       frozenset({1, 2, 3, 4}), frozenset({len(rows) - 2, len(rows) - 1}))


def _projection(r: CapacityReport) -> list[ReportTable]:
    c = r.config
    m = r.measured()
    w = c.workload
    per_month = total_bytes(m, w, users=1, months=1, retention=None)
    per_year = total_bytes(m, w, users=1, months=12, retention=None)
    rows = []
    for users in c.users:
        no = sum(r.projections[users]["no_retention"].values())
        kept = sum(r.projections[users]["retention"].values())
        rows.append((f"{users:,}", f"{_mb(per_month)} MB", f"{_gb(per_year)} GB", f"{_gb(no)} GB", f"{_gb(kept)} GB",
                     f"{(1 - kept / no) * 100 if no else 0:.0f}%"))
    biggest = max(c.users)
    per_table = [(table, f"{_gb(size)} GB", f"{_gb(r.projections[biggest]['retention'][table])} GB")
                 for table, size in r.projections[biggest]["no_retention"].items()]
    return [ReportTable("projection", f"Projection after {c.months} months",
                        ("users", "per user / month", "per user / year", "total, no retention", "total, §7 retention",
                         "retention saves"), rows, frozenset(range(6))),
            ReportTable("per_table", f"Per table for {biggest:,} users after {c.months} months",
                        ("table", "no retention", "§7 retention"), per_table, frozenset({1, 2}))]


def _budget(r: CapacityReport) -> ReportTable:
    b = r.budget
    v = b.verdict
    rows = [(p.name, str(p.max_per_process), str(p.processes), str(p.total), p.source) for p in v.pools]
    fits = "fits" if v.fits else f"DOES NOT FIT: {-v.headroom} connection(s) short"
    return ReportTable(
        "budget", "Connection budget (design §1 pools, jedisos_db.ops.budget)",
        ("pool", "max/proc", "procs", "total", "source"), rows, frozenset({1, 2, 3}),
        note=f"Demand {v.demand} vs available {v.available} (max_connections {v.max_connections} - reserved "
             f"{v.reserved}): {fits}. JediSOS processes that fit beside one Hindsight server with its default "
             f"pools: {b.jedisos_processes_that_fit} (max_connections {b.max_connections}, {b.reserved} "
             "reserved).")


def _sensitivity(r: CapacityReport) -> list[ReportTable]:
    main = next((m for m in r.measures if m.table == "checkpoints"), None)
    measured = sorted([*r.checkpoint_sensitivity, *([main] if main else [])], key=lambda m: m.thread_turns)
    if len(measured) < 2 or main is None or main.source.startswith("FALLBACK"):
        return []
    rows = [(f"{m.thread_turns}{' (used above)' if m is main else ''}", f"{m.bytes_per_unit:,.0f}") for m in measured]
    return [ReportTable("sensitivity", "LangGraph checkpoints vs thread length",
                        ("turns in the thread", "bytes per graph run"), rows, frozenset({0, 1}),
                        intro="Each checkpoint version stores the whole message list, so bytes per run grow with "
                              "the thread:")]


def tables(r: CapacityReport) -> list[ReportTable]:
    """The report's tables, in order."""
    return [_measured(r), _design(r), *_projection(r), _budget(r), *_sensitivity(r)]


def retention_text(r: CapacityReport) -> str:
    """The policy the projection applied, rule by rule, from the policy itself."""
    ret = r.retention
    parts = []
    for rule in ret.policy:
        share = ret.deletable_share(rule)
        of_rows = f" ({share:.0%} of generated rows)" if share < 1 else ""
        parts.append(f"{rule.name}: {rule.description}{of_rows}")
    return ("; ".join(parts) + ". Memory units are kept; LangGraph threads are assumed to end the day they start. "
            "The cost rollup keeps daily_cost_summary answering (the design's plain view would lose that history). "
            "Space freed by DELETE is reused after VACUUM, not returned to the OS: tables plateau at the window's "
            "size.")


NOT_MEASURED = ("Without a running Hindsight server only `memory_units` is measured (on the bench table); Hindsight's "
                "other tables (documents, entities, unit_entities, memory_links, …) add to it, memory_links per unit. "
                "WAL, backups and free space left by DELETE before VACUUM are not included.")


def _markdown_table(t: ReportTable) -> list[str]:
    lines = ["", f"## {t.title}", ""]
    if t.intro:
        lines += [t.intro, ""]
    lines += ["| " + " | ".join(t.columns) + " |",
              "|" + "|".join("---:" if i in t.numeric else "---" for i in range(len(t.columns))) + "|"]
    for i, row in enumerate(t.rows):
        cells = [f"**{row[0]}**", *row[1:]] if i in t.emphasised else list(row)
        lines.append("| " + " | ".join(cells) + " |")
    if t.note:
        lines += ["", t.note]
    return lines


def render_markdown(r: CapacityReport) -> str:
    """``capacity.md``."""
    lines = ["# JediSOS capacity model (design §7, measured)", "", *headline(r)]
    for t in tables(r):
        lines += _markdown_table(t)
    lines += ["", "## Not measured", "", NOT_MEASURED, "", "## Retention (§7)", "", retention_text(r),
              "", f"Plots: `{GROWTH_PLOT}`, `{BYTES_PLOT}`."]
    return "\n".join(lines) + "\n"


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
    paths.append(out / GROWTH_PLOT)
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
    paths.append(out / BYTES_PLOT)
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
