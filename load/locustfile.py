"""Locust users for the JediSOS data paths, against the local PostgreSQL only.

    nox -s load                                   # embedded server, headless, 30 s, reports/load*
    JEDISOS_DB_URL=postgresql://… locust --config load/locust.conf             # the same by hand
    locust --config load/locust.conf --master --expect-workers 2               # distributed:
    locust -f load/locustfile.py --worker                                      # ×2, same file

The database is ``--pg-dsn URL``, else ``$JEDISOS_DB_URL``, else section 8's ``POSTGRES_*`` (the
package's one resolution, :func:`jedisos_db.ops.provision.given_target`); the environment keeps a
password off the command line, where any user of the machine could read it.

Users (each with its own connections; nothing here assumes a single process, so master/worker
mode runs them unchanged — preparation happens once, on the master or the local runner, under
an advisory lock):

- ``AuditWriter``   single-event INSERTs and 50-row ``COPY`` batches into ``jedisos.audit_logs``;
- ``CostWriter``    the same for ``jedisos.cost_tracking``;
- ``VectorRecall``  kNN on the bench table shaped like Hindsight's ``memory_units``
  (``jedisos_bench``; never the ``hindsight`` schema);
- ``JediSOSTurn``   one conversation turn: audit row + cost rows + a LangGraph checkpoint
  (``PostgresSaver`` confined to schema ``langgraph``) + a recall (Hindsight REST API when
  ``HINDSIGHT_URL`` is set, else the bench table kNN);
- ``HindsightRecall`` recall through the real Hindsight REST API; only when ``HINDSIGHT_URL``
  answers, otherwise left out with the reason logged.

Each database call is reported through ``environment.events.request`` (request type ``pg``).
At the end, ``--max-fail-ratio`` and ``--max-p95-ms`` decide the exit code.

``--stop-after-requests N`` (with ``--stop-names A,B`` to count names one by one) ends the run as soon
as that much work is recorded, however long it takes; ``--run-time`` is then only the ceiling.
"""

from __future__ import annotations

import logging
import os
import random
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import gevent
import psycopg
from locust import HttpUser, User, between, events, runners, task
from locust.clients import HttpSession
from locust.env import Environment
from locust.runners import STATE_CLEANUP, STATE_STOPPED, STATE_STOPPING, WorkerRunner
from locust.stats import RequestStats
from pgvector.psycopg import register_vector
from psycopg.types.json import Jsonb

from jedisos_db.harness import datagen, vectorbench
from jedisos_db.ops import provision
from jedisos_db.runtime.db import models
from jedisos_db.runtime.db.connect import connect
from jedisos_db.runtime.owners import SCHEMA
from jedisos_db.runtime.repositories.base import copy_columns
from jedisos_db.runtime.urls import DatabaseURL

log = logging.getLogger("jedisos.load")

HINDSIGHT_URL = os.environ.get("HINDSIGHT_URL", "").rstrip("/")
APPLICATION_NAME = "jedisos-load"
COPY_BATCH = 50


def _probe_hindsight(url: str) -> str | None:
    """None when a Hindsight server answers at ``url``, else why it is not used."""
    if not url:
        return "HINDSIGHT_URL is not set (no Hindsight server to recall through)"
    import urllib.request

    try:
        with urllib.request.urlopen(f"{url}/openapi.json", timeout=3) as resp:
            if resp.status != 200:
                return f"{url}/openapi.json answered {resp.status}"
    except OSError as exc:
        return f"Hindsight at {url} does not answer ({exc})"
    return None


HINDSIGHT_SKIP_REASON = _probe_hindsight(HINDSIGHT_URL)

# The master drops a worker after HEARTBEAT_LIVENESS missed one-second heartbeats (3 by default) and, with
# no worker left, stops the run. Our workers share their host with the database under load, so a worker's
# event loop can stall for seconds; allow half a minute before calling it gone.
runners.HEARTBEAT_LIVENESS = 30


@events.init_command_line_parser.add_listener  # type: ignore[untyped-decorator]  # locust leaves EventHook.add_listener unannotated
def _options(parser: Any) -> None:
    parser.add_argument("--pg-dsn", default="",
                        help="libpq URL of the local PostgreSQL (default $JEDISOS_DB_URL, else POSTGRES_*)")
    parser.add_argument("--max-fail-ratio", type=float, default=0.01,
                        help="exit 1 when the share of failed requests exceeds this (default 0.01)")
    parser.add_argument("--max-p95-ms", type=float, default=1000.0,
                        help="exit 1 when the overall 95th percentile exceeds this many ms (default 1000)")
    parser.add_argument("--vector-rows", type=int, default=5000,
                        help="rows of the kNN bench table (built once if missing; default 5000)")
    parser.add_argument("--stop-after-requests", type=int, default=0,
                        help="end the run, as --run-time would, once this many requests are recorded "
                             "(of each name in --stop-names, if given); 0: off (default)")
    parser.add_argument("--stop-names", default="",
                        help="comma-separated request names that --stop-after-requests counts one by one")


def _dsn(environment: Environment) -> DatabaseURL:
    dsn = getattr(environment.parsed_options, "pg_dsn", "") if environment.parsed_options else ""
    url = provision.given_target(dsn or None, field="--pg-dsn")
    if url is None:
        raise SystemExit(f"jedisos load: set {provision.ENV_URL} (or POSTGRES_*), or give --pg-dsn URL")
    return url


def _vector_table(environment: Environment) -> tuple[str, int]:
    rows = int(environment.parsed_options.vector_rows) if environment.parsed_options else 5000
    return vectorbench.table_name("clustered", rows, 384, vectorbench.HnswParams()), rows


@events.init.add_listener  # type: ignore[untyped-decorator]  # locust leaves EventHook.add_listener unannotated
def _prepare(environment: Environment, **_kw: Any) -> None:
    """Once per run, not per worker: the kNN bench table and LangGraph's tables in ``langgraph``."""
    if HINDSIGHT_SKIP_REASON:
        log.warning("HindsightRecall user left out: %s", HINDSIGHT_SKIP_REASON)
    try:
        # Imported here on every runner, workers too, so that no user's on_start pays for it: the import takes
        # seconds of CPU, and a worker whose event loop stalls that long misses its heartbeats to the master.
        from langgraph.checkpoint.postgres import PostgresSaver

        from jedisos_db.harness import agentgraph  # noqa: F401
        from jedisos_db.runtime import checkpointer
    except ImportError as exc:
        langgraph_missing: ImportError | None = exc
    else:
        langgraph_missing = None
    if isinstance(environment.runner, WorkerRunner) or environment.parsed_options is None:
        return
    dsn = _dsn(environment)
    table, rows = _vector_table(environment)
    if not vectorbench.table_ready(dsn, table, rows):
        log.info("building the kNN bench table %s.%s (%d rows)", vectorbench.BENCH_SCHEMA, table, rows)
        vectorbench.prepare(dsn, vectorbench.make_dataset(rows, queries=1))
    if langgraph_missing is not None:
        log.warning("JediSOSTurn checkpoints skipped: langgraph-checkpoint-postgres not importable (%s)",
                    langgraph_missing)
        return
    with connect(dsn) as admin:
        admin.execute("SELECT pg_advisory_lock(hashtext('jedisos-load-langgraph'))")
        checkpointer.ensure_schema(dsn)
        with _langgraph_connection(dsn) as conn:
            PostgresSaver(conn).setup()
        admin.execute("SELECT pg_advisory_unlock(hashtext('jedisos-load-langgraph'))")


def _langgraph_connection(dsn: DatabaseURL) -> psycopg.Connection[Any]:
    """One connection per user from the checkpointer factory's settings (only `langgraph` on the
    search_path); not its pool: a pool's worker threads add nothing under gevent."""
    from jedisos_db.runtime import checkpointer

    return psycopg.connect(dsn.libpq(), **checkpointer.connection_kwargs(application_name=APPLICATION_NAME))


@events.quitting.add_listener  # type: ignore[untyped-decorator]  # locust leaves EventHook.add_listener unannotated
def _thresholds(environment: Environment, **_kw: Any) -> None:
    """Set the exit code from the failure ratio and p95 (on the master or local runner only)."""
    if isinstance(environment.runner, WorkerRunner) or environment.parsed_options is None:
        return
    opts = environment.parsed_options
    total = environment.stats.total
    p95 = total.get_response_time_percentile(0.95) or 0.0
    problems = []
    if total.num_requests == 0:
        problems.append("no requests were made")
    if total.fail_ratio > opts.max_fail_ratio:
        problems.append(f"failure ratio {total.fail_ratio:.4f} > --max-fail-ratio {opts.max_fail_ratio}")
    if p95 > opts.max_p95_ms:
        problems.append(f"p95 {p95:.1f} ms > --max-p95-ms {opts.max_p95_ms}")
    if problems:
        log.error("thresholds not met: %s", "; ".join(problems))
        environment.process_exit_code = 1
    else:
        log.info("thresholds met: %d requests, failure ratio %.4f <= %s, p95 %.1f ms <= %s", total.num_requests,
                 total.fail_ratio, opts.max_fail_ratio, p95, opts.max_p95_ms)


def _recorded(stats: RequestStats, wanted: int, names: list[str]) -> bool:
    """Whether ``wanted`` requests are recorded in total, or of each of ``names`` when given."""
    if not names:
        return stats.total.num_requests >= wanted
    per_name: dict[str, int] = dict.fromkeys(names, 0)
    for entry in stats.entries.values():
        if entry.name in per_name:
            per_name[entry.name] += entry.num_requests
    return min(per_name.values()) >= wanted


def _quit_when_recorded(environment: Environment, wanted: int, names: list[str]) -> None:
    """Poll the run's statistics (on the master, what the workers reported) until the work is done."""
    runner = environment.runner
    while runner is not None and runner.state not in (STATE_STOPPING, STATE_STOPPED, STATE_CLEANUP):
        if _recorded(environment.stats, wanted, names):
            log.info("stop condition met: %d requests recorded%s", wanted, f" of each of {names}" if names else "")
            runner.quit()
            return
        gevent.sleep(0.2)


@events.test_start.add_listener  # type: ignore[untyped-decorator]  # locust leaves EventHook.add_listener unannotated
def _stop_after_requests(environment: Environment, **_kw: Any) -> None:
    """With --stop-after-requests, end the run on the work done rather than on a clock (master or local runner)."""
    opts = environment.parsed_options
    if isinstance(environment.runner, WorkerRunner) or opts is None or opts.stop_after_requests <= 0:
        return
    names = [name.strip() for name in opts.stop_names.split(",") if name.strip()]
    # Its own greenlet: runner.quit() stops the users, so it must not run inside one of them.
    gevent.spawn(_quit_when_recorded, environment, opts.stop_after_requests, names)


class PgUser(User):
    """A user with its own psycopg connection (gevent-aware), reporting each call as a request."""

    abstract = True
    wait_time = between(0.01, 0.05)

    def on_start(self) -> None:
        self.dsn = _dsn(self.environment)
        self.rng = random.Random(uuid.uuid4().int)
        self.conn = psycopg.connect(self.dsn.libpq(), autocommit=True, application_name=APPLICATION_NAME)
        register_vector(self.conn)

    def on_stop(self) -> None:
        self.conn.close()

    @contextmanager
    def timed(self, name: str, request_type: str = "pg") -> Iterator[dict[str, int]]:
        """Time the block and fire Locust's request event; ``out["length"]`` = rows or bytes."""
        out = {"length": 0}
        started = time.perf_counter()
        exc: BaseException | None = None
        try:
            yield out
        except Exception as e:  # reported as a failure, the user keeps going
            exc = e
        self.environment.events.request.fire(
            request_type=request_type, name=name, response_time=(time.perf_counter() - started) * 1000,
            response_length=out["length"], exception=exc, context={})

    def _insert(self, table: str, row: dict[str, Any]) -> None:
        cols = list(row)
        values = {k: Jsonb(v) if isinstance(v, dict | list) else v for k, v in row.items()}
        self.conn.execute(f"INSERT INTO {SCHEMA}.{table} ({', '.join(cols)}) "
                          f"VALUES ({', '.join(f'%({c})s' for c in cols)})", values)

    def _copy(self, model: type[models.Base], rows: list[dict[str, Any]]) -> None:
        columns = copy_columns(model)
        with self.conn.cursor() as cur, cur.copy(
                f"COPY {SCHEMA}.{model.__tablename__} ({', '.join(columns)}) FROM STDIN") as copy:
            for r in rows:
                copy.write_row([Jsonb(r[c]) if isinstance(r[c], dict | list) else r[c] for c in columns])

    def audit_one(self) -> None:
        with self.timed("audit.insert") as out:
            self._insert("audit_logs", datagen.audit_rows(1, seed=self.rng.getrandbits(32))[0])
            out["length"] = 1

    def cost_one(self) -> None:
        with self.timed("cost.insert") as out:
            self._insert("cost_tracking", datagen.cost_rows(1, seed=self.rng.getrandbits(32))[0])
            out["length"] = 1

    def knn(self, name: str = "pgvector.knn") -> None:
        if not hasattr(self, "queries"):
            table, rows = _vector_table(self.environment)
            self.table = table
            # Queries from the bench data's distribution (same seed, so the same cluster centres).
            self.queries = vectorbench.make_dataset(rows, queries=64).queries
            self.conn.execute("SET hnsw.ef_search = 40")
        with self.timed(name) as out:
            out["length"] = len(vectorbench.knn(self.conn, self.table,
                                                self.queries[self.rng.randrange(len(self.queries))]))


class AuditWriter(PgUser):
    @task(5)
    def single(self) -> None:
        self.audit_one()

    @task(1)
    def batch(self) -> None:
        rows = datagen.audit_rows(COPY_BATCH, seed=self.rng.getrandbits(32))
        with self.timed(f"audit.copy[{COPY_BATCH}]") as out:
            self._copy(models.AuditLog, rows)
            out["length"] = len(rows)


class CostWriter(PgUser):
    @task(5)
    def single(self) -> None:
        self.cost_one()

    @task(1)
    def batch(self) -> None:
        rows = datagen.cost_rows(COPY_BATCH, seed=self.rng.getrandbits(32))
        with self.timed(f"cost.copy[{COPY_BATCH}]") as out:
            self._copy(models.CostRecord, rows)
            out["length"] = len(rows)


class VectorRecall(PgUser):
    @task
    def recall(self) -> None:
        self.knn()


class JediSOSTurn(PgUser):
    """One turn as JediSOS runs it: recall, the graph (checkpointed), audit, cost."""

    def on_start(self) -> None:
        super().on_start()
        self.thread_id = f"jedisos-load-{uuid.uuid4().hex}"
        self.turns = 0
        self.graph: Any = None
        try:
            from langgraph.checkpoint.postgres import PostgresSaver

            from jedisos_db.harness import agentgraph
        except ImportError:
            return
        self.lg_conn = _langgraph_connection(self.dsn)
        self.graph = agentgraph.build(PostgresSaver(self.lg_conn), seed=self.rng.getrandbits(32))
        self.agentgraph = agentgraph
        if HINDSIGHT_URL and not HINDSIGHT_SKIP_REASON:
            self.hindsight = HttpSession(HINDSIGHT_URL, self.environment.events.request, self)
            self.bank = f"jedisos-load-{uuid.uuid4().hex[:12]}"
            self.hindsight.post(f"/v1/default/banks/{self.bank}/memories",
                                json={"items": [{"content": "The user likes jazz and lives in Seoul."}]},
                                name="hindsight.retain")

    def on_stop(self) -> None:
        if self.graph is not None:
            self.lg_conn.close()
        super().on_stop()

    @task
    def turn(self) -> None:
        with self.timed("turn (total)") as out:
            if hasattr(self, "hindsight"):
                self.hindsight.post(f"/v1/default/banks/{self.bank}/memories/recall",
                                    json={"query": "what music does the user like?"}, name="turn.recall (hindsight)")
            else:
                self.knn("turn.recall (bench kNN)")
            if self.graph is not None:
                # Threads of 10 turns, then a new thread: a thread's checkpoints grow with its length.
                if self.turns % 10 == 0:
                    self.thread_id = f"jedisos-load-{uuid.uuid4().hex}"
                with self.timed("turn.checkpoint (langgraph)"):
                    self.graph.invoke(self.agentgraph.user_turn(self.rng, "bank-load"),
                                      {"configurable": {"thread_id": self.thread_id}})
            self.audit_one()
            for _ in range(2):
                self.cost_one()
            self.turns += 1
            out["length"] = 1


class HindsightRecall(HttpUser):
    """Recall through the real Hindsight REST API (design §2-3: JediSOS only reaches it over HTTP)."""

    abstract = HINDSIGHT_SKIP_REASON is not None
    host = HINDSIGHT_URL or None
    wait_time = between(0.05, 0.2)

    def on_start(self) -> None:
        self.bank = f"jedisos-load-{uuid.uuid4().hex[:12]}"
        # Retain into an unknown bank creates it; recall on an unknown bank is 404.
        self.client.post(f"/v1/default/banks/{self.bank}/memories",
                         json={"items": [{"content": "The user prefers morning meetings and likes jazz."}]},
                         name="hindsight.retain")

    @task
    def recall(self) -> None:
        self.client.post(f"/v1/default/banks/{self.bank}/memories/recall",
                         json={"query": "when does the user like meetings?"}, name="hindsight.recall")


__all__: list[str] = ["AuditWriter", "CostWriter", "HindsightRecall", "JediSOSTurn", "VectorRecall"]
