"""The write paths the audit and cost benches compare: :mod:`jedisos_db.harness.writepaths` (one copy, shared
with the per-design ``writes`` measurement), under the names ``bench/test_writes.py`` uses."""

from __future__ import annotations

from jedisos_db.harness.writepaths import (
    COLUMNS,
    KINDS,
    MODELS,
    REPOSITORIES,
    TABLES,
    Row,
    copy,
    generate,
    insert_sql,
    orm_per_row,
    repository_writers,
    single,
    tuples,
    writer_enqueue,
)

__all__ = ["COLUMNS", "KINDS", "MODELS", "REPOSITORIES", "TABLES", "Row", "copy", "generate", "insert_sql",
           "orm_per_row", "repository_writers", "single", "tuples", "writer_enqueue"]
