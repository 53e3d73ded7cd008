"""The measurements a verify run takes for every design, in the order they run (each a module of this package)."""

from __future__ import annotations

from typing import Final

from jedisos_db.harness.measure import Measure

MEASUREMENTS: Final[dict[str, Measure]] = {}
"""name -> ``measure(design, ctx)``; each helper module adds its line here."""
