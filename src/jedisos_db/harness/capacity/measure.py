"""Measuring bytes per row on the real server, for the capacity model (design §7).

Everything happens in a scratch database on the target server (dropped afterwards):

- every ``jedisos`` table filled with representative generated rows
  (:mod:`jedisos_db.harness.datagen`, rows the repositories accept), ``VACUUM ANALYZE``d, its
  ``pg_total_relation_size`` minus the empty table's, divided by the rows;
- LangGraph checkpoints from a real graph run through ``PostgresSaver`` in schema ``langgraph``;
- Hindsight memory units from the ``hindsight`` schema's catalog statistics when a Hindsight
  server has filled it, else from the bench table shaped like ``memory_units``
  (:mod:`jedisos_db.harness.vectorbench`).
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import create_engine, insert, select
from sqlalchemy.engine import Engine

from jedisos_db.harness import datagen
from jedisos_db.harness.capacity.model import CapacityConfig, TableMeasure
from jedisos_db.ops import provision
from jedisos_db.runtime.db import migrations, models
from jedisos_db.runtime.db.connect import connect
from jedisos_db.runtime.errors import NotFoundError
from jedisos_db.runtime.owners import HINDSIGHT_SCHEMA, SCHEMA
from jedisos_db.runtime.urls import DatabaseURL

JEDISOS_TABLES = ("installed_tools", "mcp_servers", "audit_logs", "cost_tracking", "user_preferences", "schedules",
                  "marketplace_packages")
"""The ``jedisos`` tables measured, in fill order (``mcp_servers`` needs ``installed_tools`` ids)."""


Advance = Callable[[str, float], None]
"""Progress callback: (step name, units done)."""


def no_progress(_step: str, _n: float) -> None:
    return None


def _sizes(conn: psycopg.Connection[Any], schema: str, table: str) -> tuple[int, int]:
    row = conn.execute(
        "SELECT pg_total_relation_size(c.oid), pg_relation_size(c.oid) FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s",
        [schema, table]).fetchone()
    if row is None:
        raise NotFoundError(f"table {schema}.{table} not found")
    return int(row[0]), int(row[1])


def _schema_bytes(conn: psycopg.Connection[Any], schema: str) -> int:
    row = conn.execute(
        "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind = 'r'",
        [schema]).fetchone()
    assert row is not None
    return int(row[0])


def _avg_tuple(conn: psycopg.Connection[Any], schema: str, table: str) -> float:
    row = conn.execute(sql.SQL("SELECT avg(pg_column_size(t.*)) FROM {}.{} t").format(
        sql.Identifier(schema), sql.Identifier(table))).fetchone()
    return float(row[0]) if row and row[0] is not None else 0.0


def measure_jedisos(url: DatabaseURL, rows: int, *, seed: int = 0,
                    advance: Advance = no_progress) -> list[TableMeasure]:
    """Bytes per row of the seven ``jedisos`` tables of a migrated database (fills them)."""
    engine: Engine = create_engine(url.psycopg())
    out: list[TableMeasure] = []
    try:
        with connect(url) as conn:
            for table in JEDISOS_TABLES:
                empty, _ = _sizes(conn, SCHEMA, table)
                model_table = models.Base.metadata.tables[f"{SCHEMA}.{table}"]
                if table == "mcp_servers":
                    tools = models.Base.metadata.tables[f"{SCHEMA}.installed_tools"]
                    with engine.connect() as sa:
                        ids = list(sa.execute(select(tools.c.id).limit(rows)).scalars())
                    generated = datagen.mcp_server_rows(ids, seed=seed)
                else:
                    generated = datagen.ROW_GENERATORS[table](rows, seed=seed)
                # The database may be below head (the documented design stops at 006): send only its columns.
                present = {str(r[0]) for r in conn.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s",
                    [SCHEMA, table]).fetchall()}
                generated = [{k: v for k, v in r.items() if k in present} for r in generated]
                for start in range(0, len(generated), 1000):
                    chunk = generated[start:start + 1000]
                    with engine.begin() as sa:
                        sa.execute(insert(model_table), chunk)
                    advance(table, len(chunk))
                conn.execute(sql.SQL("VACUUM ANALYZE {}.{}").format(sql.Identifier(SCHEMA), sql.Identifier(table)))
                total, heap = _sizes(conn, SCHEMA, table)
                out.append(TableMeasure(table, "row", len(generated), empty, total, heap,
                                        _avg_tuple(conn, SCHEMA, table), "generated rows (jedisos_db.harness.datagen)"))
    finally:
        engine.dispose()
    return out


def _langgraph_available() -> str | None:
    try:
        import jedisos_db.harness.agentgraph
        import jedisos_db.runtime.checkpointer  # noqa: F401
    except ImportError as exc:
        return f"langgraph / langgraph-checkpoint-postgres not importable ({exc}); pip install 'jedisos-db[bench]'"
    return None


FALLBACK_CHECKPOINT_BYTES_PER_RUN = 3 * 4.5 * 1024
"""DESIGN.md's verified figure (3 checkpoint rows per run, ~4.5 KB each), used only when
LangGraph is not installed, and labelled so in the report."""


def measure_langgraph(url: DatabaseURL, *, threads: int = 3, turns_per_thread: int = 10, seed: int = 0,
                      advance: Advance = no_progress) -> TableMeasure:
    """Bytes per graph run of a small real graph checkpointed by ``PostgresSaver`` in ``langgraph``.

    The state is the design's ``AgentState`` (§3-2): messages, memory_context, bank_id,
    tool_call_count. Each turn adds a user message and an assistant reply; the checkpointer stores
    the whole message list per version, so bytes per run grow with the thread's length: the figure
    holds for threads of ``turns_per_thread`` turns.
    """
    reason = _langgraph_available()
    if reason is not None:
        return TableMeasure("checkpoints", "graph run", 1, 0, int(FALLBACK_CHECKPOINT_BYTES_PER_RUN), 0, 0.0,
                            f"FALLBACK, not measured: {reason}; using DESIGN.md's 3 rows x 4.5 KB per run")
    import random

    from langgraph.checkpoint.postgres import PostgresSaver

    from jedisos_db.harness import agentgraph
    from jedisos_db.runtime import checkpointer

    rng = random.Random(seed)
    checkpointer.ensure_schema(url)
    # The checkpointer factory's schema-confined connection (only `langgraph` on the search_path).
    with psycopg.connect(url.libpq(), **checkpointer.connection_kwargs()) as conn:
        saver = PostgresSaver(conn)
        saver.setup()
        with connect(url) as admin:
            admin.execute(sql.SQL("VACUUM ANALYZE"))
            empty = _schema_bytes(admin, checkpointer.SCHEMA)
            graph = agentgraph.build(saver, seed=seed)
            checkpoints = 0
            for t in range(threads):
                config: Any = {"configurable": {"thread_id": f"jedisos-capacity-{seed}-{t}"}}
                for _ in range(turns_per_thread):
                    graph.invoke(agentgraph.user_turn(rng, f"bank-user-{t:05d}"), config)
                    advance("checkpoints", 1)
                checkpoints += sum(1 for _ in saver.list(config))
            admin.execute("VACUUM ANALYZE")
            total = _schema_bytes(admin, checkpointer.SCHEMA)
    runs = threads * turns_per_thread
    return TableMeasure("checkpoints", "graph run", runs, empty, total, 0, (total - empty) / max(checkpoints, 1),
                        f"real graph run: PostgresSaver in schema langgraph, {threads} threads x "
                        f"{turns_per_thread} turns, {checkpoints} checkpoints ({checkpoints / runs:.1f} per run); "
                        "avg tuple column = bytes per checkpoint", thread_turns=turns_per_thread)


def hindsight_memory_units(url: DatabaseURL, *, min_rows: int = 1000) -> TableMeasure | None:
    """Bytes per memory unit of a Hindsight server's own ``memory_units`` in this database, or None.

    Catalog statistics only (``reltuples``, relation sizes): the harness never reads Hindsight's
    rows. None when the schema is absent or holds fewer than ``min_rows`` units.
    """
    with connect(url) as conn:
        live = conn.execute(
            "SELECT c.reltuples::bigint FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname = 'memory_units'", [HINDSIGHT_SCHEMA]).fetchone()
        if live is None or live[0] < min_rows:
            return None
        total, heap = _sizes(conn, HINDSIGHT_SCHEMA, "memory_units")
    return TableMeasure("memory_units", "row", int(live[0]), 0, total, heap, heap / int(live[0]),
                        "Hindsight server's own memory_units (catalog statistics: reltuples, sizes)")


@dataclass(frozen=True)
class SchemaTable:
    """One table of a schema: its rows as the planner counts them and its bytes with indexes and TOAST."""

    table: str
    rows: int
    total_bytes: int


def schema_tables(url: DatabaseURL, schema: str) -> dict[str, SchemaTable]:
    """Every table of ``schema`` after ``VACUUM ANALYZE`` (run as the owner or a superuser).

    Catalog statistics only (``reltuples``, relation sizes): another owner's rows are never read.
    """
    with connect(url) as conn:
        conn.execute("VACUUM ANALYZE")
        rows = conn.execute(
            "SELECT c.relname, greatest(c.reltuples, 0)::bigint, pg_total_relation_size(c.oid) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind IN ('r', 'p') "
            "ORDER BY 1", [schema]).fetchall()
    return {str(t): SchemaTable(str(t), int(r), int(b)) for t, r, b in rows}


def bench_memory_units(url: DatabaseURL, *, dim: int = 384, rows: int = 2000, seed: int = 0,
                       advance: Advance = no_progress) -> TableMeasure:
    """Bytes per memory unit of the bench table shaped like Hindsight's (with its indexes)."""
    from jedisos_db.harness import vectorbench

    table = f"memory_units_capacity_{dim}"
    data = vectorbench.make_dataset(rows, kind="clustered", dim=dim, queries=1, seed=seed)
    with vectorbench.connect(url) as conn:
        vectorbench.create_table(conn, table, dim, hindsight_indexes=True)
        conn.execute("VACUUM ANALYZE")
        empty, _ = _sizes(conn, vectorbench.BENCH_SCHEMA, table)
        vectorbench.fill(conn, table, data, progress=lambda n: advance("memory_units", n))
        conn.execute(sql.SQL("VACUUM ANALYZE {}.{}").format(sql.Identifier(vectorbench.BENCH_SCHEMA),
                                                            sql.Identifier(table)))
        vectorbench.build_index(conn, table, vectorbench.HnswParams())
        total, heap = _sizes(conn, vectorbench.BENCH_SCHEMA, table)
        avg = _avg_tuple(conn, vectorbench.BENCH_SCHEMA, table)
    return TableMeasure("memory_units", "row", rows, empty, total, heap, avg,
                        f"bench table {vectorbench.BENCH_SCHEMA}.{table}: Hindsight's memory_units columns, "
                        f"vector({dim}), HNSW m=16/ef_construction=64 + Hindsight's 8 btree and GIN indexes "
                        "(no Hindsight server data found)")


@contextmanager
def scratch_database(url: DatabaseURL, *, migrate: bool = True) -> Iterator[DatabaseURL]:
    """A database of its own on the server of ``url`` (migrated to head), dropped afterwards."""
    name = f"jedisos_capacity_{secrets.token_hex(4)}"
    scratch = provision.create_database(url, name)
    try:
        provision.bootstrap(scratch)
        if migrate:
            migrations.upgrade(scratch)
        yield scratch
    finally:
        provision.drop_database(url, name)


@dataclass(frozen=True)
class Measurement:
    measures: list[TableMeasure]
    server: provision.ServerInfo
    checkpoint_sensitivity: list[TableMeasure]


def sensitivity_lengths(turns_per_thread: int) -> tuple[int, ...]:
    """Thread lengths whose bytes per run are shown beside the configured one."""
    return tuple(sorted({1, 3 * turns_per_thread} - {turns_per_thread}))


def measure(url: DatabaseURL, config: CapacityConfig, advance: Advance = no_progress) -> Measurement:
    """All measurements, in a scratch database on the server of ``url``; and the server's settings.

    Memory units come from a Hindsight server's data in the database of ``url`` when it has some.
    """
    hindsight = hindsight_memory_units(url)
    with scratch_database(url) as db:
        info = provision.server_info(db)  # in a database with `vector`, so its version shows
        measures = measure_jedisos(db, config.rows, seed=config.seed, advance=advance)
        measures.append(measure_langgraph(db, threads=config.langgraph_threads,
                                          turns_per_thread=config.turns_per_thread, seed=config.seed,
                                          advance=advance))
        measures.append(hindsight or bench_memory_units(db, dim=config.embedding_dim, rows=config.rows,
                                                        seed=config.seed, advance=advance))
    sensitivity = []
    total_runs = config.langgraph_threads * config.turns_per_thread
    for n in sensitivity_lengths(config.turns_per_thread):
        # A database each, and about as many runs as the main measurement: small deltas would
        # vanish into free space left in pages by earlier runs.
        with scratch_database(url, migrate=False) as db:
            sensitivity.append(measure_langgraph(db, threads=max(1, math.ceil(total_runs / n)), turns_per_thread=n,
                                                 seed=config.seed + n, advance=advance))
    return Measurement(measures, info, sensitivity)


def reserved_connections(url: DatabaseURL) -> int:
    with connect(url) as conn:
        row = conn.execute("SELECT current_setting('superuser_reserved_connections')::int + "
                           "current_setting('reserved_connections')::int").fetchone()
    return int(row[0]) if row else 3




def progress_totals(config: CapacityConfig) -> dict[str, float]:
    """Units each progress step counts to (for a progress bar per step)."""
    totals: dict[str, float] = dict.fromkeys(JEDISOS_TABLES, float(config.rows))
    runs = config.langgraph_threads * config.turns_per_thread
    totals["checkpoints"] = float(runs + sum(max(1, math.ceil(runs / n)) * n
                                             for n in sensitivity_lengths(config.turns_per_thread)))
    totals["memory_units"] = float(config.rows)
    return totals
