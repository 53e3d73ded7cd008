"""Pool independence under load (design §1 "커넥션 풀 분리": "한쪽의 부하가 다른 쪽을 블로킹하지 않습니다";
claim ``S1-pool-independence`` in docs/design-claims.md).

Each owner reaches PostgreSQL through its own pool: LangGraph's psycopg pool, JediSOS's
SQLAlchemy engine, Hindsight's asyncpg pools behind its REST API. :func:`measure` saturates
each pool in turn, from a separate process (so the load generator does not share this event
loop), and meanwhile times the other owners' operations against their idle figures:

- LangGraph: ``aget_tuple`` of a checkpointed thread, through the saver;
- JediSOS: a ``SELECT`` on ``jedisos.installed_tools`` through the engine;
- Hindsight (when a server is given): ``POST …/memories/recall`` through its API.

The figures are printed, never asserted: they depend on the machine. What is checked are the
structural facts: the saturated pool really reached its maximum and made callers wait, the
other pools' operations all completed, no pool timed out.

The probe changes no schema: the database must already be at the design's start-up state
(``jedisos-db up``); :func:`require_ready` says what is missing otherwise. The load processes get
their target through the environment (:data:`ENV_TARGET`), never on their command line, where
any user of the machine could read a password.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx
from langchain_core.runnables import RunnableConfig
from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from jedisos_db.harness.latency import Quantiles
from jedisos_db.ops import provision
from jedisos_db.runtime import checkpointer, urls
from jedisos_db.runtime.db import migrations, models
from jedisos_db.runtime.db.connect import connect
from jedisos_db.runtime.db.engine import create_engine
from jedisos_db.runtime.errors import ConfigError, LocalServerError, MigrationError, NotFoundError
from jedisos_db.runtime.urls import DatabaseURL

KINDS = ("langgraph", "jedisos", "hindsight")
LOAD_APPLICATION = {"langgraph": "jedisos-langgraph-load", "jedisos": "jedisos-app-load",
                    "hindsight": "hindsight-api"}
PROBE_APPLICATION = {"langgraph": "jedisos-langgraph-probe", "jedisos": "jedisos-app-probe"}
BANK = "jedisos-pool-probe"
ENV_TARGET = "JEDISOS_POOLS_TARGET"
"""Where a load process finds its target: a database URL (with its password) or Hindsight's base URL."""


@dataclass(frozen=True)
class LoadSettings:
    """Pool sizes and load shape. JediSOS's engine uses the design's 5 + 10 overflow; LangGraph's
    pool the package default (1..2) shared by ``langgraph_savers`` savers, as an app with
    several graphs would."""

    jedisos_pool_size: int = 5
    jedisos_max_overflow: int = 10
    langgraph: checkpointer.PoolSizing = field(default_factory=checkpointer.PoolSizing)
    langgraph_savers: int = 8
    load_tasks: int = 32
    hold_seconds: float = 0.005
    max_seconds: float = 120.0


@dataclass(frozen=True)
class Saturation:
    """What the load process saw of the pool it saturated. ``waited``: requests that queued for a
    connection (psycopg's ``requests_queued``; for SQLAlchemy, 1 when every connection was checked
    out while more tasks than connections ran)."""

    pool: str
    max_size: int
    peak_in_use: int
    waited: int
    timeouts: int
    operations: int
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Latency(Quantiles):
    probe: str
    condition: str
    samples: list[float]
    errors: list[str] = field(default_factory=list)


@dataclass
class IndependenceReport:
    latencies: list[Latency] = field(default_factory=list)
    saturations: dict[str, Saturation] = field(default_factory=dict)
    server_peaks: dict[str, int] = field(default_factory=dict)
    settings: dict[str, str] = field(default_factory=dict)
    load: LoadSettings = field(default_factory=LoadSettings)

    def get(self, probe: str, condition: str) -> Latency:
        for lat in self.latencies:
            if lat.probe == probe and lat.condition == condition:
                return lat
        raise NotFoundError(f"no latency measured for probe {probe!r} under {condition!r}")


def jedisos_engine(url: DatabaseURL, settings: LoadSettings, application_name: str) -> AsyncEngine:
    return create_engine(url=url, pool_size=settings.jedisos_pool_size, max_overflow=settings.jedisos_max_overflow,
                         application_name=application_name, pool_timeout=30)


def require_ready(url: DatabaseURL) -> None:
    """Raise :class:`MigrationError` naming what is missing unless ``url`` is at the design's start-up
    state: jedisos at head (the probe writes and reads its tables) and LangGraph set up in its schema."""
    missing = []
    revision, head = migrations.current(url), migrations.head()
    if revision != head:
        missing.append(f"the jedisos schema is at {revision or 'base (no schema_migrations)'}, not head {head}")
    if checkpointer.migration_version(url) is None:
        missing.append(f"LangGraph is not set up (no {checkpointer.SCHEMA}.checkpoint_migrations)")
    if missing:
        raise MigrationError(f"the pool probe changes no schema, and {url} is not ready: {'; '.join(missing)}; "
                             f"run `jedisos-db up --dsn URL` on it first")


# ------------------------------------------------------------------------------------------
# load side (runs in its own process)


async def _run_until(stop: asyncio.Event, max_seconds: float, tasks: int, op: Callable[[], Awaitable[None]],
                     monitor: Callable[[], None]) -> tuple[int, int, list[str]]:
    deadline = time.monotonic() + max_seconds
    done = 0
    timeouts = 0
    errors: list[str] = []

    async def worker() -> None:
        nonlocal done, timeouts
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                await op()
                done += 1
            except TimeoutError:
                timeouts += 1
            except Exception as exc:
                if "timeout" in type(exc).__name__.lower():
                    timeouts += 1
                elif len(errors) < 10:
                    errors.append(f"{type(exc).__name__}: {exc}")

    async def watch() -> None:
        while not stop.is_set() and time.monotonic() < deadline:
            monitor()
            await asyncio.sleep(0.01)

    await asyncio.gather(watch(), *(worker() for _ in range(tasks)))
    return done, timeouts, errors


async def _saturate_langgraph(url: DatabaseURL, stop: asyncio.Event, s: LoadSettings) -> Saturation:
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

    pool = checkpointer.async_pool(url, sizing=s.langgraph, application_name=LOAD_APPLICATION["langgraph"])
    await pool.open(wait=True)
    peak = 0
    try:
        savers = [AsyncPostgresSaver(pool) for _ in range(s.langgraph_savers)]
        counter = 0

        async def op() -> None:
            nonlocal counter
            counter += 1
            saver = savers[counter % len(savers)]
            config: RunnableConfig = {"configurable": {"thread_id": checkpointer.thread_id_for(f"load-{counter % 64}"),
                                       "checkpoint_ns": ""}}
            await _put_checkpoint(saver, config, counter)

        def monitor() -> None:
            nonlocal peak
            stats = pool.get_stats()
            peak = max(peak, stats["pool_size"] - stats.get("pool_available", 0))

        done, timeouts, errors = await _run_until(stop, s.max_seconds, s.load_tasks, op, monitor)
        stats = pool.get_stats()
        return Saturation("langgraph", s.langgraph.max_size, peak, stats.get("requests_queued", 0),
                          timeouts + stats.get("requests_timeouts", 0), done, errors)
    finally:
        await pool.close()


async def _put_checkpoint(saver: Any, config: RunnableConfig, step: int) -> None:
    """One checkpoint write through the saver's API (what a graph step does)."""
    from langgraph.checkpoint.base import empty_checkpoint

    checkpoint = empty_checkpoint()
    await saver.aput(config, checkpoint, {"source": "loop", "step": step}, {})


async def _saturate_jedisos(url: DatabaseURL, stop: asyncio.Event, s: LoadSettings) -> Saturation:
    engine = jedisos_engine(url, s, LOAD_APPLICATION["jedisos"])
    peak = 0

    async def op() -> None:
        async with engine.begin() as conn:
            await conn.execute(insert(models.AuditLog).values(event_type="pool_load", details={"pool": "jedisos"}))
            await conn.execute(text("SELECT pg_sleep(:s)"), {"s": s.hold_seconds})

    def monitor() -> None:
        nonlocal peak
        peak = max(peak, engine.pool.checkedout())  # type: ignore[attr-defined]

    try:
        done, timeouts, errors = await _run_until(stop, s.max_seconds, s.load_tasks, op, monitor)
    finally:
        await engine.dispose()
    maximum = s.jedisos_pool_size + s.jedisos_max_overflow
    return Saturation("jedisos", maximum, peak, int(peak >= maximum), timeouts, done, errors)


async def _saturate_hindsight(base_url: str, stop: asyncio.Event, s: LoadSettings) -> Saturation:
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        inflight = 0
        peak = 0

        async def op() -> None:
            nonlocal inflight
            inflight += 1
            try:
                r = await client.post(f"/v1/default/banks/{BANK}/memories/recall", json={"query": "pool load"})
                r.raise_for_status()
            finally:
                inflight -= 1

        def monitor() -> None:
            nonlocal peak
            peak = max(peak, inflight)

        done, timeouts, errors = await _run_until(stop, s.max_seconds, s.load_tasks, op, monitor)
    return Saturation("hindsight", 0, peak, 0, timeouts, done, errors)


def saturate(kind: str, target: DatabaseURL | str, settings: LoadSettings | None = None) -> Saturation:
    """Saturate one pool until stdin closes; ``target`` is a database URL (Hindsight's base URL for hindsight).

    The parent process signals "stop" by closing our stdin, so no polling of files or sockets.
    """
    s = settings or LoadSettings()
    if kind not in KINDS:
        raise ConfigError("kind", f"must be one of {', '.join(KINDS)}, got {kind!r}")

    async def load(stop: asyncio.Event) -> Saturation:
        if kind == "hindsight":
            return await _saturate_hindsight(str(target), stop, s)
        if not isinstance(target, DatabaseURL):
            raise ConfigError(ENV_TARGET, f"the {kind} load needs a database URL")
        return await (_saturate_langgraph if kind == "langgraph" else _saturate_jedisos)(target, stop, s)

    async def run() -> Saturation:
        stop = asyncio.Event()

        async def wait_for_eof() -> None:
            await asyncio.to_thread(sys.stdin.read)
            stop.set()

        watcher = asyncio.create_task(wait_for_eof())
        try:
            return await load(stop)
        finally:
            watcher.cancel()

    return asyncio.run(run())


def _settings_json(s: LoadSettings) -> str:
    return json.dumps(asdict(s))


def _settings_from_json(raw: str) -> LoadSettings:
    data = json.loads(raw)
    data["langgraph"] = checkpointer.PoolSizing(**data["langgraph"])
    return LoadSettings(**data)


def load_command(kind: str, target: DatabaseURL | str, settings: LoadSettings) -> tuple[list[str], dict[str, str]]:
    """The argv and environment of the load process for ``kind``: the target travels in the environment."""
    value = target.libpq() if isinstance(target, DatabaseURL) else target
    argv = [sys.executable, "-m", "jedisos_db.harness.pools", kind, _settings_json(settings)]
    return argv, {**os.environ, ENV_TARGET: value}


def main(argv: list[str] | None = None) -> None:
    """``python -m jedisos_db.harness.pools KIND SETTINGS_JSON`` with the target in ``$JEDISOS_POOLS_TARGET``:
    saturate until stdin closes, print JSON."""
    kind, raw = (argv or sys.argv[1:])[:2]
    value = os.environ.get(ENV_TARGET, "")
    target = value if kind == "hindsight" else urls.parse(value, field=ENV_TARGET)
    result = saturate(kind, target, _settings_from_json(raw))
    print(json.dumps(asdict(result)), flush=True)
    os._exit(0)  # the stdin reader thread may still block; nothing else is left to clean up


# ------------------------------------------------------------------------------------------
# probe side


@asynccontextmanager
async def _probes(url: DatabaseURL, hindsight_url: str | None,
                  s: LoadSettings) -> AsyncIterator[dict[str, Callable[[], Awaitable[None]]]]:
    async with AsyncExitStack() as stack:
        saver = await stack.enter_async_context(checkpointer.open_checkpointer(
            url, application_name=PROBE_APPLICATION["langgraph"], setup=False))
        config: RunnableConfig = {"configurable": {"thread_id": checkpointer.thread_id_for("pool-probe"),
                                                   "checkpoint_ns": ""}}
        await _put_checkpoint(saver, config, 0)
        engine = jedisos_engine(url, s, PROBE_APPLICATION["jedisos"])
        stack.push_async_callback(engine.dispose)

        async def langgraph_probe() -> None:
            if await saver.aget_tuple(config) is None:
                raise NotFoundError("the probe thread's checkpoint is missing")

        async def jedisos_probe() -> None:
            async with engine.connect() as conn:
                await conn.execute(select(func.count()).select_from(models.InstalledTool))

        probes: dict[str, Callable[[], Awaitable[None]]] = {"langgraph": langgraph_probe, "jedisos": jedisos_probe}
        if hindsight_url:
            client = await stack.enter_async_context(httpx.AsyncClient(base_url=hindsight_url, timeout=60))
            r = await client.post(f"/v1/default/banks/{BANK}/memories",
                                  json={"items": [{"content": "Alice tunes PostgreSQL pools for JediSOS."}]})
            r.raise_for_status()

            async def hindsight_probe() -> None:
                resp = await client.post(f"/v1/default/banks/{BANK}/memories/recall", json={"query": "pools"})
                resp.raise_for_status()

            probes["hindsight"] = hindsight_probe
        yield probes


async def _time(probe: Callable[[], Awaitable[None]], samples: int) -> tuple[list[float], list[str]]:
    out: list[float] = []
    errors: list[str] = []
    for _ in range(samples):
        t = time.perf_counter()
        try:
            await probe()
            out.append(time.perf_counter() - t)
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
    return out, errors


def _server_connections(url: DatabaseURL, application_name: str) -> int:
    """Connections to ``url``'s database under ``application_name``. Only that database's: every Hindsight
    server tags its connections ``hindsight-api``, and another one of the same PostgreSQL server (a test
    session keeps several alive, each holding idle connections) is not the pool being measured."""
    with connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s "
                           "AND datname = current_database()", [application_name]).fetchone()
    return int(row[0]) if row else 0


async def _wait_saturated(url: DatabaseURL, kind: str, expected: int, proc: asyncio.subprocess.Process,
                          limit: float = 60.0, ramp: float = 3.0) -> int:
    """Wait until the server shows the load process's pool at ``expected`` connections (or, with
    ``expected`` 0, for ``ramp`` seconds); return the most connections seen."""
    started = time.monotonic()
    seen = 0
    while proc.returncode is None:
        elapsed = time.monotonic() - started
        seen = max(seen, await asyncio.to_thread(_server_connections, url, LOAD_APPLICATION[kind]))
        if (expected and seen >= expected) or (not expected and elapsed >= ramp) or elapsed >= limit:
            break
        await asyncio.sleep(0.05)
    return seen


async def measure(url: DatabaseURL, *, hindsight_url: str | None = None, hindsight_pool_max: int = 0,
                  samples: int = 50, settings: LoadSettings | None = None) -> IndependenceReport:
    """Idle figures for every probe, then each pool saturated in turn with the others probed.

    ``url`` is a database at the design's start-up state (LangGraph set up, jedisos at head;
    :func:`require_ready` raises otherwise). ``hindsight_pool_max``: the most connections the Hindsight
    server's pools may hold (``HindsightServer.pools_max``), for the report. ``server_peaks`` counts each
    pool's connections to ``url``'s database (Hindsight's when it shares the database, as the design places it).
    """
    if samples < 1:  # no timings: every percentile would print as nan
        raise ConfigError("samples", f"must be at least 1 timed operation per probe; got {samples}")
    await asyncio.to_thread(require_ready, url)
    s = settings or LoadSettings()
    report = IndependenceReport(settings=provision.server_info(url).settings, load=s)
    kinds = [k for k in KINDS if k != "hindsight" or hindsight_url]
    async with _probes(url, hindsight_url, s) as probes:
        for kind, probe in probes.items():
            await probe()  # warm the pool: connecting is not what is measured
            timings, errors = await _time(probe, samples)
            report.latencies.append(Latency(kind, "idle", timings, errors))
        for kind in kinds:
            target: DatabaseURL | str = hindsight_url if kind == "hindsight" and hindsight_url else url
            expected = {"langgraph": s.langgraph.max_size,
                        "jedisos": s.jedisos_pool_size + s.jedisos_max_overflow, "hindsight": 0}[kind]
            argv, env = load_command(kind, target, s)
            proc = await asyncio.create_subprocess_exec(
                *argv, env=env,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            try:
                peak = await _wait_saturated(url, kind, expected, proc)
                for other, probe in probes.items():
                    if other == kind:
                        continue
                    timings, errors = await _time(probe, samples)
                    report.latencies.append(Latency(other, f"{kind} saturated", timings, errors))
                peak = max(peak, await asyncio.to_thread(_server_connections, url, LOAD_APPLICATION[kind]))
                report.server_peaks[kind] = peak
            finally:
                # communicate(b"") writes nothing and closes the child's stdin: its signal to stop.
                out, err = await asyncio.wait_for(proc.communicate(b""), s.max_seconds + 30)
            if proc.returncode != 0:
                raise LocalServerError(f"load process for {kind} failed (exit {proc.returncode}): "
                                   f"{err.decode(errors='replace')[-2000:]}")
            data = json.loads(out.decode().strip().splitlines()[-1])
            if kind == "hindsight":  # the load process only sees HTTP; the pools are the server's
                data["max_size"] = hindsight_pool_max
            report.saturations[kind] = Saturation(**data)
    return report


if __name__ == "__main__":
    main()
