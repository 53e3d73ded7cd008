"""Measuring bytes per row on the real server, at tiny scale (design §7)."""

from __future__ import annotations

from jedisos_db.harness.capacity import measure
from jedisos_db.harness.capacity.model import CapacityConfig
from jedisos_db.runtime.db.connect import connect
from jedisos_db.runtime.urls import DatabaseURL


def test_sensitivity_lengths() -> None:
    assert measure.sensitivity_lengths(10) == (1, 30)
    assert measure.sensitivity_lengths(1) == (3,)


def test_progress_totals_count_every_step() -> None:
    """One progress bar per measured table; LangGraph counts the main run and the sensitivity runs."""
    totals = measure.progress_totals(CapacityConfig(rows=100, langgraph_threads=3, turns_per_thread=10))
    assert set(totals) == {*measure.JEDISOS_TABLES, "checkpoints", "memory_units"}
    assert totals["audit_logs"] == 100
    assert totals["checkpoints"] == 30 + 30 * 1 + 1 * 30  # 30 runs; 30 one-turn threads; one 30-turn thread


def test_measure_jedisos_tables(migrated_db: DatabaseURL) -> None:
    """Every jedisos table measured: positive bytes per row, heap per row at least the tuple itself."""
    measures = {m.table: m for m in measure.measure_jedisos(migrated_db, 60)}
    assert set(measures) == set(measure.JEDISOS_TABLES)
    for m in measures.values():
        assert m.count == 60, m
        assert m.bytes_per_unit > 0, m
        assert m.heap_bytes / m.count >= m.avg_tuple_bytes, f"{m.table}: heap/row below tuple size: {m}"
    with connect(migrated_db) as conn:
        row = conn.execute("SELECT count(*) FROM jedisos.audit_logs").fetchone()
    assert row is not None
    assert row[0] == 60


def test_measure_langgraph_from_a_real_graph_run(empty_db: DatabaseURL) -> None:
    """A real graph run checkpointed in schema langgraph: 3 checkpoints per run (DESIGN.md), none in public."""
    m = measure.measure_langgraph(empty_db, threads=1, turns_per_thread=3)
    assert not m.source.startswith("FALLBACK"), m.source
    assert m.count == 3
    assert "9 checkpoints (3.0 per run)" in m.source
    assert m.bytes_per_unit > 0
    with connect(empty_db) as conn:
        tables = conn.execute("SELECT table_schema, table_name FROM information_schema.tables "
                              "WHERE table_name LIKE 'checkpoint%' ORDER BY 2").fetchall()
    assert {s for s, _ in tables} == {"langgraph"}, tables


def test_memory_units_from_the_bench_table(empty_db: DatabaseURL) -> None:
    """Without a Hindsight server's data, the bench table stands in; a row holds at least its vector."""
    assert measure.hindsight_memory_units(empty_db) is None
    m = measure.bench_memory_units(empty_db, dim=384, rows=120)
    assert m.source.startswith("bench table jedisos_bench.")
    assert m.avg_tuple_bytes > 4 * 384  # vector(384) is 4 bytes a dimension plus a header
    assert m.bytes_per_unit > m.avg_tuple_bytes


def test_memory_units_at_1536_dimensions(empty_db: DatabaseURL) -> None:
    """--embedding-dim 1536 (OpenAI-size embeddings): a row holds a 6 KB vector."""
    m = measure.bench_memory_units(empty_db, dim=1536, rows=30)
    assert "vector(1536)" in m.source
    assert m.avg_tuple_bytes > 4 * 1536


def test_memory_units_from_a_hindsight_schema_uses_catalog_statistics(empty_db: DatabaseURL) -> None:
    """With a filled ``hindsight.memory_units`` the model measures it (from the catalog only)
    instead of the bench table; below ``min_rows`` it declines. The table here stands in for the
    real server's: the function reads ``reltuples`` and relation sizes, never the rows."""
    with connect(empty_db) as conn:
        conn.execute("CREATE SCHEMA hindsight")
        conn.execute("CREATE TABLE hindsight.memory_units (id bigserial PRIMARY KEY, text text NOT NULL)")
        conn.execute("INSERT INTO hindsight.memory_units (text) SELECT repeat('m', 200) FROM generate_series(1, 1500)")
        conn.execute("ANALYZE hindsight.memory_units")
    measured = measure.hindsight_memory_units(empty_db, min_rows=1000)
    assert measured is not None
    assert measured.count == 1500
    assert "Hindsight server's own memory_units" in measured.source
    # 200-byte text plus tuple header and the primary key index entry: a few hundred bytes a row.
    assert 200 < measured.bytes_per_unit < 1000
    assert measure.hindsight_memory_units(empty_db, min_rows=2000) is None


def test_schema_tables_reads_rows_and_bytes_from_the_catalog(empty_db: DatabaseURL) -> None:
    """Every table of a schema, its planner row count after ANALYZE and its bytes; other schemas left out."""
    with connect(empty_db) as conn:
        conn.execute("CREATE SCHEMA owner_x")
        conn.execute("CREATE TABLE owner_x.a (id int PRIMARY KEY, t text)")
        conn.execute("CREATE TABLE owner_x.b (id int)")
        conn.execute("INSERT INTO owner_x.a SELECT g, repeat('x', 100) FROM generate_series(1, 500) g")
    tables = measure.schema_tables(empty_db, "owner_x")
    assert sorted(tables) == ["a", "b"]
    assert (tables["a"].rows, tables["b"].rows) == (500, 0)
    assert tables["a"].total_bytes > 500 * 100 > tables["b"].total_bytes
