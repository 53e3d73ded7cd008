"""A static scan of ``src/`` for direct SQL on the schemas JediSOS does not own (design §2, §3).

Parses every module with :mod:`ast` and reports, outside the sanctioned modules:

- string literals and f-strings (docstrings excepted) holding SQL that names a ``hindsight`` /
  ``langgraph`` object: schema-qualified names, their known table names in a SQL position,
  schema DDL on them, or a ``search_path`` pointing into them;
- SQLAlchemy / psycopg constructs aimed at them: ``schema="langgraph"`` keywords (``Table``,
  ``MetaData``, ``table()``), ``{"schema": "hindsight"}`` table args, ``sql.Identifier("langgraph")``;
- imports of Hindsight's server package (its models would be direct SQLAlchemy access).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

FOREIGN = ("hindsight", "langgraph")
SANCTIONED = ("*/jedisos_db/runtime/checkpointer.py", "*/jedisos_db/ops/hindsight.py",
              "*/jedisos_db/harness/hindsight/*.py",
              # backup checksums read every table of every schema by design, like pg_dump (read-only)
              "*/jedisos_db/ops/tablesums.py")
# LangGraph's tables (setup()) and the Hindsight tables the design names (§2) plus the real ones it misses.
FOREIGN_TABLES = ("checkpoints", "checkpoint_blobs", "checkpoint_writes", "checkpoint_migrations",
                  "memory_units", "banks", "entities", "entity_links", "memory_links", "unit_entities",
                  "entity_cooccurrences", "async_operations", "documents")

_F = "|".join(FOREIGN)
_SQL_WORD = re.compile(r"(?i)\b(select|insert|update|delete|from|join|into|table|truncate|alter|drop|create|"
                       r"grant|revoke|copy|vacuum|analyze|index|on)\b")
_QUALIFIED = re.compile(rf'(?i)(?<![\w.])"?({_F})"?\s*\.\s*"?[a-z_{{]')
_UNQUALIFIED = re.compile(rf'(?i)\b(from|join|into|update|table|truncate)\s+("?[\w{{}}]+"?\s*\.\s*)?'
                          rf'"?({"|".join(FOREIGN_TABLES)})"?\b')
_SCHEMA_DDL = re.compile(rf'(?i)^\s*(create|drop|alter|grant|revoke|comment)\b.*\bschema\s+'
                         rf'(if\s+(not\s+)?exists\s+)?"?({_F})"?\b', re.S)
_SEARCH_PATH = re.compile(rf'(?i)search_path\s*(=|to)\s*[\'"]?[^;]*?\b({_F})\b')


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    rule: str
    excerpt: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.rule}: {self.excerpt[:100]!r}"


def _literal_text(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):  # f-string: keep the constant parts, mark the holes
        return "".join(v.value if isinstance(v, ast.Constant) and isinstance(v.value, str) else "{}"
                       for v in node.values)
    return None


def _sql_rule(text: str) -> str | None:
    if _SCHEMA_DDL.search(text):
        return "DDL on a foreign schema"
    if _SEARCH_PATH.search(text):
        return "search_path into a foreign schema"
    if _SQL_WORD.search(text) and _QUALIFIED.search(text):
        return "SQL naming a foreign schema's object"
    if _UNQUALIFIED.search(text):
        return "SQL naming a foreign table"
    return None


def _callee(node: ast.Call) -> str:
    f = node.func
    return f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""


def _foreign(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.lower() in FOREIGN


def scan_source(source: str, path: str = "<string>") -> list[Finding]:
    tree = ast.parse(source)
    docstrings = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr)
                  and isinstance(n.value, ast.Constant) and isinstance(n.value.value, str)}
    inside_fstring = {id(v) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for v in n.values}
    found: list[Finding] = []

    def add(node: ast.AST, rule: str, excerpt: str) -> None:
        found.append(Finding(path, getattr(node, "lineno", 0), rule, excerpt))

    for node in ast.walk(tree):
        if id(node) in docstrings or id(node) in inside_fstring:
            continue
        text = _literal_text(node)
        if text is not None:
            rule = _sql_rule(text)
            if rule:
                add(node, rule, text)
        elif isinstance(node, ast.Call):
            for kw in node.keywords:
                if kw.arg == "schema" and _foreign(kw.value):
                    add(node, f"{_callee(node)}(schema=...) on a foreign schema", ast.unparse(node))
            if _callee(node) == "Identifier" and any(_foreign(a) for a in node.args):
                add(node, "sql.Identifier of a foreign schema", ast.unparse(node))
        elif isinstance(node, ast.Dict):
            for k, v in zip(node.keys, node.values, strict=True):
                if isinstance(k, ast.Constant) and k.value == "schema" and _foreign(v):
                    add(node, "table args on a foreign schema", ast.unparse(node))
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            for name in names:
                if name.split(".")[0] == "hindsight_api":
                    add(node, "imports Hindsight's server internals", name)
    return found


def scan_tree(root: Path) -> list[Finding]:
    """Findings in every module under ``root`` except the sanctioned ones."""
    found: list[Finding] = []
    for path in sorted(root.rglob("*.py")):
        if any(path.match(pattern) for pattern in SANCTIONED):
            continue
        found += scan_source(path.read_text(), str(path.relative_to(root.parent)))
    return found
