"""Locust users for the JediSOS data paths, through the reference data layer, against the local PostgreSQL.

    nox -s load                                   # embedded server, headless, 30 s, reports/load*
    python -m load --hindsight --steps 10,50,100 --step-time 2m   # the stepped run in load/README.md
    JEDISOS_DB_URL=postgresql://… locust --config load/locust.conf             # the same by hand
    locust --config load/locust.conf --master --expect-workers 2               # distributed:
    locust -f load/locustfile.py --worker                                      # ×2, same file

The database is ``--pg-dsn URL``, else ``$JEDISOS_DB_URL``, else section 8's ``POSTGRES_*`` (the
package's one resolution, :func:`jedisos_db.ops.provision.given_target`); the environment keeps a
password off the command line, where any user of the machine could read it.

Each Locust process holds the data layer the way one JediSOS process does (:class:`Library`): one
jedisos engine (the design's pool, ``--pool-size``/``--max-overflow`` to change it), the audit and cost
repositories with an event writer each, LangGraph savers from the checkpointer factory, and one
:class:`HindsightClient`. They are asyncio; Locust is gevent: they run on one asyncio loop in a
native thread (:class:`jedisos_db.harness.greenloop.LoopThread`), and a user's greenlet waits for
each call, bounded by ``--step-timeout``, while the other greenlets run.

Users (nothing here assumes a single process, so master/worker mode runs them unchanged —
preparation happens once, on the master or the local runner, under an advisory lock):

- ``AuditWriter``   ``writer.record(event)`` per event, ``enqueue`` and ``commit`` durability, and
  50-event ``record_many`` batches (COPY) through ``AuditLogRepository``;
- ``CostWriter``    the same for ``CostRepository``;
- ``VectorRecall``  kNN on the bench table shaped like Hindsight's ``memory_units``
  (``jedisos_bench``; never the ``hindsight`` schema), over psycopg;
- ``JediSOSTurn``   one conversation turn as JediSOS runs it: recall (``HindsightClient``; without a
  Hindsight server the bench kNN stands in), a LangGraph step (the real graph of
  :mod:`jedisos_db.harness.agentgraph`, checkpointed by ``AsyncPostgresSaver``), retain (Hindsight
  only), then an audit event and two cost events through the writers. Request type ``turn``: the whole
  turn as ``turn (total)`` (turns/s and its percentiles) and each step under its own name;
- ``HindsightRecall`` recall through ``HindsightClient``; only when ``HINDSIGHT_URL`` answers, otherwise
  left out with the reason logged (as are the turn's Hindsight steps).

At the end, ``--max-fail-ratio`` and ``--max-p95-ms`` decide the exit code; each process logs how busy
its pools were (``--library-report FILE`` also writes it as JSON).

``--stop-after-requests N`` (with ``--stop-names A,B`` to count names one by one) ends the run as soon
as that much work is recorded, however long it takes; ``--run-time`` is then only the ceiling.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import gevent
import gevent.lock
import psycopg
from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from locust import User, between, events, runners, task
from locust.env import Environment
from locust.runners import STATE_CLEANUP, STATE_STOPPED, STATE_STOPPING, WorkerRunner
from locust.stats import RequestStats
from pgvector.psycopg import register_vector
from sqlalchemy.pool import QueuePool

from jedisos_db.harness import agentgraph, datagen, vectorbench
from jedisos_db.harness.greenloop import LoopThread
from jedisos_db.ops import provision
from jedisos_db.runtime import checkpointer
from jedisos_db.runtime.config import Settings
from jedisos_db.runtime.db.connect import connect
from jedisos_db.runtime.db.engine import create_engine
from jedisos_db.runtime.errors import BankNotFoundError
from jedisos_db.runtime.hindsight.client import HindsightClient, bank_id_for
from jedisos_db.runtime.hindsight.models import Memory
from jedisos_db.runtime.repositories.audit import AuditEvent, AuditLogRepository
from jedisos_db.runtime.repositories.base import EventRepository
from jedisos_db.runtime.repositories.cost import CostEvent, CostRepository
from jedisos_db.runtime.repositories.writer import Durability, EventWriter
from jedisos_db.runtime.urls import DatabaseURL

log = logging.getLogger("jedisos.load")
# httpx logs every request at INFO, and Locust logs INFO: one line per Hindsight call would cost the
# load generator more CPU than the call itself.
logging.getLogger("httpx").setLevel(logging.WARNING)

HINDSIGHT_URL = os.environ.get("HINDSIGHT_URL", "").rstrip("/")
APPLICATION_NAME = "jedisos-load"
BATCH = 50
SAMPLE_SECONDS = 0.1
T = TypeVar("T")


PROBE_TIMEOUT = 15.0


def _probe_hindsight(url: str) -> str | None:
    """None when a Hindsight server answers at ``url``, else why it is not used."""
    if not url:
        return "HINDSIGHT_URL is not set (no Hindsight server to recall through)"
    import urllib.request

    try:
        # Its readiness route, not /openapi.json: building the schema takes seconds of CPU on a busy machine.
        with urllib.request.urlopen(f"{url}/health/ready", timeout=PROBE_TIMEOUT) as resp:
            if resp.status != 200:
                return f"{url}/health/ready answered {resp.status}"
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
    defaults = Settings.model_construct()
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
    parser.add_argument("--pool-size", type=int, default=defaults.pool_size,
                        help=f"jedisos engine pool per Locust process (default {defaults.pool_size}, the design's)")
    parser.add_argument("--max-overflow", type=int, default=defaults.max_overflow,
                        help=f"jedisos engine overflow per Locust process (default {defaults.max_overflow})")
    parser.add_argument("--savers", type=int, default=1,
                        help="LangGraph savers per Locust process, each on its own pool (default 1, as one "
                             "JediSOS process); a saver runs one query at a time")
    parser.add_argument("--step-timeout", type=float, default=60.0,
                        help="seconds a user waits for one data-layer call before it fails (default 60)")
    parser.add_argument("--library-report", default="",
                        help="write this process's pool occupancy as JSON to this file at exit")


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
        log.warning("HindsightRecall user left out: %s; JediSOSTurn recalls from the bench kNN and leaves out "
                    "its retain", HINDSIGHT_SKIP_REASON)
    if isinstance(environment.runner, WorkerRunner) or environment.parsed_options is None:
        return
    dsn = _dsn(environment)
    table, rows = _vector_table(environment)
    if not vectorbench.table_ready(dsn, table, rows):
        log.info("building the kNN bench table %s.%s (%d rows)", vectorbench.BENCH_SCHEMA, table, rows)
        vectorbench.prepare(dsn, vectorbench.make_dataset(rows, queries=1))
    with connect(dsn) as admin:
        admin.execute("SELECT pg_advisory_lock(hashtext('jedisos-load-langgraph'))")
        checkpointer.ensure_schema(dsn)
        with psycopg.connect(dsn.libpq(), **checkpointer.connection_kwargs(application_name=APPLICATION_NAME)) as conn:
            PostgresSaver(conn).setup()
        admin.execute("SELECT pg_advisory_unlock(hashtext('jedisos-load-langgraph'))")


@dataclass(frozen=True)
class EventPath:
    """One event table as the users write it: its repository, event type, data generator and writer."""

    repository: EventRepository[Any, Any]
    event: type[AuditEvent] | type[CostEvent]
    rows: Callable[..., list[dict[str, Any]]]
    writer: EventWriter[Any]


class Library:
    """The data layer as one JediSOS process holds it, opened once per Locust process on its asyncio thread."""

    _lock = gevent.lock.Semaphore()
    _instance: Library | None = None

    @classmethod
    def of(cls, environment: Environment) -> Library:
        """This process's library, opened by the first user that asks (the others wait for it)."""
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls(environment)
            return cls._instance

    @classmethod
    def close_current(cls) -> int:
        """Close this process's library, if one was opened; the number of events its writers lost."""
        with cls._lock:
            instance, cls._instance = cls._instance, None
        if instance is None:
            return 0
        instance.close()
        return sum(path.writer.lost for path in instance.paths.values())

    def __init__(self, environment: Environment) -> None:
        opts = environment.parsed_options
        self.environment = environment
        self.url = _dsn(environment)
        self.timeout = float(opts.step_timeout) if opts else 60.0
        self.report_path = opts.library_report if opts else ""
        pool_size = int(opts.pool_size) if opts else Settings.model_construct().pool_size
        max_overflow = int(opts.max_overflow) if opts else Settings.model_construct().max_overflow
        self.capacity = pool_size + max_overflow
        self.loop = LoopThread()
        self.engine = create_engine(url=self.url, application_name=APPLICATION_NAME, pool_size=pool_size,
                                    max_overflow=max_overflow)
        self.audit = AuditLogRepository(self.engine)
        self.cost = CostRepository(self.engine)
        self.hindsight: HindsightClient | None = None
        self.savers: list[AsyncPostgresSaver] = []
        self.samples: dict[str, float] = {}
        self.run(self._open(int(opts.savers) if opts else 1))

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a data-layer call on the asyncio thread; this greenlet waits, the others run."""
        return self.loop.run(coro, self.timeout)

    async def _open(self, savers: int) -> None:
        self._stack = AsyncExitStack()
        # Leaving the stack drains each writer: what was enqueued is written before the engine goes.
        self.paths = {
            "audit": EventPath(self.audit, AuditEvent, datagen.audit_rows,
                               await self._stack.enter_async_context(EventWriter(self.audit))),
            "cost": EventPath(self.cost, CostEvent, datagen.cost_rows,
                              await self._stack.enter_async_context(EventWriter(self.cost))),
        }
        self.pools = []
        for i in range(max(1, savers)):
            # The checkpointer factory's pool (schema `langgraph` only); _prepare ran setup() once per run.
            pool = checkpointer.async_pool(self.url, application_name=f"{APPLICATION_NAME}-langgraph-{i}")
            await pool.open(wait=True)
            self._stack.push_async_callback(pool.close)
            self.pools.append(pool)
            self.savers.append(AsyncPostgresSaver(pool))
        if not HINDSIGHT_SKIP_REASON:
            self.hindsight = await self._stack.enter_async_context(HindsightClient(HINDSIGHT_URL))
        self._sampler = asyncio.get_running_loop().create_task(self._sample())

    async def _sample(self) -> None:
        """Every SAMPLE_SECONDS: is the engine's pool at capacity, is each saver busy (its lock held)."""
        counts = {"samples": 0, "engine_full": 0, "engine_checked_out": 0, "saver_busy": 0}
        self.samples = {}
        while True:
            await asyncio.sleep(SAMPLE_SECONDS)
            checked_out = cast(QueuePool, self.engine.pool).checkedout()
            counts["samples"] += 1
            counts["engine_checked_out"] += checked_out
            counts["engine_full"] += checked_out >= self.capacity
            counts["saver_busy"] += sum(saver.lock.locked() for saver in self.savers)
            n = counts["samples"]
            stats = [pool.get_stats() for pool in self.pools]
            self.samples = {
                "samples": n,
                "engine_capacity": self.capacity,
                "engine_mean_checked_out": counts["engine_checked_out"] / n,
                "engine_full_share": counts["engine_full"] / n,
                "savers": len(self.savers),
                "saver_busy_share": counts["saver_busy"] / (n * len(self.savers)),
                "langgraph_pool_wait_ms": sum(s.get("requests_wait_ms", 0) for s in stats),
            }

    async def _close(self) -> None:
        self._sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._sampler
        try:
            await self._stack.aclose()  # the writers drain first: what was enqueued is written
        finally:
            for noun, path in self.paths.items():
                self.samples[f"{noun}_written"] = path.writer.written
                self.samples[f"{noun}_lost"] = path.writer.lost
            await self.engine.dispose()

    def close(self) -> None:
        try:
            self.run(self._close())
        finally:
            self.loop.close(self.timeout)
        log.info("library pools (this process): %s", json.dumps(self.samples, sort_keys=True))
        if self.report_path:
            Path(self.report_path).write_text(json.dumps(self.samples, indent=2, sort_keys=True), encoding="utf-8")


@events.quitting.add_listener  # type: ignore[untyped-decorator]  # locust leaves EventHook.add_listener unannotated
def _close_library(environment: Environment, **_kw: Any) -> None:
    """Drain the writers and close the pools of this process (every runner that ran users); events the writers
    could not write fail the run, as a failed request would."""
    try:
        lost = Library.close_current()
    except Exception:
        log.exception("closing the data layer failed (the writers' queues may not have drained)")
        environment.process_exit_code = 1
        return
    if lost:
        log.error("the event writers lost %d events (batches the database refused)", lost)
        environment.process_exit_code = 1


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


@contextmanager
def timed(environment: Environment, name: str, request_type: str = "pg", *,
          reraise: bool = False) -> Iterator[dict[str, int]]:
    """Time the block and fire Locust's request event (a failure when it raised); ``out["length"]`` = rows.

    Without ``reraise`` the user keeps going after a failure; with it the caller sees the exception too."""
    out = {"length": 0}
    started = time.perf_counter()
    exc: Exception | None = None
    try:
        yield out
    except Exception as e:
        exc = e
    environment.events.request.fire(  # type: ignore[no-untyped-call]  # locust leaves EventHook.fire unannotated
        request_type=request_type, name=name, response_time=(time.perf_counter() - started) * 1000,
        response_length=out["length"], exception=exc, context={})
    if reraise and exc is not None:
        raise exc


class JediSOSUser(User):
    """A user whose data-layer calls go through this process's :class:`Library`, each reported as a request."""

    abstract = True
    wait_time = between(0.01, 0.05)

    def on_start(self) -> None:
        self.rng = random.Random(uuid.uuid4().int)
        self.lib = Library.of(self.environment)

    def call(self, name: str, coro: Coroutine[Any, Any, T], request_type: str = "pg", length: int = 1) -> T:
        """Run one data-layer call as the request ``name``; a failure is reported, then raised."""
        with timed(self.environment, name, request_type, reraise=True) as out:
            result = self.lib.run(coro)
            out["length"] = length
        return result

    def event(self, noun: str) -> Any:
        """One valid event of ``noun`` ("audit" or "cost"), from the data generator."""
        path = self.lib.paths[noun]
        return path.event.coerce(path.rows(1, seed=self.rng.getrandbits(32))[0])


class BenchKnn:
    """kNN on the bench table over a psycopg connection of its own (gevent-aware, no asyncio)."""

    def __init__(self, environment: Environment, rng: random.Random) -> None:
        self.table, rows = _vector_table(environment)
        self.rng = rng
        # Queries from the bench data's distribution (same seed, so the same cluster centres).
        self.queries = vectorbench.make_dataset(rows, queries=64).queries
        self.conn = psycopg.connect(_dsn(environment).libpq(), autocommit=True, application_name=APPLICATION_NAME)
        register_vector(self.conn)
        self.conn.execute("SET hnsw.ef_search = 40")

    def __call__(self) -> int:
        return len(vectorbench.knn(self.conn, self.table, self.queries[self.rng.randrange(len(self.queries))]))

    def close(self) -> None:
        self.conn.close()


class _EventWriterUser(JediSOSUser):
    """Per-event writes in both durability modes, and batches through the repository (COPY)."""

    abstract = True
    noun = ""

    def _record(self, durability: Durability) -> None:
        with contextlib.suppress(Exception):  # reported by call(); the user keeps going
            self.call(f"{self.noun}.record ({durability})",
                      self.lib.paths[self.noun].writer.record(self.event(self.noun), durability=durability))

    @task(4)
    def enqueue(self) -> None:
        self._record("enqueue")

    @task(2)
    def commit(self) -> None:
        self._record("commit")

    @task(1)
    def batch(self) -> None:
        path = self.lib.paths[self.noun]
        rows = path.rows(BATCH, seed=self.rng.getrandbits(32))
        with contextlib.suppress(Exception):
            self.call(f"{self.noun}.record_many[{BATCH}]", path.repository.record_many(rows), length=len(rows))


class AuditWriter(_EventWriterUser):
    noun = "audit"


class CostWriter(_EventWriterUser):
    noun = "cost"


class VectorRecall(User):
    """kNN on the bench table (no data layer: it measures pgvector itself)."""

    wait_time = between(0.01, 0.05)

    def on_start(self) -> None:
        self.knn = BenchKnn(self.environment, random.Random(uuid.uuid4().int))

    def on_stop(self) -> None:
        self.knn.close()

    @task
    def recall(self) -> None:
        with timed(self.environment, "pgvector.knn") as out:
            out["length"] = self.knn()


TURN = "turn"
RECALL_QUERY = "what music does the user like?"
COSTS_PER_TURN = 2


class JediSOSTurn(JediSOSUser):
    """One turn as JediSOS runs it: recall, the graph (checkpointed), retain, audit, cost."""

    THREAD_TURNS = 10
    """Threads of 10 turns, then a new thread: a thread's checkpoints grow with its length."""

    def on_start(self) -> None:
        super().on_start()
        self.turns = 0
        self.thread_id = ""
        saver = self.lib.savers[self.rng.randrange(len(self.lib.savers))]
        self.graph = agentgraph.build(saver, seed=self.rng.getrandbits(32))
        # A new user's bank does not exist until the first retain creates it (recall: no memories yet).
        self.bank = bank_id_for(f"load-{uuid.uuid4().hex[:12]}")
        self.knn = BenchKnn(self.environment, self.rng) if self.lib.hindsight is None else None

    def on_stop(self) -> None:
        if self.knn is not None:
            self.knn.close()

    @task
    def turn(self) -> None:
        with timed(self.environment, "turn (total)", TURN) as out:
            self._turn()
            out["length"] = 1

    def _turn(self) -> None:
        hindsight = self.lib.hindsight
        if hindsight is not None:
            self.call("turn.recall (hindsight)", _recall(hindsight, self.bank), TURN)
        else:
            assert self.knn is not None
            with timed(self.environment, "turn.recall (bench kNN)", TURN, reraise=True) as out:
                out["length"] = self.knn()
        if self.turns % self.THREAD_TURNS == 0:
            self.thread_id = f"jedisos-load-{uuid.uuid4().hex}"
        self.turns += 1
        self.call("turn.checkpoint (langgraph)", self.graph.ainvoke(
            agentgraph.user_turn(self.rng, self.bank), {"configurable": {"thread_id": self.thread_id}}), TURN)
        if hindsight is not None:
            self.call("turn.retain (hindsight)", hindsight.retain(
                self.bank, " ".join(self.rng.choice(agentgraph.WORDS) for _ in range(30))), TURN)
        self.call("turn.audit", self.lib.paths["audit"].writer.record(self.event("audit"), durability="enqueue"),
                  TURN)
        costs = [self.event("cost") for _ in range(COSTS_PER_TURN)]
        self.call("turn.cost", _record_all(self.lib.paths["cost"].writer, costs), TURN, length=len(costs))


async def _recall(hindsight: HindsightClient, bank: str) -> list[Memory]:
    """Recall as JediSOS does on a turn: a bank not created yet (a new user) has no memories."""
    try:
        return await hindsight.recall(bank, RECALL_QUERY)
    except BankNotFoundError:
        return []


async def _record_all(writer: EventWriter[Any], events_: list[Any]) -> None:
    for event in events_:
        await writer.record(event, durability="enqueue")


class HindsightRecall(JediSOSUser):
    """Recall through ``HindsightClient`` (design §2-3: JediSOS only reaches Hindsight over its REST API)."""

    abstract = HINDSIGHT_SKIP_REASON is not None
    wait_time = between(0.05, 0.2)

    def on_start(self) -> None:
        super().on_start()
        assert self.lib.hindsight is not None
        self.hindsight = self.lib.hindsight
        self.bank = bank_id_for(f"load-{uuid.uuid4().hex[:12]}")
        self.retained = False

    @task
    def recall(self) -> None:
        with contextlib.suppress(Exception):  # reported by call(); the user keeps going
            if not self.retained:
                # Retain into an unknown bank creates it; recall on an unknown bank is 404. Retried by the
                # next task while Hindsight refuses it (503 at capacity).
                self.call("hindsight.retain", self.hindsight.retain(
                    self.bank, "The user prefers morning meetings and likes jazz."), request_type="hindsight")
                self.retained = True
            self.call("hindsight.recall", self.hindsight.recall(self.bank, "when does the user like meetings?"),
                      request_type="hindsight")


__all__: list[str] = ["AuditWriter", "CostWriter", "HindsightRecall", "JediSOSTurn", "VectorRecall"]
