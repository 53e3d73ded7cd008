"""Design files (issue 10): the built-ins load, the schema documents every key, bad files fail in one line."""

from __future__ import annotations

import datetime as dt
import json
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from jedisos_db.harness import designs
from jedisos_db.harness.hindsight.embeddings import DIMENSION
from jedisos_db.ops import budget
from jedisos_db.runtime import partitions, retention
from jedisos_db.runtime.db import migrations
from jedisos_db.runtime.errors import ConfigError
from jedisos_db.runtime.owners import OWNERS

BUILTINS = ("documented", "openai-1536", "partitioned", "recommended", "split-hindsight")


def _schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(designs.schema_path().read_text())
    return loaded


def _write(tmp_path: Path, body: str, name: str = "mine.toml") -> Path:
    path = tmp_path / name
    path.write_text(body)
    return path


def _error(path: Path | str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        designs.load(path)
    assert "\n" not in str(caught.value)
    return caught.value


def test_the_builtins_are_the_five_designs() -> None:
    assert designs.builtin_names() == BUILTINS


@pytest.mark.parametrize("name", BUILTINS)
def test_each_builtin_loads_and_its_file_validates(name: str) -> None:
    design = designs.load(name)
    assert design.name == name
    assert design.path == designs.DESIGNS_DIR / f"{name}.toml"
    raw = tomllib.loads(design.path.read_text())
    if "extends" not in raw:  # a complete file is a valid document by itself
        jsonschema.Draft202012Validator(_schema()).validate(raw)


def test_what_each_builtin_says() -> None:
    documented, recommended, part, openai, split = (designs.load(n) for n in
                                                    ("documented", "recommended", "partitioned", "openai-1536",
                                                     "split-hindsight"))
    assert documented.schema.revision == "006"
    assert {r: s.method for r, s in documented.retention.items()} == {
        "audit_logs": "documented-sql", "cost_tracking": "documented-sql", "langgraph_threads": "checkpointer-api"}
    # design §1's 200 connections hold Hindsight's default pool (no read database, so no read pool) and the
    # design's own: 100 + 10 + 15 of 197.
    assert (documented.budgets()["main"].demand, documented.budgets()["main"].headroom) == (125, 72)
    assert not any(p.name == "hindsight asyncpg read pool" for d in (documented, recommended, split) for p in d.pools)
    assert recommended.budgets()["main"].fits
    assert part.schema.partitioned == ("audit_logs", "cost_tracking")
    assert part.schema.versions == (migrations.script_location() / "variants" / "partitioned",)
    assert part.retention["audit_logs"].method == "partition-drop"
    assert part.pools == recommended.pools  # inherited through extends
    assert (openai.embedding_dim, recommended.embedding_dim) == (1536, DIMENSION)
    assert split.hindsight_placement == "own-server"
    assert set(split.budgets()) == {"main", "hindsight"}
    assert all(p.owner != "hindsight" for p in split.budgets()["main"].pools)
    assert split.budgets()["hindsight"].demand == 100


def test_omitted_keys_take_the_projects_facts(tmp_path: Path) -> None:
    design = designs.load(_write(tmp_path, 'name = "bare"\ndescription = "x"\n[schema]\nsource = "migrations"\n'))
    assert {name: spec.rule for name, spec in design.retention.items()} == {r.name: r for r in retention.POLICY}
    assert list(design.pools) == budget.design_pools()
    assert (design.max_connections, design.superuser_reserved) == (budget.DESIGN_MAX_CONNECTIONS,
                                                                   budget.POSTGRES_SUPERUSER_RESERVED)
    assert design.embedding_dim == DIMENSION
    assert (design.hindsight_placement, design.banks, design.schema.revision) == ("shared-database", "per-user",
                                                                                  "head")


def test_a_user_written_design_runs_without_code_changes(tmp_path: Path) -> None:
    """Issue 10: `recommended` with max_connections = 100, written two ways."""
    copied = (designs.DESIGNS_DIR / "recommended.toml").read_text()
    assert "max_connections = 200" in copied
    whole = designs.load(_write(tmp_path, copied.replace('name = "recommended"', 'name = "small"')
                                .replace("max_connections = 200", "max_connections = 100"), "whole.toml"))
    extended = designs.load(_write(tmp_path, 'name = "small"\nextends = "recommended"\ndescription = "x"\n'
                                             "[server]\nmax_connections = 100\n"))
    recommended = designs.load("recommended")
    for design in (whole, extended):
        assert design.max_connections == 100
        assert design.budgets()["main"].available == 97
        assert design.pools == recommended.pools
        assert design.retention == recommended.retention


def test_a_read_database_counts_hindsights_read_pool(tmp_path: Path) -> None:
    """Hindsight opens its read pool only with a read database: a design saying so counts it (read_max, else
    Hindsight's default 100) against the server that holds Hindsight."""
    sized = designs.load(_write(tmp_path, 'name = "r"\nextends = "recommended"\ndescription = "x"\n'
                                          "[pools.hindsight]\nread_database = true\nread_max = 30\n"))
    read = [p for p in sized.pools if p.name == "hindsight asyncpg read pool"]
    assert [(p.max_per_process, p.processes, p.owner) for p in read] == [(30, 1, "hindsight")]
    recommended = designs.load("recommended").budgets()["main"]
    assert sized.budgets()["main"].demand == recommended.demand + 30
    default = designs.load(_write(tmp_path, 'name = "d"\nextends = "documented"\ndescription = "x"\n'
                                            "[pools.hindsight]\nread_database = true\n"))
    main = default.budgets()["main"]
    assert (main.demand, main.fits) == (100 + budget.HINDSIGHT_READ_POOL_MAX + 10 + 15, False)


def test_keep_days_overrides_the_policy_window(tmp_path: Path) -> None:
    design = designs.load(_write(tmp_path, 'name = "short"\nextends = "recommended"\ndescription = "x"\n'
                                           "[retention.audit_logs]\nkeep_days = 30\n"))
    assert design.retention["audit_logs"].rule.keep == dt.timedelta(days=30)
    assert design.retention["audit_logs"].rule.only_severities == retention.AUDIT_RULE.only_severities
    assert design.retention["cost_tracking"].rule == retention.COST_RULE


def test_a_typo_fails_in_one_line_naming_the_key(tmp_path: Path) -> None:
    error = _error(_write(tmp_path, 'name = "t"\nextends = "recommended"\ndescription = "x"\n'
                                    "[server]\nmax_conections = 100\n"))
    assert error.field == "server.max_conections"
    assert "unknown key (did you mean 'max_connections'?)" in str(error)
    assert str(tmp_path / "mine.toml") in str(error)


@pytest.mark.parametrize(("body", "field", "rule"), [
    ("[embedding]\ndimension = 0\n", "embedding.dimension", "less than the minimum of 1"),
    ("[embedding]\ndimension = 4096\n", "embedding.dimension", "greater than the maximum of 2000"),
    ("[pools.jedisos]\npool_size = 0\n", "pools.jedisos.pool_size", "less than the minimum"),
    ("[pools.jedisos]\npool_size = \"5\"\n", "pools.jedisos.pool_size", "is not of type 'integer'"),
    ("[retention.audit_logs]\nmethod = \"truncate\"\n", "retention.audit_logs.method", "must be one of"),
    ("[retention.audit_logs]\nmethod = \"partition-drop\"\n", "retention.audit_logs.method",
     "needs 'audit_logs' in schema.partitioned"),
    ("[retention.audit_logs]\nmethod = \"documented-sql\"\nkeep_days = 30\n", "retention.audit_logs.keep_days",
     "not allowed"),
    ("[hindsight]\nplacement = \"own-server\"\n", "hindsight.max_connections", "is required here"),
    ("[schema]\nrevision = \"042\"\n", "schema.revision", "not a known revision"),
    ("[schema]\nsource = \"ddl\"\n", "schema.ddl", "is required here"),
    ("[schema]\nversions = [\"nowhere\"]\n", "schema.versions", "no such directory"),
    ("[pools.hindsight]\nmax = 10\nmin = 1\n", "pools.hindsight.min", "unknown key"),
    ("[pools.hindsight]\nread_max = 40\n", "pools.hindsight.read_max",
     "only applies with pools.hindsight.read_database = true"),
    ("[pools.hindsight]\nread_database = false\nread_max = 40\n", "pools.hindsight.read_max",
     "only applies with pools.hindsight.read_database = true"),
    ("[pools.hindsight]\nread_database = \"yes\"\n", "pools.hindsight.read_database", "is not of type 'boolean'"),
    ("[pools.mcp]\nmax = 1\n", "pools.mcp", "unknown key (allowed: hindsight, jedisos, langgraph)"),
])
def test_an_impossible_value_fails_naming_the_key_and_the_rule(tmp_path: Path, body: str, field: str,
                                                              rule: str) -> None:
    error = _error(_write(tmp_path, f'name = "t"\nextends = "recommended"\ndescription = "x"\n{body}'))
    assert error.field == field, str(error)
    assert rule in error.rule, str(error)


def test_unreadable_files_fail_in_one_line(tmp_path: Path) -> None:
    assert "not valid TOML" in str(_error(_write(tmp_path, "name = \n")))
    assert "no design file" in str(_error(tmp_path / "absent.toml"))
    assert "built-in designs: documented" in str(_error("no-such-design"))
    _write(tmp_path, 'name = "a"\ndescription = "x"\nextends = "b.toml"\n', "a.toml")
    _write(tmp_path, 'name = "b"\ndescription = "x"\nextends = "a.toml"\n', "b.toml")
    assert _error(tmp_path / "a.toml").field == "extends"
    assert _error(_write(tmp_path, 'description = "x"\n[schema]\nsource = "migrations"\n')).field == "name"
    with pytest.raises(ConfigError, match="given twice: recommended"):
        designs.load_all(["recommended", "recommended"])


def _properties(node: dict[str, Any], defs: dict[str, Any], at: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    for key, sub in node.get("properties", {}).items():
        if "$ref" in sub:
            sub = {**defs[sub["$ref"].rsplit("/", 1)[-1]], **{k: v for k, v in sub.items() if k != "$ref"}}
        yield f"{at}{key}", sub
        yield from _properties(sub, defs, f"{at}{key}.")


def test_the_schema_documents_every_key_and_names_what_the_code_knows() -> None:
    schema = _schema()
    keys = dict(_properties(schema, schema["$defs"]))
    undocumented = [k for k, sub in keys.items() if "description" not in sub and "properties" not in sub]
    assert not undocumented, undocumented
    # Names the schema spells out are the ones the code's one-place facts hold.
    assert set(schema["properties"]["pools"]["properties"]) == set(OWNERS)
    assert set(schema["properties"]["retention"]["properties"]) == {r.name for r in retention.POLICY}
    assert set(schema["properties"]["schema"]["properties"]["partitioned"]["items"]["enum"]) == set(partitions.TABLES)
    assert set(designs.DEFAULT_METHOD) == {r.name for r in retention.POLICY}
