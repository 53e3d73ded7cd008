"""The ledger on disk: ``verdicts.json`` (the schema in schemas/verdicts.schema.json), ``report.md`` and a
self-contained ``report.html`` with its plots inline.

Both reports read top-down for a newcomer: the counts, then what is wrong with the design and what to do
instead, then every claim by design section, false claims first.

Several designs (``verify --design A --design B``) are written side by side from the same :class:`Block` list
(:func:`side_by_side`), which the terminal summary reuses: the counts, each design against the baseline
(:func:`against_baseline`) and what is wrong with each design first, then one table per measurement with a
column per design (figures aligned by name), then the claims with a verdict column per design, those whose
verdict differs first. The html adds plots made generically from whatever the measurements returned: a line
chart per series name (a line per design) and grouped bars of the numeric figures by unit.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .verdicts import VERDICTS, Figure, Verdict

if TYPE_CHECKING:
    from .run import ClaimResult, DesignResult, Ledger

LABEL: dict[Verdict, str] = {"fails": "FALSE", "partial": "partly true", "holds": "holds", "not_run": "not run"}
ORDER: dict[Verdict, int] = {"fails": 0, "partial": 1, "holds": 2, "not_run": 3}
COLOUR: dict[Verdict, str] = {"fails": "#c62828", "partial": "#ef8f00", "holds": "#2e7d32", "not_run": "#9e9e9e"}
NO_FIX = "the check recorded no fix; see docs/design-claims.md"
JSON, MARKDOWN, HTML = "verdicts.json", "report.md", "report.html"


def figure_text(value: Figure) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def key_figures(figures: dict[str, Figure], limit: int = 3) -> str:
    """The first ``limit`` figures as ``name=value``, for a table cell."""
    shown = [f"{k}={figure_text(v)}" for k, v in list(figures.items())[:limit]]
    more = len(figures) - limit
    return ", ".join(shown) + (f", … (+{more})" if more > 0 else "")


def ordered(claims: Iterable[ClaimResult]) -> list[ClaimResult]:
    """False claims first, then partly true, holds, not run; page order within each."""
    return sorted(claims, key=lambda c: ORDER[c.verdict])


def sections(ledger: Ledger) -> list[tuple[str, list[ClaimResult]]]:
    """(section title, its claims ordered) in section order."""
    by: dict[str, list[ClaimResult]] = {}
    for c in ledger.claims:
        by.setdefault(c.section, []).append(c)
    keys = sorted(by, key=lambda s: (not s.isdigit(), int(s) if s.isdigit() else 0, s))
    return [(ledger.section_title(s), ordered(by[s])) for s in keys]


def findings(ledger: Ledger) -> list[ClaimResult]:
    """What is wrong with the design: the false claims, then the partly true ones."""
    return [c for c in ordered(ledger.claims) if c.verdict in ("fails", "partial")]


def warnings(ledger: Ledger) -> list[str]:
    """What kept checks from running at all (modules pytest could not collect)."""
    broken = ledger.run.get("collection_errors", 0)
    return [f"WARNING: {broken} test module(s) could not be collected; their checks did not run (see "
            f"{ledger.run.get('log', 'pytest.log')})."] if broken else []


def headline(ledger: Ledger) -> list[str]:
    """Two sentences: where and how the run went, and the counts."""
    s, r = ledger.server, ledger.run
    counts = ledger.counts()
    quick = ", --quick (e2e and slow checks left out)" if r.get("quick") else ""
    return [
        *warnings(ledger),
        f"Run {r.get('started', '?')} on PostgreSQL {s.get('server_version')} + pgvector {s.get('pgvector_version')} "
        f"({s.get('source')}), {r.get('tests_run', 0)} checks in {r.get('seconds', '?')} s{quick}.",
        f"{len(ledger.claims)} claims of the design document: {counts['fails']} false, {counts['partial']} partly "
        f"true, {counts['holds']} hold, {counts['not_run']} not run (each says why).",
    ]


def server_line(ledger: Ledger) -> str:
    return ", ".join(f"{k}={v}" for k, v in ledger.server.get("settings", {}).items())


# --- markdown -------------------------------------------------------------------------------------

def _cell(text: object) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _md_table(columns: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    return ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns),
            *("| " + " | ".join(_cell(c) for c in row) + " |" for row in rows)]


def markdown(ledger: Ledger) -> str:
    lines = ["# The JediSOS database design, as documented: verdicts", "", *headline(ledger), ""]
    wrong = findings(ledger)
    lines += ["## What is wrong with the design, and what to do instead", ""]
    if wrong:
        lines += _md_table(["claim", "verdict", "what this run found", "what to do instead"],
                           ([f"`{c.id}` {c.claim}", LABEL[c.verdict], c.evidence, c.fix or NO_FIX] for c in wrong))
    else:
        lines.append("No claim was found false in this run (claims not run are listed below with the reason).")
    lines += ["", "## Every claim, by design section"]
    for title, claims in sections(ledger):
        lines += ["", f"### {title}", ""]
        lines += _md_table(["id", "verdict", "claim", "evidence", "figures", "check"],
                           ([f"`{c.id}`", LABEL[c.verdict], c.claim, c.evidence, key_figures(c.figures, 8),
                             f"`{c.check}`" if c.check else ""] for c in claims))
    lines += ["", "## The server and the run", "", f"Settings: {server_line(ledger)}.", "",
              f"pytest's output: `{ledger.run.get('log')}`; the JSON ledger: `{JSON}`."]
    return "\n".join(lines) + "\n"


# --- several designs, side by side -----------------------------------------------------------------

LOG_SPREAD = 50
"""Bars of one unit are drawn on a log scale when the largest is this many times the smallest."""
MISSING = "—"
"""A figure one design's measurement did not name (its notes say why)."""
NOT_MEASURED = "not measured"
TOOK = "(measurement took s)"


@dataclass(frozen=True)
class Block:
    """One part of the side-by-side report: a heading, sentences, a table, sentences after it, and the plots
    (keys of :func:`plots`) that belong to it. Markdown, html and the terminal render the same blocks."""

    title: str
    level: int = 2
    text: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()
    rows: tuple[tuple[str, ...], ...] = ()
    after: tuple[str, ...] = ()
    images: tuple[str, ...] = ()
    numeric: tuple[int, ...] = ()


def _names(ledger: Ledger) -> tuple[str, ...]:
    return tuple(d.name for d in ledger.designs)


def _server_cell(d: DesignResult) -> str:
    settings = d.server.get("settings", {})
    cell = f"PostgreSQL {d.server.get('server_version')}, max_connections {settings.get('max_connections', '?')}"
    cell += f" ({d.server['note']})" if d.server.get("note") else ""
    own = d.server.get("hindsight")
    if own:  # Hindsight on a server of its own: that server, or why none ran
        size = own.get("settings", {}).get("max_connections")
        cell += f"; Hindsight's own server: {f'max_connections {size}' if size else own.get('note')}"
    return cell


def differs(ledger: Ledger, claim_id: str) -> bool:
    return len({c.verdict for d in ledger.designs for c in d.claims if c.id == claim_id}) > 1


def claim_rows(ledger: Ledger) -> list[tuple[ClaimResult, dict[str, ClaimResult]]]:
    """Each claim with its result per design, in the first design's order (the catalog's)."""
    by = {d.name: {c.id: c for c in d.claims} for d in ledger.designs}
    ids = list(dict.fromkeys(c.id for d in ledger.designs for c in d.claims))
    return [(next(by[n][i] for n in by if i in by[n]), {n: by[n][i] for n in by if i in by[n]}) for i in ids]


def _evidence(per: dict[str, ClaimResult], *, fix: bool = False) -> str:
    """One design's evidence when all agree; else each design's, named."""
    texts = {n: (c.fix or NO_FIX) if fix else c.evidence for n, c in per.items()
             if not fix or c.verdict in ("fails", "partial")}
    if len(set(texts.values())) <= 1:
        return next(iter(texts.values()), "")
    return " ".join(f"{n}: {t}" for n, t in texts.items())


def measurement_names(ledger: Ledger) -> list[str]:
    return list(dict.fromkeys(m for d in ledger.designs for m in d.measurements))


def measurement_table(ledger: Ledger, name: str) -> Block:
    """One measurement: a row per figure name (in the order the designs named them), a column per design."""
    results = {d.name: d.measurements.get(name) for d in ledger.designs}
    figures = list(dict.fromkeys(f for r in results.values() if r is not None for f in r.figures))
    rows = [(f, *(NOT_MEASURED if r is None or r.not_measured else
                  figure_text(r.figures[f]) if f in r.figures else MISSING for r in results.values()))
            for f in figures]
    rows.append((TOOK, *(figure_text(r.seconds) if r is not None else MISSING for r in results.values())))
    after = [f"{n}: {r.not_measured}" if r is not None and r.not_measured else f"{n}: not measured: no result"
             for n, r in results.items() if r is None or r.not_measured]
    after += [f"{n}: {note}" for n, r in results.items() if r is not None for note in r.notes]
    return Block(name, 3, (), ("figure", *results), tuple(rows), tuple(after), (f"{name}:series", f"{name}:figures"),
                 tuple(range(1, len(results) + 1)))


@dataclass(frozen=True)
class Against:
    """A line of the baseline table: a measurement's figure, and how a design's is set against the baseline's:
    ``faster`` = the baseline's over the design's (a time: above 1 is faster), ``ratio`` = the design's over
    the baseline's (a size), ``own`` = the design's figure as it is (already a ratio within the design's run, or
    a count every design is judged by alike, the baseline included). Figures named ``*_x_baseline`` are
    already taken against the baseline in the same rounds (:mod:`jedisos_db.harness.measure.writes`) and are
    listed as they are."""

    measurement: str
    figure: str
    how: str
    says: str


AGAINST: tuple[Against, ...] = (
    Against("retention", "removal_s", "faster", "removing the expired audit rows: × as fast (median race)"),
    Against("retention", "p99_during_x_idle", "own", "insert p99 during that purge over idle (median race)"),
    Against("retention", "lost", "own", "acknowledged inserts missing after the races"),
    Against("retention", "cost_removal_s", "faster", "removing the expired cost rows (history kept): × as fast"),
    Against("budget", "margin_connections", "own", "connections to spare on the design's server"),
    Against("volume", "total_bytes_per_user_month", "ratio", "bytes per active user per month (memory included): ×"),
    Against("vectors", "index_bytes", "ratio", "HNSW index bytes at the design's dimension: ×"),
    Against("vectors", "build_s", "faster", "HNSW build: × as fast"),
    Against("vectors", "exact_qps", "ratio", "exact-scan QPS: ×"),
)
AGAINST_TITLE = "Each design against the baseline"


def _times(value: Figure | None) -> str:
    return MISSING if value is None else f"{figure_text(value)}×"


def _ratio(top: Figure | None, bottom: Figure | None) -> str:
    over, under = _numeric(top), _numeric(bottom)
    return MISSING if over is None or not under else f"{over / under:.3g}×"


def against_baseline(ledger: Ledger) -> Block | None:
    """Every design set against the run's baseline (``run["baseline"]``): the ratios :data:`AGAINST` names, then
    every ``*_x_baseline`` figure a measurement took against it in the same rounds. None without a baseline."""
    name = ledger.run.get("baseline")
    base = next((d for d in ledger.designs if d.name == name), None)
    if base is None or len(ledger.designs) < 2:
        return None

    def figure(d: DesignResult, measurement: str, key: str) -> Figure | None:
        m = d.measurements.get(measurement)
        return None if m is None or m.not_measured else m.figures.get(key)

    rows = []
    for a in AGAINST:
        cells = []
        for d in ledger.designs:
            mine, theirs = figure(d, a.measurement, a.figure), figure(base, a.measurement, a.figure)
            cells.append((MISSING if mine is None else figure_text(mine)) if a.how == "own" else
                         "baseline" if d is base else
                         _ratio(theirs, mine) if a.how == "faster" else _ratio(mine, theirs))
        rows.append((f"{a.says} ({a.measurement} {a.figure})", *cells))
    paired = dict.fromkeys((m, f) for d in ledger.designs for m, r in d.measurements.items()
                           for f in r.figures if f.endswith("_x_baseline"))
    for m, f in paired:
        cells = ["baseline" if d is base else _times(figure(d, m, f)) for d in ledger.designs]
        rows.append((f"rows/s × the baseline's, paired in the same rounds ({m} {f})", *cells))
    return Block(AGAINST_TITLE, 2, (
        f"Every design against {base.name}, the baseline (`--baseline`), from this run's figures. Above 1 is more "
        "(faster, bigger); the measurement tables below hold each figure as measured.",),
        ("against the baseline", *_names(ledger)), tuple(rows))


def side_by_side(ledger: Ledger) -> list[Block]:
    """The report of several designs, top-down (the module doc gives the order)."""
    names = _names(ledger)
    r = ledger.run
    quick = ", --quick (e2e and slow checks left out, smaller measurement sizes)" if r.get("quick") else ""
    counts_rows = []
    for d in ledger.designs:
        n = d.counts()
        missing = d.not_measured()
        counts_rows.append((d.name, str(n["fails"]), str(n["partial"]), str(n["holds"]), str(n["not_run"]),
                            f"{len(d.measurements) - len(missing)} of {len(d.measurements)}", _server_cell(d),
                            d.description or ""))
    first = Block("Designs compared", 2, (
        *warnings(ledger),
        f"Run {r.get('started', '?')}: {len(names)} designs ({', '.join(names)}), each judged and measured on "
        f"fresh databases built its own way; {r.get('tests_run', 0)} checks in {r.get('seconds', '?')} s{quick}.",
        f"{len(ledger.claims)} claims of the design document per design (not run: each says why)."),
        ("design", "false", "partly true", "holds", "not run", "measured", "server", "what it is"),
        tuple(counts_rows), numeric=(1, 2, 3, 4))
    rows = claim_rows(ledger)
    wrong = [(c, per) for c, per in rows if any(x.verdict in ("fails", "partial") for x in per.values())]
    wrong.sort(key=lambda cp: (not differs(ledger, cp[0].id), min(ORDER[x.verdict] for x in cp[1].values())))
    gaps = tuple(f"{d.name} {m}: {why}" for d in ledger.designs for m, why in d.not_measured().items())
    against = against_baseline(ledger)
    blocks = [first, *([against] if against else []), Block(
        "What is wrong with each design, and what to do instead", 2,
        () if wrong else ("No claim was found false in any design (claims not run are listed below with the reason).",),
        ("claim", *names, "what this run found", "what to do instead") if wrong else (),
        tuple((f"`{c.id}` {c.claim}", *(LABEL[per[n].verdict] if n in per else MISSING for n in names),
               _evidence(per), _evidence(per, fix=True)) for c, per in wrong),
        gaps and ("Not measured: " + "; ".join(gaps) + ".",))]
    measured = measurement_names(ledger)
    blocks.append(Block("Measurements, side by side", 2, (
        "One table per measurement, one column per design; a figure a design did not name shows "
        f"{MISSING} (its notes say why).",) if measured else ("No measurement is registered "
                                                             "(jedisos_db.harness.measure.registry).",)))
    blocks += [measurement_table(ledger, m) for m in measured]
    blocks.append(Block("Every claim, side by side", 2, ("Claims whose verdict differs between designs first, "
                                                          "then by design section.",)))
    columns = ("id", "claim", *names, "evidence")

    def line(c: ClaimResult, per: dict[str, ClaimResult]) -> tuple[str, ...]:
        return (f"`{c.id}`", c.claim, *(LABEL[per[n].verdict] if n in per else MISSING for n in names),
                _evidence(per))

    split = [(c, per) for c, per in rows if differs(ledger, c.id)]
    if split:
        blocks.append(Block("Verdicts that differ between designs", 3, (), columns,
                            tuple(line(c, per) for c, per in split)))
    same = [(c, per) for c, per in rows if not differs(ledger, c.id)]
    for section in sorted({c.section for c, _ in same}, key=lambda s: (not s.isdigit(), int(s) if s.isdigit() else 0)):
        mine = sorted(((c, per) for c, per in same if c.section == section), key=lambda cp: ORDER[cp[0].verdict])
        blocks.append(Block(ledger.section_title(section), 3, (), columns, tuple(line(c, per) for c, per in mine)))
    servers = (f"{d.name}: {d.server.get('source')}, {_server_cell(d)}; pytest's output `{d.checks.get('log')}`."
               for d in ledger.designs)
    blocks.append(Block("The servers and the run", 2, (*servers, f"The JSON ledger: `{JSON}`.")))
    return blocks


def _md_blocks(blocks: Sequence[Block]) -> list[str]:
    lines: list[str] = []
    for b in blocks:
        lines += [*([""] if lines and lines[-1] else []), "#" * b.level + " " + b.title, ""]
        for t in b.text:
            lines += [t, ""]
        if b.columns:
            lines += [*_md_table(b.columns, b.rows), ""]
        lines += [f"- {a}" for a in b.after]
    return lines


def markdown_side_by_side(ledger: Ledger) -> str:
    return "\n".join(["# JediSOS database designs side by side: verdicts and measurements",
                      *_md_blocks(side_by_side(ledger))]) + "\n"


# --- html -----------------------------------------------------------------------------------------

def _png(fig: object) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)  # type: ignore[attr-defined]
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _unit(name: str) -> str:
    """Figures plotted together share the last word of their name (``p99_ms`` and ``p50_ms``: ms)."""
    return name.rsplit("_", 1)[-1] if "_" in name else "value"


def plots(ledger: Ledger) -> dict[str, str]:
    """Base64 PNGs: ``"summary"`` (verdicts per section) and one per claim with two or more numeric figures,
    a bar per figure, grouped by the unit their names end in."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out: dict[str, str] = {}
    groups = sections(ledger)
    fig, ax = plt.subplots(figsize=(8, 0.4 * len(groups) + 1.2))
    left = [0] * len(groups)
    labels = [title.split(" ", 1)[0] for title, _ in groups]
    for verdict in VERDICTS:
        counts = [sum(c.verdict == verdict for c in claims) for _, claims in groups]
        ax.barh(labels, counts, left=left, color=COLOUR[verdict], label=LABEL[verdict])
        left = [a + b for a, b in zip(left, counts, strict=True)]
    ax.invert_yaxis()
    ax.set_xlabel("claims")
    ax.legend(ncols=4, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    fig.tight_layout()
    out["summary"] = _png(fig)
    plt.close(fig)
    for c in ledger.claims:
        numeric = {k: float(v) for k, v in c.figures.items() if isinstance(v, int | float) and not isinstance(v, bool)}
        if len(numeric) < 2:
            continue
        by_unit: dict[str, dict[str, float]] = {}
        for k, v in numeric.items():
            by_unit.setdefault(_unit(k), {})[k] = v
        height = 0.35 * max(map(len, by_unit.values())) + 1.4
        fig, axes = plt.subplots(1, len(by_unit), figsize=(4 * len(by_unit), height), squeeze=False)
        for ax, (unit, values) in zip(axes[0], by_unit.items(), strict=True):
            ax.barh(list(values), list(values.values()), color=COLOUR[c.verdict])
            ax.invert_yaxis()
            ax.set_xlabel(unit)
        fig.suptitle(f"{c.id}: {LABEL[c.verdict]}")
        fig.tight_layout()
        out[c.id] = _png(fig)
        plt.close(fig)
    return out


def _numeric(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def measurement_plots(ledger: Ledger) -> dict[str, str]:
    """Per measurement: ``"<name>:series"``, a chart per series name with a line per design (growth curves,
    …), and ``"<name>:figures"``, its numeric figures as bars grouped by unit with a bar per design (insert
    p50/p99 idle and during a purge, …). Made from whatever the measurements returned."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out: dict[str, str] = {}
    for name in measurement_names(ledger):
        results = {d.name: d.measurements[name] for d in ledger.designs if name in d.measurements}
        series = list(dict.fromkeys(k for r in results.values() for k in r.series))
        if series:
            cols = min(3, len(series))
            rows = -(-len(series) // cols)
            fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3.2 * rows), squeeze=False)
            for ax, key in zip(axes.flat, series, strict=False):
                for design, r in results.items():
                    if r.series.get(key):
                        xs, ys = zip(*r.series[key], strict=True)
                        ax.plot(xs, ys, marker=".", label=design)
                ax.set_title(key, fontsize=9)
                ax.legend(fontsize=8)
            for ax in list(axes.flat)[len(series):]:
                ax.set_visible(False)
            fig.suptitle(name)
            fig.tight_layout()
            out[f"{name}:series"] = _png(fig)
            plt.close(fig)
        by_unit: dict[str, list[str]] = {}
        for r in results.values():
            for k, v in r.figures.items():
                if _numeric(v) is not None and k not in by_unit.get(_unit(k), []):
                    by_unit.setdefault(_unit(k), []).append(k)
        if not by_unit:
            continue
        height = 0.3 * max(map(len, by_unit.values())) * len(results) + 1.4
        fig, axes = plt.subplots(1, len(by_unit), figsize=(4 * len(by_unit), height), squeeze=False)
        bar = 0.8 / max(1, len(results))
        for ax, (unit, keys) in zip(axes[0], by_unit.items(), strict=True):
            shown: list[float] = []
            for i, (design, r) in enumerate(results.items()):
                values = [_numeric(r.figures.get(k)) or 0.0 for k in keys]
                shown += values
                ax.barh([j + i * bar for j in range(len(keys))], values, height=bar, label=design)
            ax.set_yticks([j + bar * (len(results) - 1) / 2 for j in range(len(keys))], keys, fontsize=8)
            ax.invert_yaxis()
            positive = [v for v in shown if v > 0]
            # a 100x difference (a partition drop against a DELETE) would leave the smaller bar invisible
            log = len(positive) == len(shown) and max(positive) > LOG_SPREAD * min(positive)
            ax.set_xscale("log" if log else "linear")
            ax.set_xlabel(f"{unit} (log scale)" if log else unit)
        axes[0][0].legend(fontsize=8)
        fig.suptitle(name)
        fig.tight_layout()
        out[f"{name}:figures"] = _png(fig)
        plt.close(fig)
    return out


_STYLE = """body{font-family:system-ui,sans-serif;max-width:75rem;margin:2rem auto;padding:0 1rem;color:#222}
table{border-collapse:collapse;width:100%;margin:1rem 0}td,th{border:1px solid #ccc;padding:.3rem .5rem;
vertical-align:top;text-align:left;font-size:.9rem}th{background:#f3f3f3}code{font-size:.85rem}
.fails{color:#c62828;font-weight:bold}.partial{color:#ef8f00;font-weight:bold}.holds{color:#2e7d32}
.not_run{color:#777}img{max-width:100%}"""


def _h(text: object) -> str:
    return html.escape(str(text))


def _html_table(columns: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    head = "".join(f"<th>{_h(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _verdict(c: ClaimResult) -> str:
    return f'<span class="{c.verdict}">{_h(LABEL[c.verdict])}</span>'


def render_html(ledger: Ledger, images: dict[str, str]) -> str:
    def img(key: str) -> str:
        return f'<img alt="{_h(key)}" src="data:image/png;base64,{images[key]}">' if key in images else ""

    parts = ["<!doctype html><html><head><meta charset='utf-8'>",
             "<title>JediSOS database design: verdicts</title>", f"<style>{_STYLE}</style></head><body>",
             "<h1>The JediSOS database design, as documented: verdicts</h1>",
             *(f"<p>{_h(line)}</p>" for line in headline(ledger)),
             "<h2>What is wrong with the design, and what to do instead</h2>"]
    wrong = findings(ledger)
    parts.append(_html_table(["claim", "verdict", "what this run found", "what to do instead"],
                             ([f"<code>{_h(c.id)}</code> {_h(c.claim)}", _verdict(c), _h(c.evidence),
                               _h(c.fix or NO_FIX)] for c in wrong)) if wrong else
                 "<p>No claim was found false in this run (claims not run are listed below with the reason).</p>")
    parts += [img("summary"), "<h2>Every claim, by design section</h2>"]
    for title, claims in sections(ledger):
        parts += [f"<h3>{_h(title)}</h3>", _html_table(
            ["id", "verdict", "claim", "evidence", "figures", "check"],
            ([f"<code>{_h(c.id)}</code>", _verdict(c), _h(c.claim), _h(c.evidence), _h(key_figures(c.figures, 8)),
              f"<code>{_h(c.check)}</code>"] for c in claims))]
        parts += [img(c.id) for c in claims if c.id in images]
    parts += ["<h2>The server and the run</h2>", f"<p>Settings: {_h(server_line(ledger))}.</p>",
              f"<p>pytest's output: <code>{_h(ledger.run.get('log'))}</code>; the JSON ledger: "
              f"<code>{JSON}</code>.</p></body></html>"]
    return "\n".join(parts) + "\n"


def _html_cell(text: str) -> str:
    verdict = next((v for v, label in LABEL.items() if label == text), None)
    return f'<span class="{verdict}">{_h(text)}</span>' if verdict else _h(text)


def render_html_side_by_side(ledger: Ledger, images: dict[str, str]) -> str:
    parts = ["<!doctype html><html><head><meta charset='utf-8'>",
             "<title>JediSOS database designs side by side</title>", f"<style>{_STYLE}</style></head><body>",
             "<h1>JediSOS database designs side by side: verdicts and measurements</h1>"]
    for b in side_by_side(ledger):
        parts.append(f"<h{b.level}>{_h(b.title)}</h{b.level}>")
        parts += [f"<p>{_h(t)}</p>" for t in b.text]
        if b.columns:
            parts.append(_html_table(b.columns, ([_html_cell(c) for c in row] for row in b.rows)))
        if b.after:
            parts.append("<ul>" + "".join(f"<li>{_h(a)}</li>" for a in b.after) + "</ul>")
        parts += [f'<img alt="{_h(k)}" src="data:image/png;base64,{images[k]}">' for k in b.images if k in images]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write(ledger: Ledger, out_dir: Path) -> tuple[Path, ...]:
    """verdicts.json, report.md and report.html in ``out_dir``; returns their paths."""
    paths = out_dir / JSON, out_dir / MARKDOWN, out_dir / HTML
    paths[0].write_text(json.dumps(ledger.as_json(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if ledger.compared:
        paths[1].write_text(markdown_side_by_side(ledger), encoding="utf-8")
        paths[2].write_text(render_html_side_by_side(ledger, measurement_plots(ledger)), encoding="utf-8")
    else:
        paths[1].write_text(markdown(ledger), encoding="utf-8")
        paths[2].write_text(render_html(ledger, plots(ledger)), encoding="utf-8")
    return paths
