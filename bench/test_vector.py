"""pgvector kNN on the bench table shaped like Hindsight's ``memory_units`` (design §2, §7).

``test_knn`` times one query per ``hnsw.ef_search`` step; ``test_recall_qps_table`` runs the full
quality/speed suite (recall@10 vs exact, QPS at 1 and N connections, p50/p99, build time,
index size, per-bank filter with ``hnsw.iterative_scan``) and prints its table at the end.
Sizes: ``--vector-rows 20000,100000``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from bench.conftest import format_info
from jedisos_db.cli import render
from jedisos_db.harness import vectorbench
from jedisos_db.ops import provision
from jedisos_db.runtime.urls import DatabaseURL


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "size" in metafunc.fixturenames:
        sizes = [int(s) for s in str(metafunc.config.getoption("--vector-rows")).split(",") if s.strip()]
        metafunc.parametrize("size", sizes, scope="module")


@pytest.fixture(scope="module")
def built(migrated_db: DatabaseURL,
          ) -> Iterator[dict[tuple[str, int], tuple[vectorbench.Dataset, vectorbench.BuildResult]]]:
    cache: dict[tuple[str, int], tuple[vectorbench.Dataset, vectorbench.BuildResult]] = {}
    yield cache
    vectorbench.drop_tables(migrated_db)


def _get(built: dict[Any, Any], url: DatabaseURL, kind: str, size: int, queries: int
         ) -> tuple[vectorbench.Dataset, vectorbench.BuildResult]:
    if (kind, size) not in built:
        data = vectorbench.make_dataset(size, kind=kind, queries=queries)
        built[(kind, size)] = (data, vectorbench.prepare(url, data))
    return built[(kind, size)]  # type: ignore[no-any-return]


@pytest.mark.parametrize("kind", ["clustered", "uniform"])
def test_recall_qps_table(migrated_db: DatabaseURL, built: dict[Any, Any], kind: str, size: int,
                          request: pytest.FixtureRequest, vector_tables: list[str]) -> None:
    queries = int(request.config.getoption("--vector-queries"))
    data, build = _get(built, migrated_db, kind, size, queries)
    result = vectorbench.run_suite(migrated_db, data, build=build,
                                   connections=int(request.config.getoption("--vector-connections")))
    best = max(s.recall for s in result.sweep)
    assert 0 < best <= 1, f"recall@10 must be in (0, 1], got {best}"
    info = provision.server_info(migrated_db)
    vector_tables.append(f"pgvector {kind} {size} rows — {format_info(info)}\n"
                         + render.to_text(render.vectorbench_results([result])))


@pytest.mark.parametrize("kind", ["clustered", "uniform"])
@pytest.mark.parametrize("ef_search", [10, 40, 160])
def test_knn(benchmark: Any, migrated_db: DatabaseURL, built: dict[Any, Any], kind: str, size: int, ef_search: int,
             request: pytest.FixtureRequest) -> None:
    data, build = _get(built, migrated_db, kind, size, int(request.config.getoption("--vector-queries")))
    benchmark.group = f"pgvector kNN {kind} {size}"
    benchmark.extra_info.update(rows=size, ef_search=ef_search, m=build.params.m,
                                ef_construction=build.params.ef_construction)
    queries = iter(range(10**9))
    with vectorbench.query_session(migrated_db, ef_search) as conn:
        found = benchmark(lambda: vectorbench.knn(conn, build.table, data.queries[next(queries) % len(data.queries)]))
    assert len(found) == 10, f"kNN returned {len(found)} rows, expected 10"
