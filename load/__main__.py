"""``python -m load [--hindsight] [--steps 10,50,100 --step-time 2m] [locust args…]``: start/migrate the
database, then headless bounded Locust runs.

The database is ``--pg-dsn URL`` (or ``--dsn URL``) if given, else ``$JEDISOS_DB_URL``, else section 8's
``POSTGRES_*``, else the embedded server (started if needed); ``jedisos_db.ops.startup.up`` brings it to
head first. Locust gets it in ``$JEDISOS_DB_URL``, never on its command line. Reports land in
``reports/`` (CSV + HTML, see ``load/locust.conf``). The exit code is Locust's (the worst step's):
non-zero when a threshold (``--max-fail-ratio``, ``--max-p95-ms``) is not met.

``--hindsight`` starts the real Hindsight server offline (mock LLM, our TEI embeddings endpoint) on the
same database and hands Locust its URL in ``$HINDSIGHT_URL``.

``--steps 10,50,100`` runs Locust once per user count, each for ``--step-time`` (default 2m), with the
users of ``--step-users`` (default ``JediSOSTurn``), and writes ``reports/load_steps.md`` (and ``.json``): turns/s and
turn p50/p95/p99 per step, the p99 of each step of the turn, how busy the data layer's pools were, and the
CPU each process used (sampled from ``/proc`` through psutil), beside the machine's total.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from jedisos_db.ops import provision, startup
from jedisos_db.runtime.db.connect import connect
from jedisos_db.runtime.urls import DatabaseURL

HERE = Path(__file__).resolve().parent
REPORTS = Path("reports")
TURN = "turn (total)"
TURN_STEPS = ("turn.recall (hindsight)", "turn.recall (bench kNN)", "turn.checkpoint (langgraph)",
              "turn.retain (hindsight)", "turn.audit", "turn.cost")
SAMPLE_SECONDS = 1.0


def locust_command(url: DatabaseURL, args: list[str],
                   extra_env: Mapping[str, str] | None = None) -> tuple[list[str], dict[str, str]]:
    """Locust's argv and environment: the URL (with its password) only in the environment."""
    cmd = [sys.executable, "-m", "locust", "--config", str(HERE / "locust.conf"), "-f", str(HERE / "locustfile.py"),
           *args]
    return cmd, {**os.environ, **(extra_env or {}), provision.ENV_URL: url.libpq()}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m load", add_help=False, allow_abbrev=False,
                                     description="Everything not listed here goes to Locust.")
    parser.add_argument("--pg-dsn", "--dsn", dest="dsn", default=None)
    parser.add_argument("--hindsight", action="store_true",
                        help="start the real Hindsight server (offline) on the same database for the run")
    parser.add_argument("--steps", default="", help="comma-separated user counts, one bounded run each")
    parser.add_argument("--step-time", default="2m", help="run time of each step (Locust's -t syntax)")
    parser.add_argument("--step-users", default="JediSOSTurn", help="user classes of the steps (comma-separated)")
    return parser


def _steps(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise SystemExit(f"--steps: expected comma-separated user counts, got {text!r}") from None
    if not counts or min(counts) < 1:
        raise SystemExit(f"--steps: expected positive user counts, got {text!r}")
    return counts


@contextmanager
def _hindsight(url: DatabaseURL, wanted: bool) -> Iterator[dict[str, str]]:
    """``HINDSIGHT_URL`` of a real Hindsight server started for the run (nothing when not ``wanted``)."""
    if not wanted:
        yield {}
        return
    from jedisos_db.harness.hindsight.server import HindsightServer

    with HindsightServer(url, log_path=(REPORTS / "hindsight-api.log").resolve()) as server:
        print(f"hindsight: {server.base_url} (offline: mock LLM, local TEI embeddings; log "
              f"{server.log_path})", flush=True)
        yield {"HINDSIGHT_URL": server.base_url}


def main(argv: list[str]) -> int:
    opts, args = _parser().parse_known_args(argv)
    report = startup.up(opts.dsn)
    print(f"load target: {report.url} (PostgreSQL {report.server.server_version}, "
          f"pgvector {report.server.pgvector_version}, revision {report.revision})", flush=True)
    REPORTS.mkdir(exist_ok=True)
    with _hindsight(report.url, opts.hindsight) as env:
        if not opts.steps:
            cmd, full_env = locust_command(report.url, args, env)
            return subprocess.call(cmd, env=full_env)
        return run_steps(report.url, _steps(opts.steps), opts.step_time, opts.step_users.split(","), args, env)


# --- the stepped run ---------------------------------------------------------------------------------------


@dataclass
class CpuGroups:
    """Cumulative CPU seconds of the processes a run involves, and of the whole machine."""

    at: float
    groups: dict[str, float]
    machine_busy: float


def _tree_cpu(proc: psutil.Process) -> float:
    """CPU seconds of ``proc``, of the children it has reaped, and of its live descendants.

    A PostgreSQL backend that exits between two samples is counted through the postmaster's
    ``children_*`` times (the postmaster reaps it), so short-lived connections are not lost.
    Raises :class:`psutil.NoSuchProcess` when ``proc`` itself has ended."""
    times = proc.cpu_times()
    total = times.user + times.system + times.children_user + times.children_system
    for child in proc.children(recursive=True):
        try:
            ct = child.cpu_times()
        except psutil.Error:  # ended since it was listed: its time is now its parent's children_*
            continue
        total += ct.user + ct.system
    return total


def _postmaster(url: DatabaseURL) -> psutil.Process | None:
    """The PostgreSQL server's postmaster (the parent of a backend of ours), when it runs on this machine:
    reached over a unix socket or a loopback address; None otherwise, where that pid means nothing here."""
    with connect(url) as conn:
        row = conn.execute("SELECT pg_backend_pid(), coalesce(host(inet_server_addr()), 'local')").fetchone()
    assert row is not None
    backend, address = row
    if address not in ("local", "127.0.0.1", "::1"):
        return None
    try:
        return psutil.Process(int(backend)).parent()
    except psutil.Error:
        return None


def _sample(locust: psutil.Process, postmaster: psutil.Process | None) -> CpuGroups:
    me = psutil.Process()
    own = me.cpu_times()
    others = [p for p in me.children() if p.pid != locust.pid]  # the Hindsight server (and its workers)
    cpu = psutil.cpu_times()
    groups = {
        "locust": _tree_cpu(locust),
        "postgres": _tree_cpu(postmaster) if postmaster is not None else 0.0,
        "hindsight": sum(_tree_cpu(p) for p in others if p.is_running()),
        # This process serves the TEI embeddings Hindsight asks for (a thread of ours).
        "embeddings": own.user + own.system,
    }
    return CpuGroups(time.monotonic(), groups, cpu.user + cpu.system + cpu.nice + cpu.irq + cpu.softirq)


def _watch(locust: psutil.Process, postmaster: psutil.Process | None, out: list[CpuGroups],
           stop: threading.Event) -> None:
    """Sample until told to stop or Locust ends; the first and last samples taken while it ran bound the step
    (a sample that finds it gone is dropped: its CPU time is no longer readable)."""
    while not stop.is_set():
        try:
            out.append(_sample(locust, postmaster))
        except psutil.Error:
            return
        stop.wait(SAMPLE_SECONDS)


def percentile(response_times: Mapping[str, int], total: int, share: float) -> float:
    """Locust's own rule over its rounded response-time buckets (ms): the smallest bucket with at most
    ``total * (1 - share)`` requests slower than it."""
    at_most = int(total * share)
    seen = 0
    for bucket, count in sorted(((float(k), v) for k, v in response_times.items()), reverse=True):
        seen += count
        if total - seen <= at_most:
            return bucket
    return 0.0


@dataclass
class Entry:
    """One request name's figures from Locust's JSON report."""

    requests: int
    failures: int
    per_second: float
    p50: float
    p95: float
    p99: float

    @property
    def ok_per_second(self) -> float:
        """Successful requests per second (a refused call fails fast and would inflate the rate)."""
        return self.per_second * (self.requests - self.failures) / self.requests if self.requests else 0.0


def _entries(path: Path) -> dict[str, Entry]:
    entries: dict[str, Entry] = {}
    for raw in json.loads(path.read_text(encoding="utf-8")):
        n = int(raw["num_requests"])
        span = max(float(raw["last_request_timestamp"] or 0) - float(raw["start_time"]), 1e-9)
        times = raw["response_times"]
        entries[raw["name"]] = Entry(n, int(raw["num_failures"]), n / span if n > 1 else 0.0,
                                     percentile(times, n, 0.50), percentile(times, n, 0.95),
                                     percentile(times, n, 0.99))
    return entries


@dataclass
class StepResult:
    users: int
    exit_code: int
    entries: dict[str, Entry]
    cores: dict[str, float]
    library: dict[str, Any] = field(default_factory=dict)


def run_step(url: DatabaseURL, users: int, step_time: str, classes: Sequence[str], args: list[str],
             env: Mapping[str, str]) -> StepResult:
    """One bounded Locust run at ``users`` users, its CPU sampled; the figures it reported."""
    prefix = REPORTS / f"load_u{users}"
    library = Path(f"{prefix}_library.json")
    library.unlink(missing_ok=True)
    step_args = ["-u", str(users), "-r", str(max(1, users // 5)), "-t", step_time, "--csv", str(prefix),
                 "--json-file", str(prefix), "--html", f"{prefix}.html", "--library-report", str(library),
                 *args, *classes]
    cmd, full_env = locust_command(url, step_args, env)
    postmaster = _postmaster(url)
    print(f"step: {users} users for {step_time} ({', '.join(classes)})", flush=True)
    proc = subprocess.Popen(cmd, env=full_env)
    samples: list[CpuGroups] = []
    stop = threading.Event()
    watcher = threading.Thread(target=_watch, args=(psutil.Process(proc.pid), postmaster, samples, stop),
                               daemon=True)
    watcher.start()
    try:
        code = proc.wait()
    finally:
        stop.set()
        watcher.join(timeout=10)
    cores: dict[str, float] = {}
    if len(samples) >= 2:
        first, last = samples[0], samples[-1]
        wall = last.at - first.at
        cores = {name: (last.groups[name] - first.groups[name]) / wall for name in first.groups}
        cores["machine"] = (last.machine_busy - first.machine_busy) / wall
    return StepResult(users, code, _entries(Path(f"{prefix}.json")), cores,
                      json.loads(library.read_text(encoding="utf-8")) if library.exists() else {})


def summary(results: Sequence[StepResult], step_time: str, classes: Sequence[str]) -> str:
    """The Markdown summary of a stepped run (reports/load_steps.md)."""
    steps = [s for s in TURN_STEPS if any(s in r.entries for r in results)]
    lines = [
        f"Stepped run: {', '.join(classes)}, {step_time} per step, {os.cpu_count()} cores "
        f"(shared: `machine` is every process on it, ours included).",
        "",
        "| users | turns/s (ok) | turn p50 ms | p95 ms | p99 ms | failed | "
        + " | ".join(f"{s.removeprefix('turn.')} p99" for s in steps)
        + " | engine pool full | saver busy | cores: locust | postgres | hindsight | embeddings | machine | exit |",
        "|---:|---:|---:|---:|---:|---:|" + "---:|" * len(steps) + "---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        turn = r.entries.get(TURN, Entry(0, 0, 0.0, 0.0, 0.0, 0.0))
        cells = [str(r.users), f"{turn.ok_per_second:.1f}", f"{turn.p50:.0f}", f"{turn.p95:.0f}", f"{turn.p99:.0f}",
                 str(turn.failures)]
        cells += [f"{r.entries[s].p99:.0f}" if s in r.entries else "" for s in steps]
        cells += [f"{r.library.get('engine_full_share', 0.0):.0%}", f"{r.library.get('saver_busy_share', 0.0):.0%}"]
        cells += [f"{r.cores.get(g, 0.0):.2f}" for g in ("locust", "postgres", "hindsight", "embeddings", "machine")]
        cells.append(str(r.exit_code))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def run_steps(url: DatabaseURL, counts: Sequence[int], step_time: str, classes: Sequence[str], args: list[str],
              env: Mapping[str, str]) -> int:
    """Each user count in turn; the summary printed and written to reports/load_steps.md; the worst exit code."""
    results = [run_step(url, users, step_time, classes, args, env) for users in counts]
    text = summary(results, step_time, classes)
    (REPORTS / "load_steps.md").write_text(text, encoding="utf-8")
    (REPORTS / "load_steps.json").write_text(json.dumps([asdict(r) for r in results], indent=2), encoding="utf-8")
    print(text, flush=True)
    return max(r.exit_code for r in results)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
