"""Per-design measurements: the figures ``jedisos-db verify --design A --design B`` puts side by side (issue 10).

A measurement is a module of this package with one function, listed in :data:`registry.MEASUREMENTS`::

    def measure(design: Design, ctx: Context) -> Measured

It runs once per design, on fresh databases of its own that it creates on ``ctx.server`` (e.g.
``provision.scratch_database(ctx.server, design.scratch_name("race"))``, built with ``design.build``) and
drops again, so designs never share data and a measurement never depends on another's leftovers. It waits
on conditions with a timeout, never on a clock, and reports only numbers it measured in this call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from jedisos_db.harness.designs import Design
from jedisos_db.harness.verify.verdicts import Figure
from jedisos_db.runtime.urls import DatabaseURL

Point = tuple[float, float]


@dataclass(frozen=True)
class Context:
    """What every measurement of one verify run shares."""

    server: DatabaseURL
    """Admin URL of the server the run uses (a superuser may create and drop databases there)."""
    quick: bool = False
    """``verify --quick``: smaller sizes, same code; a measurement says in its figures which sizes it used."""
    progress: Callable[[int, int], None] | None = None
    """``progress(done, total)`` within the measurement, for the terminal's progress bar."""
    hindsight_server: DatabaseURL | None = None
    """Admin URL of Hindsight's own server, when the design places Hindsight on one and the run started it
    (or was given it); None otherwise."""
    baseline: Design | None = None
    """The design the run compares the others with (``verify --baseline``): a measurement whose figures only
    compare when taken side by side in one stretch (``writes``) measures the baseline beside this design."""


@dataclass(frozen=True)
class Measured:
    """One measurement of one design."""

    figures: dict[str, Figure]
    """Scalars named with their unit (``removal_s``, ``insert_p99_ms``, ``bytes_per_user_month``); the sizes
    used are figures too (``rows``), so side-by-side columns show what was compared."""
    series: dict[str, list[Point]] = field(default_factory=dict)
    """Curves for plots, e.g. ``projected_bytes_100_users`` as (month, bytes)."""
    notes: tuple[str, ...] = ()
    """Sentences for the report (what the figures mean, what was left out and why)."""


Measure = Callable[[Design, Context], Measured]
