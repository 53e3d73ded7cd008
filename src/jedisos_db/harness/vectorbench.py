"""pgvector quality and speed on a table shaped like Hindsight's ``memory_units`` (design §2, §7).

The harness never touches the ``hindsight`` schema: it builds its own copy of the shape in
``jedisos_bench`` — ``embedding vector(384)`` (Hindsight's default model), an HNSW index with
``vector_cosine_ops`` and given ``m``/``ef_construction``, ``bank_id`` per memory bank — and fills
it with generated embeddings:

- *clustered*: points around a few dozen centres, like embeddings of a user's topics (the easy,
  realistic case);
- *uniform*: points spread evenly over the sphere, the hard case for any graph index.

For each ``hnsw.ef_search`` it measures recall@k against exact search (computed in numpy on the
same vectors), queries per second on 1 and N connections, p50/p99 latency; once per table the
index build time and size; and a per-bank filtered case (``WHERE bank_id = …``), where a plain
HNSW scan returns fewer than k rows and ``hnsw.iterative_scan`` (pgvector ≥ 0.8) fixes that.
"""

from __future__ import annotations

import datetime as dt
import json
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql
from psycopg.types.json import Jsonb

from jedisos_db.ops import provision
from jedisos_db.runtime.db.connect import connect as db_connect
from jedisos_db.runtime.errors import InvalidInputError
from jedisos_db.runtime.urls import DatabaseURL

BENCH_SCHEMA = "jedisos_bench"
"""The harness's own schema; never ``hindsight``."""
APPLICATION_NAME = "jedisos-vectorbench"
MAINTENANCE_WORK_MEM = "512MB"
"""What an HNSW build gets; too little slows it several-fold (pgvector prints a notice)."""

Kind = Literal["clustered", "uniform"]
IterativeScan = Literal["off", "strict_order", "relaxed_order"]
Vectors = npt.NDArray[np.float32]

DEFAULT_EF_SEARCH: tuple[int, ...] = (10, 20, 40, 80, 160, 400)
"""``hnsw.ef_search`` values swept; 40 is pgvector's default."""


@dataclass(frozen=True)
class HnswParams:
    """Index build parameters; pgvector's defaults are m=16, ef_construction=64."""

    m: int = 16
    ef_construction: int = 64


@dataclass(frozen=True)
class Dataset:
    kind: Kind
    vectors: Vectors
    queries: Vectors
    banks: npt.NDArray[np.int32]
    """Bank of each row (0..n_banks-1): the per-bank filtered case queries one bank at a time."""
    query_banks: npt.NDArray[np.int32]

    @property
    def rows(self) -> int:
        return int(self.vectors.shape[0])

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])


def _normalise(x: npt.NDArray[np.float64]) -> Vectors:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    out: Vectors = (x / norms).astype(np.float32)
    return out


def make_dataset(rows: int, *, kind: Kind = "clustered", dim: int = 384, queries: int = 200, seed: int = 0,
                 clusters: int = 64, banks: int = 50, spread: float = 1.0) -> Dataset:
    """Unit vectors (cosine) and held-out queries drawn from the same distribution.

    ``spread`` is the noise around a centre relative to the centres' own scale: at 1.0 two
    members of a cluster have cosine similarity ~0.5 and members of different clusters ~0,
    roughly what sentence embeddings of one user's topics look like.
    """
    if rows < 1:
        raise InvalidInputError("rows", f"must be >= 1, got {rows}")
    if queries < 1:
        raise InvalidInputError("queries", f"must be >= 1, got {queries}")
    rng = np.random.default_rng(seed)
    if kind == "clustered":
        centres = rng.standard_normal((clusters, dim))

        def draw(n: int) -> Vectors:
            which = rng.integers(0, clusters, n)
            return _normalise(centres[which] + spread * rng.standard_normal((n, dim)))
    elif kind == "uniform":
        def draw(n: int) -> Vectors:
            return _normalise(rng.standard_normal((n, dim)))
    else:
        raise InvalidInputError("kind", f"must be 'clustered' or 'uniform', got {kind!r}")
    vectors = draw(rows)
    qs = draw(queries)
    return Dataset(kind=kind, vectors=vectors, queries=qs,
                   banks=rng.integers(0, banks, rows).astype(np.int32),
                   query_banks=rng.integers(0, banks, queries).astype(np.int32))


def exact_knn(vectors: Vectors, queries: Vectors, k: int,
              mask: npt.NDArray[np.bool_] | None = None) -> list[list[int]]:
    """Row indexes of the k nearest rows by cosine distance (vectors are unit length), best first."""
    out: list[list[int]] = []
    for start in range(0, len(queries), 256):  # bounded memory at 100k rows
        sims = queries[start:start + 256] @ vectors.T
        if mask is not None:
            sims = np.where(mask[None, :], sims, -np.inf)
        kk = min(k, sims.shape[1])
        top = np.argpartition(-sims, kk - 1, axis=1)[:, :kk]
        for row, idx in zip(sims, top, strict=True):
            ordered = idx[np.argsort(-row[idx])]
            out.append([int(i) for i in ordered if np.isfinite(row[i])])
    return out


def row_id(index: int) -> uuid.UUID:
    """The uuid primary key of row ``index`` (Hindsight's ids are uuids; this one maps back)."""
    return uuid.UUID(int=index + 1)


def row_index(value: uuid.UUID) -> int:
    return value.int - 1


def recall_at_k(found: Sequence[Sequence[int]], truth: Sequence[Sequence[int]], k: int) -> float:
    """Mean over queries of |found ∩ truth| / min(k, |truth|); a query with no truth counts 1."""
    if len(found) != len(truth):
        raise InvalidInputError("found", f"has {len(found)} queries, truth has {len(truth)}")
    scores = []
    for f, t in zip(found, truth, strict=True):
        want = set(t[:k])
        scores.append(1.0 if not want else len(want & set(f[:k])) / len(want))
    return float(statistics.fmean(scores)) if scores else 1.0


# --- the table -------------------------------------------------------------------------------

def table_name(kind: str, rows: int, dim: int, params: HnswParams) -> str:
    return f"memory_units_{kind}_{rows}_{dim}_m{params.m}_ef{params.ef_construction}"


def index_name(table: str) -> str:
    return f"{table}_hnsw"[:63]


def _qualified(table: str) -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(BENCH_SCHEMA), sql.Identifier(table))


def connect(url: DatabaseURL) -> psycopg.Connection[Any]:
    conn = db_connect(url, application_name=APPLICATION_NAME)
    register_vector(conn)
    return conn


def create_table(conn: psycopg.Connection[Any], table: str, dim: int, *, hindsight_indexes: bool = False) -> None:
    """``jedisos_bench.<table>``: the columns of Hindsight's ``memory_units`` (no document FK).

    ``hindsight_indexes`` adds the btree indexes Hindsight creates, for the capacity model; the
    kNN bench leaves them out so the filtered case exercises the HNSW index, not a bank btree.
    """
    qt = _qualified(table)
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(BENCH_SCHEMA)))
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(qt))
    conn.execute(sql.SQL("""
        CREATE TABLE {qt} (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            bank_id text NOT NULL,
            document_id text,
            text text NOT NULL,
            embedding public.vector({dim}),
            context text,
            event_date timestamptz NOT NULL,
            occurred_start timestamptz,
            occurred_end timestamptz,
            mentioned_at timestamptz,
            fact_type text NOT NULL DEFAULT 'world',
            confidence_score double precision,
            access_count integer NOT NULL DEFAULT 0,
            metadata jsonb NOT NULL DEFAULT '{{}}'::jsonb,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            search_vector tsvector GENERATED ALWAYS AS
                (to_tsvector('english', COALESCE(text, '') || ' ' || COALESCE(context, ''))) STORED
        )""").format(qt=qt, dim=sql.Literal(dim)))
    if hindsight_indexes:
        for i, cols in enumerate(["bank_id", "document_id", "event_date DESC", "bank_id, event_date DESC",
                                  "access_count DESC", "fact_type", "bank_id, fact_type",
                                  "bank_id, fact_type, event_date DESC"]):
            conn.execute(sql.SQL("CREATE INDEX {} ON {} ({})").format(
                sql.Identifier(f"{table}_b{i}"[:63]), qt, sql.SQL(cols)))
        conn.execute(sql.SQL("CREATE INDEX {} ON {} USING gin (search_vector)").format(
            sql.Identifier(f"{table}_fts"[:63]), qt))


_FACTS = ["prefers morning meetings", "lives in Seoul", "is allergic to peanuts", "works on the JediSOS project",
          "likes jazz", "plans a trip to Busan", "uses Postgres 18", "reads science fiction",
          "runs 5 km on Sundays", "has a cat named Yoda"]


def fill(conn: psycopg.Connection[Any], table: str, data: Dataset, *, offset: int = 0,
         progress: Callable[[int], None] | None = None) -> None:
    """Binary ``COPY`` of the dataset's rows (text, bank, timestamps and the embedding)."""
    now = dt.datetime.now(dt.UTC)
    cols = sql.SQL("COPY {} (id, bank_id, text, embedding, context, event_date, fact_type, metadata) "
                   "FROM STDIN WITH (FORMAT BINARY)").format(_qualified(table))
    with conn.cursor() as cur, cur.copy(cols) as copy:
        copy.set_types(["uuid", "text", "text", "vector", "text", "timestamptz", "text", "jsonb"])
        for i in range(data.rows):
            fact = _FACTS[i % len(_FACTS)]
            copy.write_row((
                row_id(offset + i), f"bank-{int(data.banks[i]):04d}",
                f"The user {fact} (fact {offset + i}, noted during a conversation about {fact.split()[-1]}).",
                data.vectors[i], f"conversation {i // 20}", now - dt.timedelta(minutes=i), "world",
                Jsonb({"source": "vectorbench", "turn": i}),
            ))
            if progress and i % 1000 == 999:
                progress(1000)
    if progress:
        progress(data.rows % 1000)


@dataclass(frozen=True)
class BuildResult:
    table: str
    rows: int
    dim: int
    params: HnswParams
    build_seconds: float
    index_bytes: int
    table_bytes: int


def build_index(conn: psycopg.Connection[Any], table: str, params: HnswParams, *,
                maintenance_work_mem: str = MAINTENANCE_WORK_MEM) -> tuple[float, int]:
    """``CREATE INDEX … USING hnsw``; returns (seconds, index bytes).

    ``maintenance_work_mem`` must hold the graph or the build slows down several-fold (pgvector
    prints a notice); the value is printed with the results.
    """
    index = index_name(table)
    conn.execute(sql.SQL("SET maintenance_work_mem = {}").format(sql.Literal(maintenance_work_mem)))
    started = time.perf_counter()
    conn.execute(sql.SQL(
        "CREATE INDEX {} ON {} USING hnsw (embedding public.vector_cosine_ops) WITH (m = {}, ef_construction = {})"
    ).format(sql.Identifier(index), _qualified(table), sql.Literal(params.m), sql.Literal(params.ef_construction)))
    seconds = time.perf_counter() - started
    row = conn.execute("SELECT pg_relation_size(to_regclass(%s))",
                       [f"{BENCH_SCHEMA}.{index}"]).fetchone()
    assert row is not None
    return seconds, int(row[0])


def prepare(url: DatabaseURL, data: Dataset, params: HnswParams = HnswParams(), *, table: str | None = None,
            progress: Callable[[int], None] | None = None) -> BuildResult:
    """Create, fill, VACUUM ANALYZE and index a bench table for ``data``."""
    table = table or table_name(data.kind, data.rows, data.dim, params)
    with connect(url) as conn:
        # Serialise concurrent preparers (Locust workers, parallel sessions) on the same table.
        conn.execute("SELECT pg_advisory_lock(hashtext(%s))", [table])
        try:
            create_table(conn, table, data.dim)
            fill(conn, table, data, progress=progress)
            conn.execute(sql.SQL("VACUUM ANALYZE {}").format(_qualified(table)))
            seconds, index_bytes = build_index(conn, table, params)
            row = conn.execute("SELECT pg_table_size(to_regclass(%s))", [f"{BENCH_SCHEMA}.{table}"]).fetchone()
        finally:
            conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", [table])
    assert row is not None
    return BuildResult(table, data.rows, data.dim, params, seconds, index_bytes, int(row[0]))


def table_ready(url: DatabaseURL, table: str, rows: int) -> bool:
    """True when ``table`` exists, has ``rows`` rows and its HNSW index."""
    with connect(url) as conn:
        reg = conn.execute("SELECT to_regclass(%s)", [f"{BENCH_SCHEMA}.{table}"]).fetchone()
        if reg is None or reg[0] is None:
            return False
        count = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(_qualified(table))).fetchone()
        idx = conn.execute("SELECT to_regclass(%s)", [f"{BENCH_SCHEMA}.{index_name(table)}"]).fetchone()
    return count is not None and count[0] == rows and idx is not None and idx[0] is not None


# --- queries ---------------------------------------------------------------------------------

def knn_statement(table: str, *, filtered: bool = False) -> sql.Composed:
    where = sql.SQL("WHERE bank_id = %(bank)s ") if filtered else sql.SQL("")
    return sql.SQL("SELECT id FROM {} {}ORDER BY embedding OPERATOR(public.<=>) %(q)s LIMIT %(k)s").format(
        _qualified(table), where)


@contextmanager
def query_session(url: DatabaseURL, ef_search: int, iterative_scan: IterativeScan = "off", *,
                  exact: bool = False) -> Iterator[psycopg.Connection[Any]]:
    """A session whose kNN queries use the HNSW index, or with ``exact`` the exact scan (read every row, sort)."""
    conn = connect(url)
    try:
        conn.execute(sql.SQL("SET hnsw.ef_search = {}").format(sql.Literal(ef_search)))
        conn.execute(sql.SQL("SET hnsw.iterative_scan = {}").format(sql.Literal(iterative_scan)))
        # Measure the index, as ann-benchmarks does: on small tables the planner would rather
        # scan and sort (exact). The plan column of the results shows what ran.
        conn.execute("SET enable_indexscan = off" if exact else "SET enable_seqscan = off")
        yield conn
    finally:
        conn.close()


def knn(conn: psycopg.Connection[Any], table: str, query: Vectors | npt.NDArray[Any], k: int = 10,
        bank: int | None = None) -> list[int]:
    """Row indexes of the k nearest rows as the server's index returns them."""
    params: dict[str, Any] = {"q": query, "k": k}
    if bank is not None:
        params["bank"] = f"bank-{bank:04d}"
    rows = conn.execute(knn_statement(table, filtered=bank is not None), params, prepare=True).fetchall()
    return [row_index(r[0]) for r in rows]


@dataclass(frozen=True)
class QueryRun:
    found: list[list[int]]
    latencies_ms: list[float]
    wall_seconds: float

    @property
    def qps(self) -> float:
        return len(self.latencies_ms) / self.wall_seconds if self.wall_seconds > 0 else float("inf")

    def percentile(self, p: float) -> float:
        return float(np.percentile(np.asarray(self.latencies_ms), p)) if self.latencies_ms else 0.0


def run_queries(url: DatabaseURL, table: str, queries: Vectors, *, k: int = 10, ef_search: int = 40,
                connections: int = 1, banks: Sequence[int] | None = None,
                iterative_scan: IterativeScan = "off", exact: bool = False) -> QueryRun:
    """Run every query once, spread round-robin over ``connections`` threads, each its own session
    (``exact``: by the exact scan instead of the index, the baseline HNSW is compared with)."""
    found: list[list[int]] = [[] for _ in range(len(queries))]
    latencies: list[float] = [0.0] * len(queries)
    errors: list[BaseException] = []
    sessions = [query_session(url, ef_search, iterative_scan, exact=exact) for _ in range(connections)]
    conns = [s.__enter__() for s in sessions]
    # One warm-up query per session: prepared statement and first index pages, not timed.
    for c in conns:
        knn(c, table, queries[0], k, None if banks is None else banks[0])
    start_barrier = threading.Barrier(connections + 1)

    def worker(slot: int) -> None:
        try:
            start_barrier.wait()
            for i in range(slot, len(queries), connections):
                t0 = time.perf_counter()
                found[i] = knn(conns[slot], table, queries[i], k, None if banks is None else banks[i])
                latencies[i] = (time.perf_counter() - t0) * 1000
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(s,), daemon=True) for s in range(connections)]
    for t in threads:
        t.start()
    start_barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    for s in sessions:
        s.__exit__(None, None, None)
    if errors:
        raise errors[0]
    return QueryRun(found, latencies, wall)


def plan_of(url: DatabaseURL, table: str, query: Vectors, *, bank: int | None, ef_search: int,
            iterative_scan: IterativeScan, exact: bool = False) -> str:
    """The scan node the planner picks (e.g. ``Index Scan`` on the HNSW index, or ``Seq Scan``)."""
    with query_session(url, ef_search, iterative_scan, exact=exact) as conn:
        params: dict[str, Any] = {"q": query, "k": 10}
        if bank is not None:
            params["bank"] = f"bank-{bank:04d}"
        explain = sql.SQL("EXPLAIN (FORMAT JSON) {}").format(knn_statement(table, filtered=bank is not None))
        row = conn.execute(explain, params).fetchone()
    assert row is not None
    node = row[0][0]["Plan"]
    while node.get("Plans") and node["Node Type"] in {"Limit", "Sort", "Gather Merge", "Gather"}:
        node = node["Plans"][0]
    index = str(node.get("Index Name", ""))
    return f"{node['Node Type']}" + (" (hnsw)" if index.endswith("_hnsw") else f" {index}" if index else "")


# --- the suite -------------------------------------------------------------------------------

@dataclass(frozen=True)
class SweepRow:
    ef_search: int
    plan: str
    recall: float
    qps_1: float
    qps_n: float
    p50_ms: float
    p99_ms: float


@dataclass(frozen=True)
class FilteredRow:
    iterative_scan: str
    ef_search: int
    recall: float
    mean_returned: float
    qps_1: float
    p50_ms: float
    p99_ms: float
    plan: str


@dataclass
class SuiteResult:
    kind: str
    rows: int
    dim: int
    k: int
    queries: int
    connections: int
    build: dict[str, Any]
    sweep: list[SweepRow] = field(default_factory=list)
    filtered: list[FilteredRow] = field(default_factory=list)
    banks: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_suite(url: DatabaseURL, data: Dataset, *, params: HnswParams = HnswParams(), k: int = 10,
              ef_values: Sequence[int] = DEFAULT_EF_SEARCH, connections: int = 4, banks: int = 50,
              filtered_ef: int = 40, progress: Callable[[str], None] | None = None,
              build: BuildResult | None = None) -> SuiteResult:
    """Build the table (unless ``build`` says it exists) and measure the ``ef_search`` sweep and
    the per-bank filtered case."""
    say = progress or (lambda _msg: None)
    if build is None:
        say(f"{data.kind} {data.rows}: loading and building HNSW (m={params.m}, "
            f"ef_construction={params.ef_construction})")
        build = prepare(url, data, params)
    params = build.params
    truth = exact_knn(data.vectors, data.queries, k)
    result = SuiteResult(kind=data.kind, rows=data.rows, dim=data.dim, k=k, queries=len(data.queries),
                         connections=connections, banks=banks,
                         build={"seconds": build.build_seconds, "index_bytes": build.index_bytes,
                                "table_bytes": build.table_bytes, "m": params.m,
                                "ef_construction": params.ef_construction})
    for ef in ef_values:
        say(f"{data.kind} {data.rows}: ef_search={ef}")
        one = run_queries(url, build.table, data.queries, k=k, ef_search=ef, connections=1)
        many = run_queries(url, build.table, data.queries, k=k, ef_search=ef, connections=connections)
        plan = plan_of(url, build.table, data.queries[0], bank=None, ef_search=ef, iterative_scan="off")
        result.sweep.append(SweepRow(ef, plan, recall_at_k(one.found, truth, k), one.qps, many.qps,
                                     one.percentile(50), one.percentile(99)))
    qbanks = [int(b) for b in data.query_banks]
    ftruth = [exact_knn(data.vectors, data.queries[i:i + 1], k, mask=data.banks == qbanks[i])[0]
              for i in range(len(qbanks))]
    modes: tuple[IterativeScan, ...] = ("off", "strict_order", "relaxed_order")
    for mode in modes:
        say(f"{data.kind} {data.rows}: per-bank filter, iterative_scan={mode}")
        run = run_queries(url, build.table, data.queries, k=k, ef_search=filtered_ef, banks=qbanks,
                          iterative_scan=mode)
        plan = plan_of(url, build.table, data.queries[0], bank=qbanks[0], ef_search=filtered_ef,
                       iterative_scan=mode)
        result.filtered.append(FilteredRow(mode, filtered_ef, recall_at_k(run.found, ftruth, k),
                                           float(statistics.fmean(len(f) for f in run.found)), run.qps,
                                           run.percentile(50), run.percentile(99), plan))
    return result


def drop_tables(url: DatabaseURL) -> None:
    with connect(url) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(BENCH_SCHEMA)))


REPORTED_SETTINGS: tuple[str, ...] = ("shared_buffers", "work_mem", "maintenance_work_mem", "effective_cache_size",
                                      "synchronous_commit", "fsync", "max_connections", "jit")
"""The server settings the figures depend on, shown with them."""


def run(url: DatabaseURL, *, rows: Sequence[int] = (20000,), kinds: Sequence[Kind] = ("clustered", "uniform"),
        dim: int = 384, queries: int = 200, connections: int = 4, params: HnswParams = HnswParams(),
        progress: Callable[[str], None] | None = None) -> tuple[provision.ServerInfo, list[SuiteResult]]:
    """The suite for every table size and kind (what ``jedisos-db vectorbench`` runs), with the
    settings of the server that produced the figures."""
    provision.bootstrap(url)
    info = provision.server_info(url)
    results = [run_suite(url, make_dataset(n, kind=kind, dim=dim, queries=queries), params=params,
                         connections=connections, progress=progress)
               for n in rows for kind in kinds]
    return info, results


def write_json(path: Path, url: DatabaseURL, info: provision.ServerInfo, results: Sequence[SuiteResult]) -> None:
    """The results, the server's settings and its (redacted) URL, as one JSON document."""
    path.write_text(json.dumps({"server": asdict(info), "url": url.redacted(),
                                "results": [r.as_dict() for r in results]}, indent=2), encoding="utf-8")
