"""``migrations``: is the design's migration chain safe on a live, filled database? (issue 10, point 4)

The live database JediSOS would be upgraded is the design document's (the ``documented`` design's revision,
006). In a scratch database the design is built up to that revision, its tables are filled server-side
(``generate_series``) to the volume 100 users leave after 12 months under the design's retention windows
(:mod:`jedisos_db.harness.capacity.model`'s workload; ``verify --quick``: 10 users), and then the rest of the
design's chain runs: 007-010 for ``recommended``, 007-010 and p010 for ``partitioned``, nothing for
``documented``. Meanwhile a monitor connection samples ``pg_locks`` of the migrating backend: every statement
is timed (SQLAlchemy's cursor events on the migration's engine) and waits, once it has run, for a sample
taken after it, so each relation lock is attributed to the statement that took it, and it is followed until
it is gone (held to the end of the revisions' transaction, or of the statement in an autocommit block).
Only relations that existed before the upgrade are named: ones the upgrade itself creates are visible to
nobody else, so their locks block no one.

Figures: ``statements`` (schema changes run), ``access_exclusive_max_ms`` and ``access_exclusive_max_table``
(the longest ACCESS EXCLUSIVE hold on a filled table, from the start of the statement that took it until a
sample no longer sees it: within one sample interval), ``total_s``, ``rows_lost`` (rows of the filled tables
missing afterwards: must be 0); notes list each statement taking ACCESS EXCLUSIVE on a filled table. The
standing tables (tools, schedules, preferences: ≤ 1,000 rows at 100 users, untouched after 006) stay empty.

Also, when squawk-cli is installed (the ``[squawk]`` extra, which ``[test]`` and ``[verify]`` include; or
``squawk`` on PATH): ``squawk_findings``
over :meth:`Design.migration_sql` (the whole chain from an empty database, as ``nox -s squawk`` lints it) and
``squawk_upgrade_findings`` over the statements of the upgrade measured here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sysconfig
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from alembic.script import ScriptDirectory
from alembic.util import CommandError
from psycopg import sql
from sqlalchemy import event
from sqlalchemy.engine import Engine

from jedisos_db.harness import datagen, designs
from jedisos_db.harness.capacity import model
from jedisos_db.harness.designs import Design
from jedisos_db.harness.measure import Context, Measured, Point
from jedisos_db.harness.verify.verdicts import Figure
from jedisos_db.ops import provision
from jedisos_db.runtime.db import migrations
from jedisos_db.runtime.db.connect import connect
from jedisos_db.runtime.errors import LockTimeoutError, MigrationError
from jedisos_db.runtime.owners import SCHEMA
from jedisos_db.runtime.repositories import validation
from jedisos_db.runtime.retention import AUDIT_RULE, COST_RULE
from jedisos_db.runtime.urls import DatabaseURL

LIVE_DESIGN: Final = "documented"
"""The design whose revision a live database is at before the upgrade (the design document's DDL)."""
USERS: Final = 100
QUICK_USERS: Final = 10
MONTHS: Final = 12
FILLED: Final = (AUDIT_RULE.name, COST_RULE.name)
"""The tables filled: the only ones that grow with users and months (their retention rules share their names)."""
SAMPLE_PERIOD_S: Final = 0.01
"""The monitor samples at least this often; each statement's end also asks for a sample at once."""
WAIT_S: Final = 60.0
"""Longest a statement waits for the monitor's sample after it (the monitor is stuck if it takes longer)."""
ACCESS_EXCLUSIVE: Final = "ACCESS EXCLUSIVE"
WRITE_BLOCKING: Final = ("SHARE", "SHARE ROW EXCLUSIVE", "EXCLUSIVE")
"""The other modes that conflict with the ROW EXCLUSIVE every INSERT/UPDATE/DELETE takes."""
_VERSION_STAMP: Final = re.compile(r"(?:version_num\s*=\s*|VALUES\s*\()'([^']+)'", re.IGNORECASE)


# --- the chain ----------------------------------------------------------------------------------------


def live_revision() -> str:
    return designs.load(LIVE_DESIGN).schema.revision


def pending(design: Design) -> tuple[str, str] | None:
    """(from, to): the revisions a live database runs to become this design, or None when there are none
    (the design's DDL file, the live revision itself, or a revision the live one does not lead to)."""
    if design.schema.source != "migrations":
        return None
    scripts = ScriptDirectory.from_config(migrations.alembic_config(versions=design.schema.versions))
    start = live_revision()
    try:
        target = scripts.get_revision(design.schema.revision)
        steps = [r for r in scripts.iterate_revisions(design.schema.revision, start) if r is not None]
    except CommandError:
        return None
    if target is None or not steps:
        return None
    return start, target.revision


# --- the fill -----------------------------------------------------------------------------------------


def volumes(design: Design, users: int, months: int = MONTHS) -> dict[str, dict[str, int]]:
    """Rows per filled table and group of severities: ``{"audit_logs": {"kept": n, "purgeable": n}, ...}``,
    what ``users`` users leave after ``months`` under the design's retention windows (capacity model)."""
    validation.integer("users", users, low=1, high=1_000_000)
    monthly = model.monthly_rows(model.Workload())
    out: dict[str, dict[str, int]] = {}
    for table in FILLED:
        rule = design.retention[table].rule
        window = min(months, rule.keep.days / model.DAYS_PER_MONTH)
        share = model.Retention(policy=(rule,)).deletable_share(rule)
        out[table] = {"kept": round(users * monthly[table] * months * (1 - share)),
                      "purgeable": round(users * monthly[table] * window * share)}
    return out


def _weighted(severities: Sequence[str]) -> list[str]:
    """The severities in proportion to the workload's mix (1,000 slots), for ``generate_series`` to cycle."""
    return [s for s in severities for _ in range(max(1, round(datagen.SEVERITY_MIX[s] * 1000)))]


def _span_days(design: Design, table: str, group: str, months: int) -> float:
    rule = design.retention[table].rule
    return min(months * model.DAYS_PER_MONTH, rule.keep.days) if group == "purgeable" else months * model.DAYS_PER_MONTH


AUDIT_FILL: Final = sql.SQL("""
    INSERT INTO {table} ("timestamp", event_type, severity, user_id, channel, session_id, tool_name, action, result,
                         details, ip_address)
    SELECT now() - i * %(step)s::interval, (%(events)s::text[])[1 + i %% %(n_events)s],
           (%(sev)s::text[])[1 + (i * 7919) %% %(n_sev)s], 'user-' || (i %% %(users)s), 'web', 'session-' || (i / 40),
           (%(tools)s::text[])[1 + i %% %(n_tools)s], 'execute', (%(results)s::text[])[1 + i %% %(n_results)s],
           jsonb_build_object('duration_ms', i %% 5000, 'turn', i), '10.0.0.0'::inet + (i %% 65000)
    FROM generate_series(0, %(n)s::bigint - 1) AS i""")
COST_FILL: Final = sql.SQL("""
    INSERT INTO {table} ("timestamp", model, provider, input_tokens, output_tokens, total_tokens, cost_usd, source,
                         session_id, user_id, latency_ms, status)
    SELECT now() - i * %(step)s::interval, (%(models)s::text[])[1 + i %% %(n_models)s],
           (%(providers)s::text[])[1 + i %% %(n_models)s], 200 + i %% 3000, 50 + i %% 900, 250 + i %% 3000 + i %% 900,
           ((i %% 997) / 100000.0)::numeric(10, 6), (%(sources)s::text[])[1 + i %% %(n_sources)s],
           'session-' || (i / 40), 'user-' || (i %% %(users)s), 100 + i %% 4000,
           (%(statuses)s::text[])[1 + (i * 31) %% %(n_statuses)s]
    FROM generate_series(0, %(n)s::bigint - 1) AS i""")


def fill(url: DatabaseURL, design: Design, users: int, months: int = MONTHS) -> dict[str, int]:
    """Fill the growing tables at ``url`` (at the live revision) to :func:`volumes`; returns rows per table."""
    rows = volumes(design, users, months)
    with connect(url) as conn:
        for table, groups in rows.items():
            rule = design.retention[table].rule
            qualified = sql.Identifier(SCHEMA, table)
            for group, n in groups.items():
                if n == 0:
                    continue
                step = f"{_span_days(design, table, group, months) * 86400 / n:.6f} seconds"
                if table == AUDIT_RULE.name:
                    purged = set(rule.only_severities)
                    severities = _weighted([s for s in validation.SEVERITIES
                                            if (s in purged) == (group == "purgeable")])
                    conn.execute(AUDIT_FILL.format(table=qualified), {
                        "step": step, "n": n, "users": users, "sev": severities, "n_sev": len(severities),
                        "events": datagen.EVENT_TYPES, "n_events": len(datagen.EVENT_TYPES),
                        "tools": datagen.TOOLS, "n_tools": len(datagen.TOOLS),
                        "results": list(validation.AUDIT_RESULTS), "n_results": len(validation.AUDIT_RESULTS)})
                else:
                    statuses = [s for s, w in datagen.COST_STATUS_WEIGHTS.items() for _ in range(w)]
                    conn.execute(COST_FILL.format(table=qualified), {
                        "step": step, "n": n, "users": users, "models": [m for m, _ in datagen.MODELS],
                        "providers": [p for _, p in datagen.MODELS], "n_models": len(datagen.MODELS),
                        "sources": list(validation.COST_SOURCES), "n_sources": len(validation.COST_SOURCES),
                        "statuses": statuses, "n_statuses": len(statuses)})
            conn.execute(sql.SQL("VACUUM ANALYZE {}").format(qualified))
    return count_rows(url)


def count_rows(url: DatabaseURL) -> dict[str, int]:
    with connect(url) as conn:
        out = {}
        for table in FILLED:
            row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(SCHEMA, table))).fetchone()
            out[table] = int(row[0]) if row else 0
    return out


# --- the monitor ----------------------------------------------------------------------------------------


LOCKS_SQL: Final = """
    SELECT l.relation, l.mode, l.granted, n.nspname || '.' || c.relname, coalesce(t.relname, c.relname)
    FROM pg_locks l
    JOIN pg_stat_activity a ON a.pid = l.pid
    JOIN pg_class c ON c.oid = l.relation
    JOIN pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pg_index i ON i.indexrelid = c.oid
    LEFT JOIN pg_class t ON t.oid = i.indrelid
    WHERE l.locktype = 'relation' AND l.pid <> pg_backend_pid() AND a.backend_type = 'client backend'
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')"""
"""Relation locks of the other client backends of this database (the migrating one), on relations this
snapshot can name: ones created by the uncommitted upgrade are invisible here, and harmless to others."""

LockKey = tuple[int, str]
"""(relation oid, mode)."""


@dataclass(frozen=True)
class Lock:
    relation: str
    """``schema.name`` as it was before the upgrade (a rename inside it is not committed yet)."""
    table: str
    """The table itself, or the table of an index (unqualified: the scratch database has one table of a name)."""
    mode: str
    """As PostgreSQL's documentation names it: ``ACCESS EXCLUSIVE``, ``SHARE ROW EXCLUSIVE`` ..."""


@dataclass(frozen=True)
class Sample:
    began: float
    ended: float
    granted: dict[LockKey, Lock]
    waiting: dict[LockKey, Lock]


def lock_mode(pg_mode: str) -> str:
    """``AccessExclusiveLock`` -> ``ACCESS EXCLUSIVE``."""
    return re.sub(r"(?<!^)(?=[A-Z])", " ", pg_mode.removesuffix("Lock")).upper()


@dataclass
class LockMonitor:
    """A thread sampling the migrating backend's relation locks on its own connection."""

    url: DatabaseURL
    samples: list[Sample] = field(default_factory=list)
    _wake: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event)
    _changed: threading.Condition = field(default_factory=threading.Condition)
    _error: BaseException | None = None

    def _run(self) -> None:
        try:
            with connect(self.url, application_name="jedisos-db-lock-monitor") as conn:
                while not self._stop.is_set():
                    self._wake.wait(SAMPLE_PERIOD_S)  # a sampling period, or at once when a statement ends
                    self._wake.clear()
                    began = time.perf_counter()
                    rows = conn.execute(LOCKS_SQL).fetchall()
                    granted: dict[LockKey, Lock] = {}
                    waiting: dict[LockKey, Lock] = {}
                    for oid, mode, ok, relation, table in rows:
                        lock = Lock(str(relation), str(table), lock_mode(str(mode)))
                        (granted if ok else waiting)[(int(oid), lock.mode)] = lock
                    with self._changed:
                        self.samples.append(Sample(began, time.perf_counter(), granted, waiting))
                        self._changed.notify_all()
        except BaseException as exc:  # raised again in the migrating thread by the next wait
            self._error = exc
            with self._changed:
                self._changed.notify_all()

    def sampled_after(self, moment: float) -> None:
        """Return once a sample that began after ``moment`` is taken."""
        self._wake.set()
        with self._changed:
            done = self._changed.wait_for(
                lambda: self._error is not None or (bool(self.samples) and self.samples[-1].began > moment), WAIT_S)
        if self._error is not None:
            raise self._error
        if not done:
            raise LockTimeoutError(f"the lock monitor took no sample within {WAIT_S:.0f} s")

    def wait_until(self, seen: Callable[[Sample], bool], timeout: float = WAIT_S) -> bool:
        """Wait until a sample satisfies ``seen``; False when none did within ``timeout``."""
        with self._changed:
            return self._changed.wait_for(lambda: self._error is not None or any(seen(s) for s in self.samples),
                                          timeout) and self._error is None

    @contextmanager
    def running(self) -> Iterator[LockMonitor]:
        thread = threading.Thread(target=self._run, name="migration-lock-monitor", daemon=True)
        thread.start()
        try:
            self.sampled_after(time.perf_counter())  # connected and sampling before the first statement
            yield self
            self.sampled_after(time.perf_counter())  # the upgrade has committed: every lock is gone
        finally:
            self._stop.set()
            self._wake.set()
            thread.join(WAIT_S)


# --- the upgrade, statement by statement ---------------------------------------------------------------------


@dataclass(frozen=True)
class Hold:
    lock: Lock
    held_ms: float
    """From the start of the statement that took it (or the last sample that saw it queue for the lock) until the
    first sample without it."""
    rows: int
    """Rows of its table before the upgrade (0 for a table without rows, or one not filled)."""


@dataclass(frozen=True)
class Statement:
    revision: str
    sql: str
    began: float
    ended: float
    holds: tuple[Hold, ...] = ()
    waited: tuple[Lock, ...] = ()
    """Locks it was seen waiting for."""

    @property
    def seconds(self) -> float:
        return self.ended - self.began

    @property
    def schema_change(self) -> bool:
        return designs.is_schema_change(self.sql)

    def short(self, width: int = 90) -> str:
        text = " ".join(self.sql.split())
        return text if len(text) <= width else text[:width - 1] + "…"


@dataclass(frozen=True)
class Upgrade:
    start: str
    target: str
    rows_before: dict[str, int]
    rows_after: dict[str, int]
    statements: tuple[Statement, ...]
    total_s: float
    error: str | None = None

    @property
    def rows_lost(self) -> int:
        return sum(max(0, n - self.rows_after.get(t, 0)) for t, n in self.rows_before.items())

    def holds(self, mode: str = ACCESS_EXCLUSIVE, *, filled: bool = True) -> list[tuple[Statement, Hold]]:
        return [(s, h) for s in self.statements for h in s.holds
                if h.lock.mode == mode and (h.rows > 0 or not filled)]


def _attribute(timeline: Sequence[tuple[str, float, float]], samples: Sequence[Sample],
               rows: dict[str, int]) -> tuple[Statement, ...]:
    """Each lock to the statement during or after which it first shows, taken when that statement began (or,
    had it queued for the lock, when it was last seen waiting) and held until the first sample without it."""
    holds: dict[int, list[Hold]] = {}
    waited: dict[int, set[Lock]] = {}
    last_wait: dict[LockKey, float] = {}
    open_since: dict[LockKey, tuple[int, Lock, float]] = {}

    def statement_at(moment: float) -> int:
        return max((i for i, (_, began, _) in enumerate(timeline) if began <= moment), default=-1)

    def close(key: LockKey, moment: float) -> None:
        index, lock, taken = open_since.pop(key)
        holds.setdefault(index, []).append(Hold(lock, (moment - taken) * 1000, rows.get(lock.table, 0)))

    for sample in samples:
        at = statement_at(sample.began)
        if at < 0:
            continue
        for key, lock in sample.waiting.items():
            waited.setdefault(at, set()).add(lock)
            last_wait[key] = sample.began
        for key, lock in sample.granted.items():
            if key not in open_since:
                open_since[key] = (at, lock, max(timeline[at][1], last_wait.get(key, timeline[at][1])))
        for key in [k for k in open_since if k not in sample.granted]:
            close(key, sample.began)
    for key in list(open_since):  # still held at the last sample (an upgrade that failed mid-way)
        close(key, samples[-1].began)
    return _with_revisions([
        Statement("", text, began, ended, tuple(holds.get(i, ())),
                  tuple(sorted(waited.get(i, set()), key=lambda lock: lock.relation)))
        for i, (text, began, ended) in enumerate(timeline)])


def _with_revisions(statements: list[Statement]) -> tuple[Statement, ...]:
    """Alembic stamps the version table after each revision's statements: those before a stamp are its."""
    out: list[Statement] = []
    pending_run: list[Statement] = []
    for statement in statements:
        stamp = _VERSION_STAMP.search(statement.sql) if not statement.schema_change else None
        pending_run.append(statement)
        if stamp and statement.sql.lstrip().upper().startswith(("UPDATE", "INSERT")):
            out.extend(Statement(stamp.group(1), s.sql, s.began, s.ended, s.holds, s.waited) for s in pending_run)
            pending_run = []
    out.extend(pending_run)  # after the last stamp: env.py's own statements (none change the schema)
    return tuple(out)


def run_upgrade(url: DatabaseURL, design: Design, start: str, target: str, rows_before: dict[str, int], *,
                monitor: LockMonitor | None = None) -> Upgrade:
    """Upgrade the filled database at ``url`` from ``start`` to ``target`` under the lock monitor (``monitor``:
    one the caller watches too)."""
    timeline: list[tuple[str, float, float]] = []
    began: dict[int, float] = {}
    monitor = monitor or LockMonitor(url)

    def ours(conn: Any) -> bool:
        return bool(conn.engine.url.database == url.database)

    def before(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if ours(conn):
            began[id(cursor)] = time.perf_counter()

    def after(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if ours(conn):
            ended = time.perf_counter()
            timeline.append((statement, began.pop(id(cursor), ended), ended))
            monitor.sampled_after(ended)

    error = None
    # Alembic's env.py builds its own engine, so listen on every Engine for the upgrade's duration.
    event.listen(Engine, "before_cursor_execute", before)
    event.listen(Engine, "after_cursor_execute", after)
    try:
        with monitor.running():
            t0 = time.perf_counter()
            try:
                migrations.upgrade(url, target, versions=design.schema.versions)
            except MigrationError as exc:
                error = str(exc)
            total = time.perf_counter() - t0
    finally:
        event.remove(Engine, "before_cursor_execute", before)
        event.remove(Engine, "after_cursor_execute", after)
    statements = _attribute(timeline, monitor.samples, rows_before)
    return Upgrade(start, target, rows_before, count_rows(url), statements, total, error)


# --- squawk -------------------------------------------------------------------------------------------------


SQUAWK_MISSING = "squawk-cli is not installed (pip install 'jedisos-db[squawk]')"


def squawk_binary() -> str | None:
    """squawk-cli's binary: beside this interpreter (the ``[squawk]`` extra installed it there; a venv's bin
    is not on PATH unless it is activated), else on PATH; None when neither has it."""
    here = sysconfig.get_path("scripts")
    return shutil.which("squawk", path=os.pathsep.join(p for p in (here, os.environ.get("PATH")) if p))


def squawk(script: str) -> Counter[str] | None:
    """Findings of squawk-cli on ``script`` per rule, or None when it is not installed (:func:`squawk_binary`)."""
    binary = squawk_binary()
    if binary is None:
        return None
    with tempfile.TemporaryDirectory(prefix="jedisos-squawk-") as tmp:
        path = Path(tmp) / "migration.sql"
        path.write_text(script)
        done = subprocess.run([binary, "--reporter", "json", str(path)], capture_output=True, text=True,
                              timeout=120, check=False)
    if done.returncode not in (0, 1):
        raise MigrationError(f"squawk exited with {done.returncode}: {done.stderr.strip()[:300]}")
    return Counter(str(f["rule_name"]) for f in json.loads(done.stdout or "[]"))


def _squawk_script(statements: Sequence[Statement]) -> str:
    return "".join(f"{s.sql.strip().rstrip(';')};\n\n" for s in statements if s.schema_change)


# --- the measurement ------------------------------------------------------------------------------------------


def summarise(design: Design, users: int, upgrade: Upgrade | None, chain: Counter[str] | None,
              measured_upgrade: Counter[str] | None) -> Measured:
    figures: dict[str, Figure] = {"users": users, "months": MONTHS}
    notes: list[str] = []
    series: dict[str, list[Point]] = {}
    if upgrade is None:
        figures.update(filled_rows=0, statements=0, revisions=0, total_s=0.0, rows_lost=0,
                       access_exclusive_max_ms=0.0, access_exclusive_statements=0)
        why = ("is built from a DDL file, not a migration chain" if design.schema.source == "ddl" else
               f"runs no revision after {live_revision()} (the {LIVE_DESIGN} design's)")
        notes.append(f"{design.name} {why}, so a live database has nothing to migrate: no statement, no lock, "
                     "nothing filled.")
    else:
        changes = [s for s in upgrade.statements if s.schema_change]
        revisions = sorted({s.revision for s in changes if s.revision})
        figures.update(from_revision=upgrade.start, to_revision=upgrade.target,
                       filled_rows=sum(upgrade.rows_before.values()), statements=len(changes),
                       revisions=len(revisions), total_s=round(upgrade.total_s, 3),
                       rows_lost=upgrade.rows_lost)
        exclusive = upgrade.holds()
        longest = max(exclusive, key=lambda sh: sh[1].held_ms, default=None)
        figures["access_exclusive_max_ms"] = round(longest[1].held_ms, 1) if longest else 0.0
        figures["access_exclusive_max_table"] = f"{SCHEMA}.{longest[1].lock.table}" if longest else "none"
        blocking = _lock_notes(upgrade)
        figures["access_exclusive_statements"] = len({id(s) for s, _ in blocking})
        filled = ", ".join(f"{t} {n:,}" for t, n in upgrade.rows_before.items())
        notes.append(f"Upgrade {upgrade.start} -> {upgrade.target} on tables filled to {users} users x {MONTHS} "
                     f"months ({filled} rows): {len(changes)} statements in {upgrade.total_s:.2f} s; lock holds "
                     f"timed from the taking statement's start to the first monitor sample without the lock.")
        notes.extend(note for _, note in blocking)
        for mode in WRITE_BLOCKING:
            notes.extend(f"Blocks writes, not reads: {note}" for _, note in _lock_notes(upgrade, mode))
        if upgrade.error:
            notes.append(f"The upgrade failed on the filled database: {upgrade.error}")
        if upgrade.rows_lost:
            notes.append(f"{upgrade.rows_lost:,} rows of the filled tables are missing after the upgrade.")
        series["access_exclusive_ms_by_statement"] = [
            (float(i), max((h.held_ms for h in s.holds if h.lock.mode == ACCESS_EXCLUSIVE and h.rows), default=0.0))
            for i, s in enumerate(changes)]
    for name, found in (("squawk_findings", chain), ("squawk_upgrade_findings", measured_upgrade)):
        if found is not None:
            figures[name] = sum(found.values())
    if chain is None:
        notes.append(f"{SQUAWK_MISSING}: squawk_findings absent.")
    else:
        top = ", ".join(f"{rule} {n}" for rule, n in chain.most_common(5))
        notes.append(f"squawk-cli over the whole chain from an empty database: {sum(chain.values())} findings "
                     f"({top or 'none'}).")
    return Measured(figures=figures, series=series, notes=tuple(notes))


def _lock_notes(upgrade: Upgrade, mode: str = ACCESS_EXCLUSIVE) -> list[tuple[Statement, str]]:
    """A sentence per statement and filled table it takes ``mode`` on (the table, or only its indexes while no
    earlier statement holds the table itself in that mode or ACCESS EXCLUSIVE: then nothing more is blocked)."""
    taken = upgrade.holds(mode)
    whole = [(s.began, s.began + h.held_ms / 1000, h.lock.table) for s, h in {*taken, *upgrade.holds()}
             if h.lock.relation == f"{SCHEMA}.{h.lock.table}"]
    out = []
    for statement in upgrade.statements:
        tables: dict[str, list[Hold]] = {}
        for s, hold in taken:
            if s is statement:
                tables.setdefault(hold.lock.table, []).append(hold)
        for table, holds in tables.items():
            own = any(h.lock.relation == f"{SCHEMA}.{table}" for h in holds)
            if any(t == table and began < statement.began <= ended for began, ended, t in whole) and (
                    not own or mode != ACCESS_EXCLUSIVE):
                continue
            indexes = len(holds) - own
            what = (f"{SCHEMA}.{table}" + (f" and {indexes} of its indexes" if indexes else "") if own
                    else f"{indexes} index{'es' if indexes > 1 else ''} of {SCHEMA}.{table}")
            out.append((statement, f"{statement.revision}: `{statement.short()}` takes {mode} on {what} "
                                   f"({holds[0].rows:,} rows), held {max(h.held_ms for h in holds):.0f} ms "
                                   f"(the statement itself {statement.seconds * 1000:.0f} ms)."))
    return out


def run(design: Design, ctx: Context, *, users: int) -> Measured:
    plan = pending(design)
    upgrade = None
    run_sql: Counter[str] | None = None
    if plan is not None:
        with provision.scratch_database(ctx.server, design.scratch_name("migrations")) as url:
            start, target = plan
            migrations.upgrade(url, start, versions=design.schema.versions)
            rows = fill(url, design, users)
            if ctx.progress is not None:
                ctx.progress(1, 3)
            upgrade = run_upgrade(url, design, start, target, rows)
        run_sql = squawk(_squawk_script(upgrade.statements))
    if ctx.progress is not None:
        ctx.progress(2, 3)
    chain = None
    if squawk_binary() is not None:
        with provision.scratch_database(ctx.server, design.scratch_name("migration_sql")) as url:
            chain = squawk(design.migration_sql(url))
    if ctx.progress is not None:
        ctx.progress(3, 3)
    return summarise(design, users, upgrade, chain, run_sql)


def measure(design: Design, ctx: Context) -> Measured:
    return run(design, ctx, users=QUICK_USERS if ctx.quick else USERS)
