"""Timed samples and their quantiles: one definition of p50/p99 for every probe that reports them
(the pool-independence probe, the retention race)."""

from __future__ import annotations

import math
from dataclasses import dataclass


class Quantiles:
    """Nearest-rank quantiles over ``samples`` (seconds), reported in milliseconds. With fewer than 100
    samples, p99 is their maximum."""

    samples: list[float]

    def quantile(self, q: float) -> float:
        ordered = sorted(self.samples)
        if not ordered:
            return math.nan
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]

    @property
    def p50_ms(self) -> float:
        return self.quantile(0.50) * 1000

    @property
    def p99_ms(self) -> float:
        return self.quantile(0.99) * 1000

    def p99_ms_at(self, n: int) -> float:
        """The p99 these samples give at a sample size of ``n``: the median of the p99 of each run of ``n``
        consecutive samples. A p99 of fewer than 100 samples is their maximum, which grows with their
        number; comparing it with the p99 of many more samples would blame the smaller set for its size."""
        if n <= 0 or len(self.samples) < n:
            return math.nan
        blocks = [Samples(self.samples[i:i + n]).p99_ms for i in range(0, len(self.samples) - n + 1, n)]
        return sorted(blocks)[(len(blocks) - 1) // 2]


@dataclass(frozen=True)
class Samples(Quantiles):
    samples: list[float]
