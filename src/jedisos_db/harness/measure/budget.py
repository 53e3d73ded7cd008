"""Measurement ``budget``: the design's connection budget per server (issue 10, point 3).

Arithmetic over the design file (:meth:`~jedisos_db.harness.designs.Design.budgets`): every pool's ceiling
times its processes against the server's ``max_connections`` less its reserved slots. Every design gets the
``main_*`` figures and ``margin_connections`` (the smallest margin of its servers); ``hindsight_*`` only where
Hindsight has a server of its own (the notes say so for the others).

Where Hindsight's own server ran (``ctx.hindsight_server``), both servers' sizes are what they report
(``SHOW max_connections``, reserved slots), figure ``servers_measured`` is 2; otherwise the sizes are the design
file's and no database is touched (``servers_measured`` 0), so those figures hold on any machine.
"""

from __future__ import annotations

from jedisos_db.harness.designs import Design, server_size
from jedisos_db.harness.measure import Context, Measured
from jedisos_db.harness.verify.verdicts import Figure


def measure(design: Design, ctx: Context) -> Measured:
    notes = []
    if ctx.hindsight_server is not None and design.hindsight_own_server:
        budgets = design.budgets({"main": server_size(ctx.server), "hindsight": server_size(ctx.hindsight_server)})
        notes.append("Both servers ran: each budget is counted against the max_connections that server reports.")
    else:
        budgets = design.budgets()
        if design.hindsight_own_server:
            notes.append("Hindsight's own server did not run here (a --dsn run without --hindsight-dsn): its budget is "
                         "computed from the design file, not measured.")
    figures: dict[str, Figure] = {"servers_measured": len(budgets) if ctx.hindsight_server is not None
                                  and design.hindsight_own_server else 0}
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
