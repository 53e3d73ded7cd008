"""Tiny headless Locust runs of every user against the test database, so none can rot.

Locust monkey-patches the process with gevent, so each run is a subprocess, as `nox -s load`
runs it; the reports are the evidence.

No run is bounded by a clock: each ends when the work it checks is recorded (``--stop-after-requests``,
per request name with ``--stop-names``); ``--run-time`` and the subprocess timeout are generous
ceilings, so a busy machine makes a run slower, never emptier.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from jedisos_db.runtime import config, urls
from jedisos_db.runtime.urls import DatabaseURL
from tests.plugins.hindsight import RunningHindsight

ROOT = Path(__file__).resolve().parents[2]
LOCUSTFILE = ROOT / "load" / "locustfile.py"
EXPECTED = {"audit.record (enqueue)", "audit.record (commit)", "audit.record_many[50]", "cost.record (enqueue)",
            "cost.record (commit)", "cost.record_many[50]", "pgvector.knn", "turn (total)", "turn.recall (bench kNN)",
            "turn.checkpoint (langgraph)", "turn.audit", "turn.cost"}


@dataclass
class Counts:
    requests: int = 0
    failures: int = 0

    def add(self, requests: int, failures: int) -> None:
        self.requests += requests
        self.failures += failures


def _env(url: DatabaseURL) -> dict[str, str]:
    """The URL in $JEDISOS_DB_URL, never on a command line; nothing else of the caller's may name a database."""
    env = {k: v for k, v in os.environ.items() if k not in config.ENV_NAMES.values()}
    return env | {"JEDISOS_DB_URL": url.libpq()}


# --stop-timeout lets each user finish its task: a greenlet killed inside a psycopg wait can leave
# gevent's libev watching a closed socket (an abort at exit).
# These runs judge behaviour, not speed: no p95 limit a busy machine could miss (one given later wins).
ANY_LATENCY = ["--max-p95-ms", "600000"]
BASE = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--only-summary", "--stop-timeout", "10",
        "--vector-rows", "500", *ANY_LATENCY]
# Ceilings, not windows: a run that reaches one has failed to record its work (the assertions say which).
CEILING = ["-t", "150s"]
TIMEOUT = 240.0


def _until(requests: int, *names: str) -> list[str]:
    """Locust options ending the run once ``requests`` are recorded (of each of ``names``, if any)."""
    return ["--stop-after-requests", str(requests), *(["--stop-names", ",".join(names)] if names else []), *CEILING]


def _stopped_on_work(log: str) -> None:
    assert "stop condition met" in log, f"the run ended before its work was done:\n{log[-3000:]}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _locust(url: DatabaseURL, *args: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BASE, *args],
                          cwd=ROOT, env=_env(url), capture_output=True, text=True, timeout=timeout, check=False)


def _report(prefix: Path) -> list[str]:
    """Locust options writing the CSV report and the final statistics as JSON under ``prefix``."""
    return ["--csv", str(prefix), "--json-file", str(prefix)]


def _stats(prefix: Path) -> dict[str, Counts]:
    """Requests and failures per name, and their total under "Aggregated", from the JSON report.

    Not from the CSV: Locust rewrites it once a second and not at exit, so a run that ends soon after
    its last request leaves it behind (locustio/locust#1806, #2299); the JSON is written at exit."""
    counts: dict[str, Counts] = {"Aggregated": Counts()}
    for entry in json.loads(Path(f"{prefix}.json").read_text(encoding="utf-8")):
        for name in (entry["name"], "Aggregated"):
            counts.setdefault(name, Counts()).add(entry["num_requests"], entry["num_failures"])
    return counts


def test_every_user_runs_and_reports(migrated_db: DatabaseURL, tmp_path: Path) -> None:
    """Each Locust user makes successful requests; CSV, JSON and HTML reports are written."""
    prefix = tmp_path / "smoke"
    html = tmp_path / "smoke.html"
    run = _locust(migrated_db, "--headless", "-u", "4", "-r", "4", *_until(1, *sorted(EXPECTED)),
                  *_report(prefix), "--html", str(html))
    assert run.returncode == 0, f"locust exited {run.returncode}:\n{run.stderr[-3000:]}"
    _stopped_on_work(run.stderr)
    stats = _stats(prefix)
    missing = EXPECTED - set(stats)
    assert not missing, f"no requests recorded for {sorted(missing)}; stats had {sorted(stats)}"
    for name in EXPECTED:
        assert stats[name].requests > 0, f"{name}: no requests"
        assert stats[name].failures == 0, f"{name}: {stats[name].failures} failures"
    assert html.stat().st_size > 0
    assert Path(f"{prefix}_stats.csv").read_text(encoding="utf-8").startswith("Type,Name,Request Count")
    if not os.environ.get("HINDSIGHT_URL"):
        assert "HindsightRecall user left out: HINDSIGHT_URL is not set" in run.stderr


def test_thresholds_set_the_exit_code(migrated_db: DatabaseURL, tmp_path: Path) -> None:
    """A p95 threshold nobody can meet turns a clean run into exit code 1, with the reason."""
    run = _locust(migrated_db, "--headless", "-u", "1", "-r", "1", *_until(5),
                  "--max-p95-ms", "0.000001", *_report(tmp_path / "t"), "AuditWriter")
    _stopped_on_work(run.stderr)
    assert run.returncode == 1, f"expected exit 1 from the p95 threshold, got {run.returncode}:\n{run.stderr[-2000:]}"
    assert "thresholds not met: p95" in run.stderr


@pytest.mark.slow
def test_distributed_mode_runs_unchanged(migrated_db: DatabaseURL, tmp_path: Path) -> None:
    """The same locustfile under a master and a worker process: requests succeed, exit code 0.

    The master starts once the worker is connected (``--expect-workers``) and ends once the worker has
    reported requests; the worker retries its connection until the master listens, so the start order
    needs no pause."""
    prefix = tmp_path / "dist"
    port = str(_free_port())
    master = subprocess.Popen(
        [*BASE, "--headless", "--master", "--expect-workers", "1", "--expect-workers-max-wait", "120",
         "--master-bind-port", port, "-u", "3", "-r", "3", *_until(10), *_report(prefix)],
        cwd=ROOT, env=_env(migrated_db), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        worker = subprocess.run(
            [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--worker", "--master-port", port],
            cwd=ROOT, env=_env(migrated_db), capture_output=True, text=True, timeout=TIMEOUT, check=False)
        out, _ = master.communicate(timeout=TIMEOUT)
    finally:
        if master.poll() is None:
            master.kill()
            master.communicate()
    assert master.returncode == 0, f"master exited {master.returncode}:\n{out[-3000:]}"
    assert worker.returncode == 0, f"worker exited {worker.returncode}:\n{worker.stderr[-3000:]}"
    _stopped_on_work(out)
    total = _stats(prefix)["Aggregated"]
    assert total.requests >= 10, total
    assert total.failures == 0, total


@pytest.mark.e2e
def test_hindsight_recall_user(hindsight_server: RunningHindsight, migrated_db: DatabaseURL, tmp_path: Path) -> None:
    """HindsightRecall and JediSOSTurn recall (and the turn retains) through HindsightClient against the real
    Hindsight REST API (design §2-3)."""
    prefix = tmp_path / "hs"
    env = _env(migrated_db) | {"HINDSIGHT_URL": hindsight_server.base_url}
    names = ("hindsight.recall", "turn.recall (hindsight)", "turn.retain (hindsight)", "turn (total)")
    run = subprocess.run([*BASE, "--headless", "-u", "2", "-r", "2", *_until(1, *names),
                          *_report(prefix), "HindsightRecall", "JediSOSTurn"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    _stopped_on_work(run.stderr)
    stats = _stats(prefix)
    for name in names:
        assert name in stats, f"{name}: no requests; stats had {sorted(stats)}"
        assert stats[name].requests > 0, f"{name}: no requests"
        assert stats[name].failures == 0, f"{name}: {stats[name].failures} failures"


def test_nox_load_entry_point(migrated_db: DatabaseURL, tmp_path: Path) -> None:
    """`python -m load` (what `nox -s load` runs): migrate, then the headless run of load/locust.conf
    with its reports under ./reports."""
    env = _env(migrated_db) | {"PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "-m", "load", *_until(5), "-u", "2", "-r", "2", "--vector-rows", "500",
                          *ANY_LATENCY],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert run.returncode == 0, f"python -m load exited {run.returncode}:\n{run.stdout[-1500:]}\n{run.stderr[-2500:]}"
    _stopped_on_work(run.stderr)
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


def test_load_options_are_taken_and_the_rest_goes_to_locust_in_order() -> None:
    from load.__main__ import _parser

    opts, rest = _parser().parse_known_args(["--dsn", "postgresql:///x", "-u", "2", "--hindsight",
                                             "--stop-after-requests", "5", "--steps", "1,2", "--step-time", "9s"])
    assert (opts.dsn, opts.hindsight, opts.steps, opts.step_time) == ("postgresql:///x", True, "1,2", "9s")
    assert rest == ["-u", "2", "--stop-after-requests", "5"]


def test_step_percentiles_follow_locusts_own_rule() -> None:
    """The stepped run's summary reads Locust's JSON buckets; its percentiles are Locust's (checked in a
    subprocess: importing locust here would monkey-patch the test process)."""
    from load.__main__ import percentile

    buckets = {"10": 50, "20": 45, "100": 4, "1000": 1}
    ours = [percentile(buckets, 100, share) for share in (0.5, 0.95, 0.99, 1.0)]
    assert ours == [20.0, 100.0, 1000.0, 1000.0]
    assert percentile({}, 0, 0.99) == 0.0
    code = ("import json, sys; from locust.stats import calculate_response_time_percentile as p; "
            "b = {int(k): v for k, v in json.loads(sys.argv[1]).items()}; "
            "print(json.dumps([float(p(b, 100, s)) for s in (0.5, 0.95, 0.99, 1.0)]))")
    theirs = subprocess.run([sys.executable, "-c", code, json.dumps(buckets)], capture_output=True, text=True,
                            timeout=TIMEOUT, check=True)
    assert json.loads(theirs.stdout) == ours


@pytest.mark.slow
def test_stepped_run_writes_one_summary(migrated_db: DatabaseURL, tmp_path: Path) -> None:
    """`python -m load --steps 1,2`: one Locust run per user count (each ended on its work here), then one
    summary with the turn's rate and percentiles, the pools' occupancy and the CPU of each process."""
    env = _env(migrated_db) | {"PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "-m", "load", "--steps", "1,2", "--step-time", "150s",
                          "--stop-after-requests", "3", "--stop-names", "turn (total)", "--vector-rows", "500",
                          *ANY_LATENCY],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=2 * TIMEOUT, check=False)
    assert run.returncode == 0, f"python -m load exited {run.returncode}:\n{run.stdout[-1500:]}\n{run.stderr[-2500:]}"
    assert run.stderr.count("stop condition met") == 2, run.stderr[-3000:]
    steps = json.loads((tmp_path / "reports" / "load_steps.json").read_text(encoding="utf-8"))
    assert [step["users"] for step in steps] == [1, 2]
    for step in steps:
        turn = step["entries"]["turn (total)"]
        assert turn["requests"] >= 3, turn
        assert turn["failures"] == 0, turn
        assert 0 < turn["p50"] <= turn["p99"], turn
        assert step["library"]["samples"] > 0, step["library"]
        assert step["library"]["engine_capacity"] == 15, step["library"]
        assert step["cores"]["locust"] > 0, step["cores"]
    table = (tmp_path / "reports" / "load_steps.md").read_text(encoding="utf-8")
    assert "| users | turns/s (ok) |" in table
    assert [line.split("|")[1].strip() for line in table.splitlines()[4:]] == ["1", "2"]
