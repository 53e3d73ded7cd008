"""Row counts and checksums of every table in some schemas: what a backup's manifest records.

This reads every row of every table it is given, the ``hindsight`` and ``langgraph`` ones included,
exactly as ``pg_dump`` does: a backup reads every schema by design. It is therefore one of the
modules the "never direct SQL on the other owners' schemas" scan sanctions
(``tests/conformance/source_scan.py``), and it only ever reads.

A table's checksum is order-independent: the md5 of each row's text form, summed server-side as
two 64-bit halves (numeric, so the sum never overflows), then hashed with the row count. The same
rows give the same checksum whatever their physical order, so one sequential scan per table is
enough: no sort, no collation, constant memory, and tables without a primary key work too. The
row text depends on a few session settings (time zone, date and float output); they are pinned
here so the source and a restored copy on another server format every value alike.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

OUTPUT_SETTINGS: dict[str, str] = {
    "TimeZone": "UTC",
    "DateStyle": "ISO, YMD",
    "IntervalStyle": "postgres",
    "extra_float_digits": "1",
    "bytea_output": "hex",
}
"""Settings that change how a row prints; pinned (transaction-local) while checksumming."""

_TABLES = """
    SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = ANY(%s) AND c.relkind = 'r'
      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                      AND d.objid = c.oid AND d.deptype = 'e')
    ORDER BY 1, 2
"""

_SUM = """
    SELECT count(*),
           coalesce(sum(('x' || substr(h, 1, 16))::bit(64)::bigint::numeric), 0),
           coalesce(sum(('x' || substr(h, 17, 16))::bit(64)::bigint::numeric), 0)
    FROM (SELECT md5(t::text) AS h FROM {}.{} AS t) AS rows
"""


@dataclass(frozen=True)
class TableSum:
    schema: str
    table: str
    rows: int
    checksum: str

    @property
    def name(self) -> str:
        return f"{self.schema}.{self.table}"


def tables(conn: psycopg.Connection[Any], schemas: Sequence[str]) -> list[tuple[str, str]]:
    """Ordinary tables of ``schemas`` (partitions included, extension-owned tables left out)."""
    return [(str(s), str(t)) for s, t in conn.execute(_TABLES, [list(schemas)]).fetchall()]


def table_sums(conn: psycopg.Connection[Any], schemas: Sequence[str], *,
               lock_timeout_ms: int | None = None) -> list[TableSum]:
    """Count and checksum every table of ``schemas``, in the caller's transaction (and snapshot) if any.

    ``lock_timeout_ms`` bounds the wait for each table's ACCESS SHARE lock (e.g. behind a migration).
    """
    out: list[TableSum] = []
    with conn.transaction():
        settings = dict(OUTPUT_SETTINGS)
        if lock_timeout_ms is not None:
            settings["lock_timeout"] = f"{lock_timeout_ms}ms"
        for name, value in settings.items():
            conn.execute("SELECT set_config(%s, %s, true)", [name, value])
        for schema, table in tables(conn, schemas):
            row = conn.execute(sql.SQL(_SUM).format(sql.Identifier(schema), sql.Identifier(table))).fetchone()
            assert row is not None  # an aggregate always returns a row
            rows, high, low = int(row[0]), int(row[1]), int(row[2])
            digest = hashlib.md5(f"{rows}:{high}:{low}".encode(), usedforsecurity=False).hexdigest()
            out.append(TableSum(schema, table, rows, digest))
    return out
