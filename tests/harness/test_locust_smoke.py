"""Tiny headless Locust runs of every user against the test database, so none can rot.

Locust monkey-patches the process with gevent, so each run is a subprocess, as `nox -s load`
runs it; the CSV report is the evidence.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jedisos_db.runtime import config, urls
from jedisos_db.runtime.urls import DatabaseURL
from tests.plugins.hindsight import RunningHindsight

ROOT = Path(__file__).resolve().parents[2]
LOCUSTFILE = ROOT / "load" / "locustfile.py"
EXPECTED = {"audit.insert", "audit.copy[50]", "cost.insert", "cost.copy[50]", "pgvector.knn", "turn (total)",
            "turn.checkpoint (langgraph)", "turn.recall (bench kNN)"}


def _env(url: DatabaseURL) -> dict[str, str]:
    """The URL in $JEDISOS_DB_URL, never on a command line; nothing else of the caller's may name a database."""
    env = {k: v for k, v in os.environ.items() if k not in config.ENV_NAMES.values()}
    return env | {"JEDISOS_DB_URL": url.libpq()}


# --stop-timeout lets each user finish its task: a greenlet killed inside a psycopg wait can leave
# gevent's libev watching a closed socket (an abort at exit).
BASE = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--only-summary", "--stop-timeout", "10",
        "--vector-rows", "500"]


def _locust(url: DatabaseURL, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BASE, *args],
                          cwd=ROOT, env=_env(url), capture_output=True, text=True, timeout=timeout, check=False)


def _stats(prefix: Path) -> dict[str, dict[str, str]]:
    with open(f"{prefix}_stats.csv", encoding="utf-8") as fh:
        return {row["Name"]: row for row in csv.DictReader(fh)}


def test_every_user_runs_and_reports(migrated_db: DatabaseURL, tmp_path: Path) -> None:
    """Each Locust user makes successful requests; CSV and HTML reports are written."""
    prefix = tmp_path / "smoke"
    html = tmp_path / "smoke.html"
    run = _locust(migrated_db, "--headless", "-u", "4", "-r", "4", "-t", "4s",
                  "--csv", str(prefix), "--html", str(html))
    assert run.returncode == 0, f"locust exited {run.returncode}:\n{run.stderr[-3000:]}"
    stats = _stats(prefix)
    missing = EXPECTED - set(stats)
    assert not missing, f"no requests recorded for {sorted(missing)}; stats had {sorted(stats)}"
    for name in EXPECTED:
        assert int(stats[name]["Request Count"]) > 0, f"{name}: no requests"
        assert int(stats[name]["Failure Count"]) == 0, f"{name}: {stats[name]['Failure Count']} failures"
    assert html.stat().st_size > 0
    if not os.environ.get("HINDSIGHT_URL"):
        assert "HindsightRecall user left out: HINDSIGHT_URL is not set" in run.stderr


def test_thresholds_set_the_exit_code(migrated_db: DatabaseURL, tmp_path: Path) -> None:
    """A p95 threshold nobody can meet turns a clean run into exit code 1, with the reason."""
    run = _locust(migrated_db, "--headless", "-u", "1", "-r", "1", "-t", "2s",
                  "--max-p95-ms", "0.000001", "--csv", str(tmp_path / "t"), "AuditWriter")
    assert run.returncode == 1, f"expected exit 1 from the p95 threshold, got {run.returncode}:\n{run.stderr[-2000:]}"
    assert "thresholds not met: p95" in run.stderr


@pytest.mark.slow
def test_distributed_mode_runs_unchanged(migrated_db: DatabaseURL, tmp_path: Path) -> None:
    """The same locustfile under a master and a worker process: requests succeed, exit code 0."""
    prefix = tmp_path / "dist"
    port = str(5600 + os.getpid() % 300)
    master = subprocess.Popen(
        [*BASE, "--headless", "--master", "--expect-workers", "1", "--master-bind-port", port, "-u", "3", "-r", "3",
         "-t", "4s", "--csv", str(prefix)],
        cwd=ROOT, env=_env(migrated_db), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(1.5)
    worker = subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--worker", "--master-port", port],
        cwd=ROOT, env=_env(migrated_db), capture_output=True, text=True, timeout=90, check=False)
    out, _ = master.communicate(timeout=90)
    assert master.returncode == 0, f"master exited {master.returncode}:\n{out[-3000:]}"
    assert worker.returncode == 0, f"worker exited {worker.returncode}:\n{worker.stderr[-3000:]}"
    total = _stats(prefix)["Aggregated"]
    assert int(total["Request Count"]) > 0, total
    assert int(total["Failure Count"]) == 0, total


@pytest.mark.e2e
def test_hindsight_recall_user(hindsight_server: RunningHindsight, migrated_db: DatabaseURL, tmp_path: Path) -> None:
    """HindsightRecall and JediSOSTurn recall through the real Hindsight REST API (design §2-3)."""
    prefix = tmp_path / "hs"
    env = _env(migrated_db) | {"HINDSIGHT_URL": hindsight_server.base_url}
    run = subprocess.run([*BASE, "--headless", "-u", "2", "-r", "2", "-t", "5s",
                          "--csv", str(prefix), "HindsightRecall", "JediSOSTurn"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    stats = _stats(prefix)
    for name in ("hindsight.recall", "turn.recall (hindsight)"):
        assert int(stats[name]["Request Count"]) > 0, f"{name}: no requests; stats had {sorted(stats)}"
        assert int(stats[name]["Failure Count"]) == 0, f"{name}: {stats[name]['Failure Count']} failures"


def test_nox_load_entry_point(migrated_db: DatabaseURL, tmp_path: Path) -> None:
    """`python -m load` (what `nox -s load` runs): migrate, then the headless run of load/locust.conf
    with its reports under ./reports."""
    env = _env(migrated_db) | {"PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "-m", "load", "-t", "3s", "-u", "2", "-r", "2", "--vector-rows", "500"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, f"python -m load exited {run.returncode}:\n{run.stdout[-1500:]}\n{run.stderr[-2500:]}"
    assert "load target: postgresql://" in run.stdout
    assert (tmp_path / "reports" / "load_stats.csv").stat().st_size > 0
    assert (tmp_path / "reports" / "load.html").stat().st_size > 0


def test_the_runner_hands_locust_the_url_in_its_environment() -> None:
    """`python -m load` starts Locust with the URL (and its password) in $JEDISOS_DB_URL, not in argv."""
    from load.__main__ import locust_command

    url = urls.parse("postgresql://load:s3cret-pw@db.internal:5432/jedisos")
    argv, env = locust_command(url, ["-t", "3s"])
    assert not [arg for arg in argv if "s3cret-pw" in arg or "db.internal" in arg], argv
    assert urls.parse(env["JEDISOS_DB_URL"]).libpq() == url.libpq()
    assert argv[-2:] == ["-t", "3s"]
