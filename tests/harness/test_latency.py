"""The one definition of p50/p99 (harness/latency.py), including p99 at a given sample size."""

from __future__ import annotations

import math

from jedisos_db.harness.latency import Samples


def test_p99_of_fewer_than_100_samples_is_their_maximum() -> None:
    s = Samples([0.001 * i for i in range(1, 51)])
    assert s.p99_ms == 50.0
    assert s.p50_ms == 25.0


def test_p99_at_a_sample_size_is_the_median_of_the_block_maxima() -> None:
    # Four blocks of 5: maxima 5, 50, 7, 9 ms -> median of [5, 7, 9, 50] by the lower middle: 7 ms.
    ms = [1, 2, 3, 4, 5, 10, 20, 30, 40, 50, 1, 7, 1, 1, 1, 9, 1, 1, 1, 1]
    s = Samples([m / 1000 for m in ms])
    assert s.p99_ms == 50.0  # over all 20: their maximum
    assert math.isclose(s.p99_ms_at(5), 7.0)
    assert math.isclose(s.p99_ms_at(20), 50.0)


def test_p99_at_a_size_larger_than_the_samples_is_nan() -> None:
    assert math.isnan(Samples([0.001, 0.002]).p99_ms_at(3))
    assert math.isnan(Samples([0.001]).p99_ms_at(0))
