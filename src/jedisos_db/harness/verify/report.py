"""The ledger on disk: ``verdicts.json`` (the schema in schemas/verdicts.schema.json), ``report.md`` and a
self-contained ``report.html`` with its plots inline.

Both reports read top-down for a newcomer: the counts, then what is wrong with the design and what to do
instead, then every claim by design section, false claims first.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .verdicts import VERDICTS, Figure, Verdict

if TYPE_CHECKING:
    from .run import ClaimResult, Ledger

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


def headline(ledger: Ledger) -> list[str]:
    """Two sentences: where and how the run went, and the counts."""
    s, r = ledger.server, ledger.run
    counts = ledger.counts()
    quick = ", --quick (e2e and slow checks left out)" if r.get("quick") else ""
    broken = r.get("collection_errors", 0)
    lines = [f"WARNING: {broken} test module(s) could not be collected; their checks did not run (see "
             f"{r.get('log', 'pytest.log')})."] if broken else []
    return [
        *lines,
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


def write(ledger: Ledger, out_dir: Path) -> tuple[Path, ...]:
    """verdicts.json, report.md and report.html in ``out_dir``; returns their paths."""
    paths = out_dir / JSON, out_dir / MARKDOWN, out_dir / HTML
    paths[0].write_text(json.dumps(ledger.as_json(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    paths[1].write_text(markdown(ledger), encoding="utf-8")
    paths[2].write_text(render_html(ledger, plots(ledger)), encoding="utf-8")
    return paths
