"""Every benchmark of bench/ runs once at tiny size inside the test suite, so none can rot.

`pytest-benchmark --benchmark-disable` runs each benchmarked callable exactly once and times
nothing; the suite runs in a subprocess (its own conftest and options) against this session's
server. Timings are never asserted here (design §7 figures come from `nox -s bench`).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from jedisos_db.runtime.urls import DatabaseURL

ROOT = Path(__file__).resolve().parents[2]


def test_every_benchmark_runs_once(server_url: DatabaseURL) -> None:
    # The admin URL travels in the environment, never on the child's command line.
    env = {k: v for k, v in os.environ.items() if k != "JEDISOS_DB_URL"} | {"JEDISOS_TEST_DSN": server_url.libpq()}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "bench", "--benchmark-disable", "-p", "no:cacheprovider",
         "-q", "-rs", "--bench-rows", "20", "--vector-rows", "600", "--vector-queries", "8",
         "--vector-connections", "2"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    tail = run.stdout[-4000:] + run.stderr[-2000:]
    assert run.returncode == 0, f"bench suite failed (exit {run.returncode}):\n{tail}"
    summary = re.search(r"(\d+) passed", run.stdout)
    assert summary, tail
    # 3 writers + 4 repository paths, x2 (audit, cost); 2 retention; 2 recall tables + 6 kNN; 2 paired-round runs.
    assert int(summary.group(1)) == 32, tail
