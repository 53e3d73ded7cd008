"""The ``vectors`` measurement: recall and QPS at each design's dimension, HNSW against the exact scan."""

from __future__ import annotations

import pytest

from jedisos_db.harness import designs, vectorbench
from jedisos_db.harness.measure import Context, registry, vectors
from jedisos_db.runtime.db.connect import connect
from jedisos_db.runtime.errors import InvalidInputError
from jedisos_db.runtime.urls import DatabaseURL
from tests.plugins.databases import DatabaseFactory

BUILD = vectorbench.BuildResult("t", 1000, 384, vectors.PARAMS, 1.5, 2_000_000, 3_000_000)


def _point(ef: int, recall: float, qps: float) -> vectors.SweepPoint:
    return vectors.SweepPoint(ef, recall, qps)


def test_it_is_registered() -> None:
    assert registry.MEASUREMENTS["vectors"] is vectors.measure


def test_the_smallest_ef_reaching_each_recall_and_its_speed_over_exact() -> None:
    sweep = [_point(10, 0.90, 3000.0), _point(40, 0.96, 2100.0), _point(80, 0.97, 1500.0),
             _point(160, 0.995, 900.0), _point(400, 0.999, 400.0)]
    got = vectors.summarise(1000, 384, 50, BUILD, _point(0, 1.0, 100.0), sweep)
    assert got.figures["ef_for_recall_095"] == 40
    assert got.figures["ef_for_recall_099"] == 160
    assert got.figures["hnsw_at_recall_095_x_exact"] == pytest.approx(21.0)
    assert got.figures["hnsw_at_recall_099_x_exact"] == pytest.approx(9.0)
    assert got.series["recall_vs_ef"][1] == (40.0, 0.96)
    assert got.series["qps_vs_ef"][-1] == (400.0, 400.0)
    assert any("ef 40: recall 0.960 at 21.0x exact, so this design reaches 20x" in n for n in got.notes)


def test_a_recall_no_setting_reaches_is_absent_and_said() -> None:
    sweep = [_point(10, 0.80, 900.0), _point(400, 0.97, 150.0)]
    got = vectors.summarise(1000, 384, 50, BUILD, _point(0, 1.0, 10.0), sweep)
    assert "ef_for_recall_099" not in got.figures
    assert "hnsw_at_recall_099_x_exact" not in got.figures
    assert got.figures["ef_for_recall_095"] == 400
    assert any("No ef_search up to 400 reaches recall 0.99 (best 0.970 at ef 400)" in n for n in got.notes)
    assert any("does not reach 20x" in n for n in got.notes)  # 15x at recall 0.97
    nothing = vectors.summarise(1000, 384, 50, BUILD, _point(0, 1.0, 10.0), [_point(10, 0.5, 900.0)])
    assert not any(k.startswith("ef_for_recall") for k in nothing.figures)
    assert any("No setting reaches recall 0.95" in n for n in nothing.notes)


def test_sizes_follow_the_mode_and_the_environment() -> None:
    assert vectors.sizes(False, {}) == (20_000, 200)
    assert vectors.sizes(True, {}) == (5_000, 50)
    assert vectors.sizes(True, {vectors.ROWS_ENV: "100000"}) == (100_000, 50)
    with pytest.raises(InvalidInputError) as caught:
        vectors.sizes(False, {vectors.QUERIES_ENV: "many"})
    assert caught.value.field == vectors.QUERIES_ENV
    with pytest.raises(InvalidInputError, match=vectors.ROWS_ENV):
        vectors.sizes(False, {vectors.ROWS_ENV: "5"})


def test_the_exact_session_scans_every_row_and_the_other_uses_the_index(database_factory: DatabaseFactory) -> None:
    url = database_factory("vectors_plans")
    data = vectorbench.make_dataset(500, dim=16, queries=5)
    build = vectorbench.prepare(url, data, vectors.PARAMS)
    plans = {exact: vectorbench.plan_of(url, build.table, data.queries[0], bank=None, ef_search=40,
                                        iterative_scan="off", exact=exact) for exact in (False, True)}
    assert plans == {False: "Index Scan (hnsw)", True: "Seq Scan"}
    run = vectorbench.run_queries(url, build.table, data.queries, exact=True)
    assert vectorbench.recall_at_k(run.found, vectorbench.exact_knn(data.vectors, data.queries, 10), 10) == 1.0


@pytest.mark.slow
def test_each_design_is_measured_at_its_own_dimension(server_url: DatabaseURL) -> None:
    calls: list[tuple[int, int]] = []
    ctx = Context(server=server_url, quick=True, progress=lambda done, total: calls.append((done, total)))
    got = {name: vectors.run(designs.load(name), ctx, rows=1500, queries=20, ef_values=(10, 400))
           for name in ("recommended", "openai-1536")}
    small, big = got["recommended"].figures, got["openai-1536"].figures
    assert (small["dim"], big["dim"]) == (384, 1536)
    assert small["rows"] == big["rows"] == 1500
    # Four times the floats per entry: the 1536-d graph is well over twice the size.
    assert int(big["index_bytes"]) > 2 * int(small["index_bytes"]) > 0
    for measured in got.values():
        figures = measured.figures
        assert float(figures["exact_recall_at_10"]) >= 0.99  # the baseline really is exact
        assert float(figures["exact_qps"]) > 0
        recall = dict(measured.series["recall_vs_ef"])
        assert recall[400.0] >= 0.95, recall  # 1,500 rows: a wide search finds nearly everything
        assert recall[400.0] >= recall[10.0]
        assert figures["ef_for_recall_095"] in (10, 400)
        assert figures["hnsw_at_recall_095_x_exact"] == pytest.approx(
            dict(measured.series["qps_vs_ef"])[float(figures["ef_for_recall_095"])] / float(figures["exact_qps"]),
            rel=0.02)
    assert calls[-1] == (5, 5)
    assert [done for done, _ in calls] == [1, 2, 3, 4, 5] * 2
    with connect(server_url) as conn:
        left = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'jedisos_vectors_%'").fetchall()
    assert left == []  # each design's scratch database is dropped
