"""Capacity model: measured bytes per row on the real server, projected to N users (design §7).

Design §7 estimates rows per month and disk use per active user (claims ``S7-volume-<table>`` and
``S7-volume-total`` in docs/design-claims.md). This package replaces the estimate with measurements
and sets the two side by side:

- :mod:`.model`   the arithmetic: §7 as data, the workload, projections with and without the
                  retention policy (:mod:`jedisos_db.runtime.retention`), verdicts; pure functions;
- :mod:`.measure` bytes per row of every table, measured in a scratch database on the server;
- :mod:`.report`  the report's tables, and ``capacity.md``, ``capacity.json`` and PNG plots.

:func:`run` does all three.
"""

from __future__ import annotations

from pathlib import Path

from jedisos_db.harness.capacity import measure, model, report
from jedisos_db.harness.capacity.measure import Advance, no_progress, progress_totals
from jedisos_db.harness.capacity.model import CapacityConfig, CapacityReport
from jedisos_db.runtime.urls import DatabaseURL

__all__ = ["Advance", "CapacityConfig", "CapacityReport", "measure", "model", "progress_totals", "report", "run"]


def run(url: DatabaseURL, config: CapacityConfig, out: Path,
        advance: Advance = no_progress) -> tuple[CapacityReport, list[Path]]:
    """Measure on the server of ``url``, build the report, write it into ``out``."""
    done = measure.measure(url, config, advance)
    built = model.build_report(config, done.measures, done.server, measure.reserved_connections(url),
                               done.checkpoint_sensitivity)
    return built, report.write_report(built, out)
