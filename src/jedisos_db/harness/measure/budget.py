"""Measurement ``budget``: the design's connection budget per server (issue 10, point 3).

Arithmetic over the design file (:meth:`~jedisos_db.harness.designs.Design.budgets`): every pool's ceiling
times its processes against the server's ``max_connections`` less its reserved slots. No database is
touched, so the figures hold on any machine. Every design gets the ``main_*`` figures and ``margin_connections``
(the smallest margin of its servers); ``hindsight_*`` only where Hindsight has a server of its own (the
notes say so for the others).
"""

from __future__ import annotations

from jedisos_db.harness.designs import Design
from jedisos_db.harness.measure import Context, Measured
from jedisos_db.harness.verify.verdicts import Figure


def measure(design: Design, ctx: Context) -> Measured:
    budgets = design.budgets()
    figures: dict[str, Figure] = {}
    notes = []
    for server, verdict in budgets.items():
        figures.update({f"{server}_demand_connections": verdict.demand,
                        f"{server}_available_connections": verdict.available,
                        f"{server}_margin_connections": verdict.headroom,
                        f"{server}_fits": verdict.fits})
        pools = ", ".join(f"{p.name} {p.max_per_process}x{p.processes}" for p in verdict.pools)
        notes.append(f"{server} server: {verdict.demand} connections demanded ({pools}) of {verdict.available} "
                     f"available ({verdict.max_connections} less {verdict.reserved} reserved): margin "
                     f"{verdict.headroom:+d}.")
    figures["margin_connections"] = min(v.headroom for v in budgets.values())
    if "hindsight" not in budgets:
        notes.append(f"Hindsight is placed {design.hindsight_placement}: its pools count on the main server, "
                     "so there are no hindsight_* figures.")
    if ctx.progress is not None:
        ctx.progress(1, 1)
    return Measured(figures, notes=tuple(notes))
