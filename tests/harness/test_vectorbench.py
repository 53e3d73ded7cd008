"""pgvector bench harness (design §2, §7): generators, ground truth, recall, and the table on a real server.

Quality only (recall, rows returned, where things live); no timing is asserted here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from jedisos_db.cli import render
from jedisos_db.cli.main import app
from jedisos_db.harness import vectorbench
from jedisos_db.ops import provision
from jedisos_db.runtime.db.connect import connect
from jedisos_db.runtime.urls import DatabaseURL
from tests.rich_tables import row_of, table_rows


def test_datasets_are_unit_vectors_and_deterministic() -> None:
    a = vectorbench.make_dataset(300, kind="clustered", dim=16, queries=7, seed=3)
    b = vectorbench.make_dataset(300, kind="clustered", dim=16, queries=7, seed=3)
    assert a.vectors.shape == (300, 16)
    assert a.queries.shape == (7, 16)
    assert a.vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(a.vectors, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(a.vectors, b.vectors)
    assert np.array_equal(a.banks, b.banks)
    with pytest.raises(ValueError, match="kind"):
        vectorbench.make_dataset(10, kind="gaussian")  # type: ignore[arg-type]


def test_clustered_data_is_easier_than_uniform() -> None:
    """In 384 dimensions a clustered query's 10th neighbour is ~0.5 cosine similar (a cluster mate);
    a uniform query's is barely above the crowd (~0.13): why uniform is the hard case."""
    def tenth(kind: vectorbench.Kind) -> float:
        d = vectorbench.make_dataset(2000, kind=kind, dim=384, queries=20, seed=1)
        return float(np.mean(np.sort(d.queries @ d.vectors.T, axis=1)[:, -10]))

    assert tenth("clustered") > 0.4
    assert tenth("uniform") < 0.2


def test_exact_knn_on_known_vectors() -> None:
    vectors = np.array([[1, 0], [0, 1], [0.8, 0.6], [-1, 0]], dtype=np.float32)
    queries = np.array([[1, 0], [0, 1]], dtype=np.float32)
    assert vectorbench.exact_knn(vectors, queries, 2) == [[0, 2], [1, 2]]
    mask = np.array([False, True, True, True])
    assert vectorbench.exact_knn(vectors, queries[:1], 2, mask=mask) == [[2, 1]]
    assert vectorbench.exact_knn(vectors, queries[:1], 10, mask=np.array([True, False, False, False])) == [[0]]


def test_recall_at_k() -> None:
    assert vectorbench.recall_at_k([[1, 2, 3]], [[1, 2, 4]], 3) == pytest.approx(2 / 3)
    assert vectorbench.recall_at_k([[1, 2], [5]], [[1, 2], [6]], 2) == pytest.approx(0.5)
    assert vectorbench.recall_at_k([[]], [[]], 10) == 1.0  # nothing to find: nothing missed
    with pytest.raises(ValueError, match="queries"):
        vectorbench.recall_at_k([[1]], [], 1)


def test_row_ids_round_trip() -> None:
    assert vectorbench.row_index(vectorbench.row_id(41)) == 41


@pytest.fixture(scope="module")
def small(migrated_db: DatabaseURL) -> tuple[vectorbench.Dataset, vectorbench.BuildResult]:
    data = vectorbench.make_dataset(2000, kind="clustered", queries=40, banks=50, seed=7)
    return data, vectorbench.prepare(migrated_db, data)


def test_bench_table_lives_in_its_own_schema(migrated_db: DatabaseURL,
                                             small: tuple[vectorbench.Dataset, vectorbench.BuildResult]) -> None:
    """The harness builds its memory_units copy in jedisos_bench, never in hindsight or public."""
    _, build = small
    with connect(migrated_db) as conn:
        rows = conn.execute("SELECT n.nspname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                            " WHERE c.relname LIKE 'memory_units%%'").fetchall()
        am = conn.execute("SELECT am.amname, pg_get_indexdef(i.indexrelid) FROM pg_index i "
                          "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam "
                          "WHERE c.relname = %s", [vectorbench.index_name(build.table)]).fetchone()
    assert {schema for schema, _ in rows} == {"jedisos_bench"}, rows
    assert am is not None
    assert am[0] == "hnsw"
    assert "vector_cosine_ops" in am[1]
    assert "m='16'" in am[1]
    assert "ef_construction='64'" in am[1]
    assert vectorbench.table_ready(migrated_db, build.table, 2000)
    assert build.index_bytes > 0


def test_server_exact_search_equals_numpy_ground_truth(
        migrated_db: DatabaseURL, small: tuple[vectorbench.Dataset, vectorbench.BuildResult]) -> None:
    """The recall denominator is right: a sequential scan on the server finds what numpy finds."""
    data, build = small
    truth = vectorbench.exact_knn(data.vectors, data.queries[:5], 10)
    with vectorbench.connect(migrated_db) as conn:
        conn.execute("SET enable_indexscan = off")
        for q, want in zip(data.queries[:5], truth, strict=True):
            got = vectorbench.knn(conn, build.table, q, 10)
            assert got == want


def test_hnsw_recall_grows_with_ef_search(migrated_db: DatabaseURL,
                                          small: tuple[vectorbench.Dataset, vectorbench.BuildResult]) -> None:
    data, build = small
    truth = vectorbench.exact_knn(data.vectors, data.queries, 10)
    low = vectorbench.run_queries(migrated_db, build.table, data.queries, ef_search=10)
    high = vectorbench.run_queries(migrated_db, build.table, data.queries, ef_search=200, connections=2)
    r_low, r_high = vectorbench.recall_at_k(low.found, truth, 10), vectorbench.recall_at_k(high.found, truth, 10)
    assert r_high >= 0.95, f"recall@10 at ef_search=200 on 2k clustered rows: {r_high}"
    assert r_high >= r_low
    assert all(len(f) == 10 for f in high.found)


def test_per_bank_filter_needs_iterative_scan(
        migrated_db: DatabaseURL, small: tuple[vectorbench.Dataset, vectorbench.BuildResult]) -> None:
    """One bank of 50: a plain HNSW scan returns fewer than k rows; iterative scan returns k."""
    data, build = small
    banks = [int(b) for b in data.query_banks]
    off = vectorbench.run_queries(migrated_db, build.table, data.queries, ef_search=40, banks=banks)
    relaxed = vectorbench.run_queries(migrated_db, build.table, data.queries, ef_search=40, banks=banks,
                                      iterative_scan="relaxed_order")
    assert np.mean([len(f) for f in off.found]) < 5
    assert all(len(f) == 10 for f in relaxed.found)
    assert vectorbench.plan_of(migrated_db, build.table, data.queries[0], bank=banks[0], ef_search=40,
                               iterative_scan="relaxed_order") == "Index Scan (hnsw)"


def test_suite_and_table(migrated_db: DatabaseURL, server_info: provision.ServerInfo) -> None:
    data = vectorbench.make_dataset(600, kind="uniform", queries=12, seed=2)
    result = vectorbench.run_suite(migrated_db, data, ef_values=(10, 80), connections=2, banks=50)
    assert [s.ef_search for s in result.sweep] == [10, 80]
    assert [f.iterative_scan for f in result.filtered] == ["off", "strict_order", "relaxed_order"]
    assert result.sweep[1].recall >= result.sweep[0].recall
    text = render.to_text(render.vectorbench_results([result], server_info))
    assert text.startswith(f"Server: PostgreSQL {server_info.server_version}")
    assert row_of(text, "uniform")[:3] == ["uniform", "600", "16/64"]
    assert [row[2] for row in table_rows(text) if row[0] == "uniform" and len(row) == 10] == [
        "off", "strict_order", "relaxed_order"]


def test_cli_vectorbench(migrated_db: DatabaseURL, tmp_path: Path) -> None:
    """`jedisos-db vectorbench` runs the suite per size and kind, prints both tables, writes --json."""
    out = tmp_path / "vector.json"
    result = CliRunner().invoke(app, ["vectorbench", "--rows", "300", "--kind", "clustered", "--queries", "5",
                                      "--connections", "2", "--dim", "16", "--json", str(out),
                                      "--dsn", migrated_db.libpq()])
    assert result.exit_code == 0, result.output
    assert "Server: PostgreSQL" in result.output
    assert row_of(result.output, "data")[:2] == ["data", "rows"]
    sweep = [row for row in table_rows(result.output) if row[0] == "clustered" and len(row) == 12]
    assert [int(row[5]) for row in sweep] == list(vectorbench.DEFAULT_EF_SEARCH)
    data = json.loads(out.read_text())
    assert [(r["kind"], r["rows"], r["dim"]) for r in data["results"]] == [("clustered", 300, 16)]
    assert data["server"]["pgvector_version"]
    assert "password" not in data["url"]


def test_cli_vectorbench_rejects_an_unknown_kind_in_one_line(migrated_db: DatabaseURL) -> None:
    result = CliRunner().invoke(app, ["vectorbench", "--kind", "gaussian", "--dsn", migrated_db.libpq()])
    assert result.exit_code == 1
    assert result.output.strip() == "error: --kind: must be one of clustered, uniform, got 'gaussian'"
