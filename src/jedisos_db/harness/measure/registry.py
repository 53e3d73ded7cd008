"""The measurements a verify run takes for every design, in the order they run (each a module of this package)."""

from __future__ import annotations

from typing import Final

from jedisos_db.harness.measure import Measure
from jedisos_db.harness.measure import budget as budget_measure
from jedisos_db.harness.measure import migrations as migrations_measure
from jedisos_db.harness.measure import retention as retention_measure
from jedisos_db.harness.measure import vectors as vectors_measure
from jedisos_db.harness.measure import volume as volume_measure
from jedisos_db.harness.measure import writes as writes_measure

MEASUREMENTS: Final[dict[str, Measure]] = {}
"""name -> ``measure(design, ctx)``; each helper module adds its line here."""
MEASUREMENTS["budget"] = budget_measure.measure
MEASUREMENTS["retention"] = retention_measure.measure
MEASUREMENTS["writes"] = writes_measure.measure
MEASUREMENTS["volume"] = volume_measure.measure
MEASUREMENTS["vectors"] = vectors_measure.measure
MEASUREMENTS["migrations"] = migrations_measure.measure
