"""A schema's catalog as plain data, and a readable diff between two of them.

Used to prove that what Alembic builds equals the DDL the design documents: each object
(relation, column, index, constraint, view, sequence, trigger, function) becomes one entry
keyed by kind and name, and two snapshots are compared entry by entry.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from jedisos_db.runtime.db.connect import connect
from jedisos_db.runtime.urls import DatabaseURL

# Each query yields (key, {attribute: value}). Definitions go through pg_get_* so both sides
# are normalised by the same server, whatever spelling the source SQL used.
_QUERIES: dict[str, str] = {
    "relation": """
        SELECT c.relname, jsonb_build_object('kind', c.relkind::text)
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'v', 'm', 'p', 'f')
    """,
    "column": """
        SELECT c.relname || '.' || a.attname, jsonb_build_object(
            'position', row_number() OVER (PARTITION BY c.oid ORDER BY a.attnum),
            'type', format_type(a.atttypid, a.atttypmod),
            'not_null', a.attnotnull,
            'default', pg_get_expr(d.adbin, d.adrelid),
            'identity', a.attidentity::text,
            'generated', a.attgenerated::text,
            'collation', CASE WHEN a.attcollation <> t.typcollation THEN a.attcollation::regcollation::text END)
        FROM pg_attribute a
        JOIN pg_class c ON c.oid = a.attrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_type t ON t.oid = a.atttypid
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'v', 'm', 'p')
          AND a.attnum > 0 AND NOT a.attisdropped
    """,
    "index": """
        SELECT i.relname, jsonb_build_object(
            'table', t.relname,
            'definition', pg_get_indexdef(i.oid),
            'unique', x.indisunique,
            'primary', x.indisprimary,
            'predicate', pg_get_expr(x.indpred, x.indrelid))
        FROM pg_index x
        JOIN pg_class i ON i.oid = x.indexrelid
        JOIN pg_class t ON t.oid = x.indrelid
        JOIN pg_namespace n ON n.oid = i.relnamespace
        WHERE n.nspname = %(schema)s
    """,
    "constraint": """
        SELECT r.relname || '.' || c.conname, jsonb_build_object(
            'type', c.contype::text,
            'definition', pg_get_constraintdef(c.oid),
            'deferrable', c.condeferrable)
        FROM pg_constraint c
        JOIN pg_class r ON r.oid = c.conrelid
        JOIN pg_namespace n ON n.oid = c.connamespace
        WHERE n.nspname = %(schema)s AND c.contype <> 'n'
    """,
    "view": """
        SELECT c.relname, jsonb_build_object('definition', pg_get_viewdef(c.oid, true))
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = %(schema)s AND c.relkind IN ('v', 'm')
    """,
    "sequence": """
        SELECT c.relname, jsonb_build_object(
            'type', format_type(s.seqtypid, NULL),
            'owned_by', (SELECT r.relname || '.' || a.attname FROM pg_depend d
                         JOIN pg_class r ON r.oid = d.refobjid
                         JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
                         WHERE d.objid = c.oid AND d.deptype IN ('a', 'i') LIMIT 1))
        FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = %(schema)s
    """,
    "trigger": """
        SELECT r.relname || '.' || t.tgname, jsonb_build_object('definition', pg_get_triggerdef(t.oid))
        FROM pg_trigger t JOIN pg_class r ON r.oid = t.tgrelid
        JOIN pg_namespace n ON n.oid = r.relnamespace
        WHERE n.nspname = %(schema)s AND NOT t.tgisinternal
    """,
    "function": """
        SELECT p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')',
               jsonb_build_object('definition', pg_get_functiondef(p.oid))
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = %(schema)s
    """,
}


@dataclass(frozen=True)
class Change:
    kind: str
    name: str
    status: str  # "missing" | "extra" | "changed"
    expected: dict[str, Any] | None = None
    actual: dict[str, Any] | None = None

    def render(self) -> str:
        if self.status == "missing":
            return f"missing {self.kind} {self.name}: documented, but the migrated database has none"
        if self.status == "extra":
            return f"extra {self.kind} {self.name}: in the migrated database, not in the documented DDL"
        assert self.expected is not None
        assert self.actual is not None
        keys = sorted(set(self.expected) | set(self.actual))
        parts = [
            f"{k}: expected {self.expected.get(k)!r}, server had {self.actual.get(k)!r}"
            for k in keys
            if self.expected.get(k) != self.actual.get(k)
        ]
        return f"changed {self.kind} {self.name}: " + "; ".join(parts)


@dataclass(frozen=True)
class CatalogDiff:
    changes: list[Change] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.changes)

    def render(self) -> str:
        if not self.changes:
            return "catalogs are identical"
        return f"{len(self.changes)} difference(s):\n" + "\n".join(
            f"  - {change.render()}" for change in self.changes
        )


Snapshot = dict[tuple[str, str], dict[str, Any]]


def snapshot(url: DatabaseURL, schema: str, *, ignore: Iterable[str] = ()) -> Snapshot:
    """Every object of ``schema`` on the database at ``url``.

    ``ignore`` names relations to leave out together with everything that hangs off them
    (columns, indexes, constraints, sequences), e.g. the version table.
    """
    skip = set(ignore)
    out: Snapshot = {}
    with connect(url) as conn:
        for kind, query in _QUERIES.items():
            for name, attrs in conn.execute(query, {"schema": schema}).fetchall():
                owner = attrs.get("table") or attrs.get("owned_by") or name
                if str(owner).split(".")[0] in skip or str(name).split(".")[0] in skip:
                    continue
                out[(kind, str(name))] = dict(attrs)
    return out


def diff(expected: Snapshot, actual: Snapshot) -> CatalogDiff:
    changes: list[Change] = []
    for key in sorted(set(expected) | set(actual)):
        kind, name = key
        if key not in actual:
            changes.append(Change(kind, name, "missing", expected=expected[key]))
        elif key not in expected:
            changes.append(Change(kind, name, "extra", actual=actual[key]))
        elif expected[key] != actual[key]:
            changes.append(Change(kind, name, "changed", expected=expected[key], actual=actual[key]))
    return CatalogDiff(changes)


LOOSE_IN_PUBLIC = """
    SELECT 'relation', c.relname FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace
      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e')
    UNION ALL
    SELECT 'function', p.proname FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace
      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')
    UNION ALL
    SELECT 'type', t.typname FROM pg_type t WHERE t.typnamespace = 'public'::regnamespace
      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid IN (t.oid, t.typelem) AND d.deptype = 'e')
"""


def loose_in_public(url: DatabaseURL) -> list[tuple[str, str]]:
    """(kind, name) of every relation, function or type in ``public`` that no extension owns (design §1:
    public holds the shared extensions and nothing else)."""
    with connect(url) as conn:
        return [(str(kind), str(name)) for kind, name in conn.execute(LOOSE_IN_PUBLIC).fetchall()]
