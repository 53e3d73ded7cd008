"""Design files: what one database design for JediSOS says about its database, so the same checks and
measurements can run against several designs side by side (issue 10).

A design is a TOML file validated against ``schemas/design.schema.json`` (every key is documented there).
The built-in ones ship in ``jedisos_db/designs/``: ``documented`` (the design document as written),
``recommended`` (this project's head), ``partitioned``, ``openai-1536``, ``split-hindsight``; a user-written
file is read the same way, and may start from another with ``extends``. A key left out takes the
project's own fact: retention windows from :data:`jedisos_db.runtime.retention.POLICY`, pool sizes from
:mod:`jedisos_db.ops.budget`, the embedding dimension from Hindsight's default.

Anything wrong in a file (TOML syntax, an unknown key, an impossible value, keys that contradict each
other, a missing file or revision) is one :class:`~jedisos_db.runtime.errors.ConfigError` whose field is
the key's dotted path and whose rule says what is wrong, e.g.
``server.max_conections: unknown key (did you mean 'max_connections'?) in my.toml``.

What a verify run needs: :func:`load` (name or path), :meth:`Design.build` on an empty database,
:meth:`Design.check_catalog`, :meth:`Design.budgets`, :meth:`Design.purge`, :attr:`Design.embedding_dim`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import functools
import json
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, cast

import jsonschema
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import event, text
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from jedisos_db.harness.hindsight.embeddings import DIMENSION
from jedisos_db.ops import budget, catalog, provision
from jedisos_db.runtime import partitions, retention
from jedisos_db.runtime.db import migrations
from jedisos_db.runtime.db.connect import connect
from jedisos_db.runtime.errors import ConfigError, InvalidInputError
from jedisos_db.runtime.owners import JEDISOS_SCHEMA, VERSION_TABLE
from jedisos_db.runtime.retention import RetentionRule, RuleResult
from jedisos_db.runtime.urls import DatabaseURL

DESIGNS_DIR: Final = Path(__file__).resolve().parents[1] / "designs"
ALEMBIC_PREFIX: Final = "@alembic/"
Method = Literal["documented-sql", "batched-delete", "partition-drop", "checkpointer-api"]
Placement = Literal["shared-database", "own-database", "own-server"]
DEFAULT_METHOD: Final[dict[str, Method]] = {retention.AUDIT_RULE.name: "batched-delete",
                                            retention.COST_RULE.name: "batched-delete",
                                            retention.THREAD_RULE.name: "checkpointer-api"}
"""How head's retention (``jedisos-db retention run``) carries out each rule."""


def schema_path() -> Path:
    """``schemas/design.schema.json``: in the wheel beside the package, else at the top of the source tree."""
    here = Path(__file__).resolve()
    for candidate in (here.parents[1] / "schemas", here.parents[3] / "schemas"):
        if (candidate / "design.schema.json").is_file():
            return candidate / "design.schema.json"
    raise ConfigError("design schema", f"schemas/design.schema.json not found near {here}; reinstall jedisos-db")


@functools.cache
def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json.loads(schema_path().read_text()))


def builtin_names() -> tuple[str, ...]:
    return tuple(sorted(p.stem for p in DESIGNS_DIR.glob("*.toml")))


@dataclass(frozen=True)
class SchemaSource:
    """Where the jedisos schema comes from."""

    source: Literal["migrations", "ddl"]
    revision: str = "head"
    versions: tuple[Path, ...] = ()
    ddl: Path | None = None
    partitioned: tuple[str, ...] = ()

    @property
    def built_revision(self) -> str | None:
        """The Alembic revision a build leaves the database at: ``revision``, or for ``head`` the head of this
        source's chain (``p010`` when ``versions`` continue ours); None for a DDL file, which has no version."""
        if self.source == "ddl":
            return None
        return migrations.head(versions=self.versions) if self.revision == "head" else self.revision


@dataclass(frozen=True)
class RuleSpec:
    rule: RetentionRule
    """The rule with the design's window (POLICY's unless the design sets ``keep_days``)."""
    method: Method


@dataclass(frozen=True)
class ServerSize:
    """The two settings a connection budget is counted against."""

    max_connections: int
    superuser_reserved: int = budget.POSTGRES_SUPERUSER_RESERVED


def server_size(url: DatabaseURL) -> ServerSize:
    """What the server at ``url`` really runs with (``SHOW max_connections``, its reserved superuser slots)."""
    with connect(url) as conn:
        row = conn.execute("SELECT current_setting('max_connections')::int, "
                           "current_setting('superuser_reserved_connections')::int").fetchone()
    assert row is not None
    return ServerSize(int(row[0]), int(row[1]))


@dataclass(frozen=True)
class Design:
    name: str
    description: str
    path: Path
    schema: SchemaSource
    max_connections: int
    superuser_reserved: int
    pools: tuple[budget.PoolDemand, ...]
    embedding_dim: int
    retention: Mapping[str, RuleSpec]
    hindsight_placement: Placement
    hindsight_max_connections: int | None
    banks: Literal["per-user", "shared"]

    def scratch_name(self, purpose: str) -> str:
        """The name of this design's fresh database for ``purpose`` (a race, an SQL capture)."""
        return f"jedisos_{purpose}_{self.name.replace('-', '_')}"

    @property
    def hindsight_own_server(self) -> bool:
        """Whether Hindsight gets a server of its own (``[hindsight] placement = "own-server"``)."""
        return self.hindsight_placement == "own-server"

    def budgets(self, sizes: Mapping[str, ServerSize] | None = None) -> dict[str, budget.BudgetVerdict]:
        """Connection budget per server: ``main`` (and ``hindsight`` when Hindsight has a server of its own),
        against the design file's sizes, or against ``sizes`` per server where given (what a running server
        reports: :func:`server_size`)."""
        given = dict(sizes or {})
        main = [p for p in self.pools if not (self.hindsight_own_server and p.owner == "hindsight")]
        size = given.get("main", ServerSize(self.max_connections, self.superuser_reserved))
        out = {"main": budget.connection_budget(main, max_connections=size.max_connections,
                                                superuser_reserved=size.superuser_reserved)}
        if self.hindsight_own_server and self.hindsight_max_connections is not None:
            size = given.get("hindsight", ServerSize(self.hindsight_max_connections))
            out["hindsight"] = budget.connection_budget([p for p in self.pools if p.owner == "hindsight"],
                                                        max_connections=size.max_connections,
                                                        superuser_reserved=size.superuser_reserved)
        return out

    def build(self, url: DatabaseURL) -> None:
        """Give the bootstrapped, empty database at ``url`` this design's jedisos schema."""
        if self.schema.source == "ddl":
            assert self.schema.ddl is not None
            with connect(url, autocommit=False) as conn:
                conn.execute(self.schema.ddl.read_text())  # the design's own file, as it is written
                conn.commit()
            return
        migrations.upgrade(url, self.schema.revision, versions=self.schema.versions)

    def migration_sql(self, url: DatabaseURL) -> str:
        """Build the design on the empty database at ``url`` and return the schema-changing statements it ran,
        in order, as one SQL script (for squawk-cli): what a live database would be put through. Reads and
        Alembic's own version-table bookkeeping are left out."""
        if self.schema.source == "ddl":
            assert self.schema.ddl is not None
            self.build(url)
            return self.schema.ddl.read_text()
        ran: list[str] = []

        def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            if is_schema_change(statement):
                ran.append(statement.strip().rstrip(";"))

        # Alembic's env.py builds its own engine, so listen on every Engine for the build's duration.
        event.listen(Engine, "before_cursor_execute", record)
        try:
            self.build(url)
        finally:
            event.remove(Engine, "before_cursor_execute", record)
        return "".join(f"{statement};\n\n" for statement in ran)

    def check_catalog(self, url: DatabaseURL) -> list[str]:
        """What in the built database contradicts the design file: each table's partitioning as the file
        says, nothing but extensions in ``public``. Empty when it holds."""
        problems = [f"public holds {kind} {name}, not an extension's" for kind, name in catalog.loose_in_public(url)]
        with connect(url) as conn:
            kinds = dict(conn.execute(
                "SELECT c.relname, c.relkind::text FROM pg_class c WHERE c.relnamespace = to_regnamespace(%s) "
                "AND c.relname = ANY(%s)", [JEDISOS_SCHEMA, list(partitions.TABLES)]).fetchall())
        for table in partitions.TABLES:
            want = "p" if table in self.schema.partitioned else "r"
            if kinds.get(table) != want:
                problems.append(f"{JEDISOS_SCHEMA}.{table}: relkind {kinds.get(table)!r}, the design says {want!r}")
        return problems

    async def purge(self, engine: AsyncEngine, rule: str, *, now: dt.datetime | None = None, count: bool = True,
                    on_removed: Callable[[], object] | None = None,
                    rest: float = partitions.DROP_REST) -> RuleResult:
        """Apply retention ``rule`` (``audit_logs`` or ``cost_tracking``) the way this design carries it out.

        ``on_removed`` is called once the expired rows are out of the table (a partition drop then still
        gives the detached months' disk space back). ``count=False`` lets a dropped audit partition go
        uncounted (the result's rows are then 0): a count scans the partition. ``rest``: how long a partition
        drop rests before each drop, in multiples of the step before (:data:`partitions.DROP_REST`)."""
        spec = self.retention.get(rule)
        if spec is None or rule == retention.THREAD_RULE.name:
            raise InvalidInputError("rule", f"must be one of {sorted(partitions.TABLES)}, got {rule!r}")
        if spec.method == "partition-drop":
            return await partitions.drop_expired_partitions(engine, rule, now=now, rule=spec.rule, count=count,
                                                            on_removed=on_removed, rest=rest)
        if spec.method == "batched-delete":
            purge = retention.purge_audit_logs if rule == retention.AUDIT_RULE.name else retention.roll_up_cost_tracking
            result = await purge(engine, now=now, rule=spec.rule)
        else:
            if now is not None:
                raise InvalidInputError("now", "the documented SQL runs as written, against the server's NOW()")
            async with engine.begin() as conn:
                rows = int((await conn.execute(text(retention.DOCUMENTED_SQL[rule]))).rowcount)
            result = RuleResult(rule, "design §7's DELETE, as written", rows, 1, False)
        if on_removed is not None:
            on_removed()
        return result


def is_schema_change(statement: str) -> bool:
    """Whether a statement a migration ran changes the schema (or its data): not a read, not Alembic's own
    version-table bookkeeping."""
    words = statement.lstrip().split(None, 1)
    return bool(words) and words[0].upper() not in ("SELECT", "WITH") and VERSION_TABLE not in statement


# --- reading a file --------------------------------------------------------------------------------


def _key_path(parts: Sequence[Any]) -> str:
    return ".".join(str(p) for p in parts) or "(top level)"


def _schema_error(error: jsonschema.ValidationError, where: Path) -> ConfigError:
    """One validation error as a ConfigError naming the key and the rule."""
    at = list(error.absolute_path)
    suffix = f" in {where}"
    # jsonschema types these as possibly unset; a raised error always carries them.
    schema = cast(dict[str, Any], error.schema)
    instance: Any = error.instance
    rule_value: Any = error.validator_value
    if error.validator == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        unknown = sorted(set(instance) - set(allowed))[0]
        close = difflib.get_close_matches(unknown, allowed, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else f" (allowed: {', '.join(allowed)})"
        return ConfigError(_key_path([*at, unknown]), f"unknown key{hint}{suffix}")
    if error.validator == "required":
        missing = next(k for k in rule_value if k not in instance)
        return ConfigError(_key_path([*at, missing]), f"is required here{suffix}")
    if error.validator == "not" and isinstance(instance, dict):
        banned = json.dumps(rule_value)
        present = sorted(k for k in instance if f'"{k}"' in banned)
        return ConfigError(_key_path([*at, *present[:1]]), f"not allowed with the other keys of "
                                                           f"{_key_path(at)} (see design.schema.json){suffix}")
    if error.validator == "enum":
        choices = ", ".join(repr(c) for c in rule_value)
        return ConfigError(_key_path(at), f"must be one of {choices}, got {instance!r}{suffix}")
    return ConfigError(_key_path(at), f"{error.message}{suffix}")


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError("design", f"no design file {path} (built-in designs: {', '.join(builtin_names())})")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), f"not valid TOML: {exc}") from None


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _locate(ref: str, relative_to: Path) -> Path:
    """A design reference: a built-in name, or a path relative to the referring file's directory."""
    if ref in builtin_names():
        return DESIGNS_DIR / f"{ref}.toml"
    return (relative_to / ref).resolve()


def _resolved(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The file's document with ``extends`` applied (relative paths made absolute first)."""
    if path in seen:
        raise ConfigError("extends", f"designs extend each other in a circle: {' -> '.join(map(str, (*seen, path)))}")
    doc = _read(path)
    schema = doc.get("schema")
    if isinstance(schema, dict):
        if isinstance(schema.get("versions"), list):
            schema["versions"] = [str(_version_dir(v, path.parent)) if isinstance(v, str) else v
                                  for v in schema["versions"]]
        if isinstance(schema.get("ddl"), str):
            schema["ddl"] = str((path.parent / schema["ddl"]).resolve())
    ref = doc.pop("extends", None)
    if ref is None:
        return doc
    if not isinstance(ref, str):
        raise ConfigError("extends", f"must be a design name or path, got {ref!r} in {path}")
    base = _resolved(_locate(ref, path.parent), (*seen, path))
    base.pop("name", None)
    base.pop("description", None)
    return _merge(base, doc)


def _version_dir(ref: str, relative_to: Path) -> Path:
    if ref.startswith(ALEMBIC_PREFIX):
        return migrations.script_location() / ref.removeprefix(ALEMBIC_PREFIX)
    return (relative_to / ref).resolve()


def _schema_source(doc: Mapping[str, Any], where: Path) -> SchemaSource:
    source = SchemaSource(doc["source"], doc.get("revision", "head"), tuple(Path(v) for v in doc.get("versions", ())),
                          Path(doc["ddl"]) if "ddl" in doc else None, tuple(doc.get("partitioned", ())))
    for directory in source.versions:
        if not directory.is_dir():
            raise ConfigError("schema.versions", f"no such directory {directory} in {where}")
    if source.ddl is not None and not source.ddl.is_file():
        raise ConfigError("schema.ddl", f"no such file {source.ddl} in {where}")
    if source.source == "migrations":
        scripts = ScriptDirectory.from_config(migrations.alembic_config(versions=source.versions))
        try:
            scripts.get_revisions(source.revision)
        except CommandError as exc:
            raise ConfigError("schema.revision", f"{source.revision!r} is not a known revision ({exc}) in {where}") \
                from None
    return source


def _retention(doc: Mapping[str, Any], schema: SchemaSource, where: Path) -> dict[str, RuleSpec]:
    out = {}
    for rule in retention.POLICY:
        given = doc.get(rule.name, {})
        method = cast(Method, given.get("method", DEFAULT_METHOD[rule.name]))
        if method == "partition-drop" and rule.name not in schema.partitioned:
            raise ConfigError(f"retention.{rule.name}.method", f"'partition-drop' needs {rule.name!r} in "
                                                               f"schema.partitioned in {where}")
        keep = dt.timedelta(days=given["keep_days"]) if "keep_days" in given else rule.keep
        out[rule.name] = RuleSpec(dataclasses.replace(rule, keep=keep), method)
    return out


def load(design: str | Path) -> Design:
    """A built-in design by name, or a design file by path; one :class:`ConfigError` when it is wrong."""
    path = _locate(design, Path.cwd()) if isinstance(design, str) else design.resolve()
    doc = _resolved(path)
    error = jsonschema.exceptions.best_match(_validator().iter_errors(doc))
    if error is not None:
        raise _schema_error(error, path)
    schema = _schema_source(doc["schema"], path)
    pools = doc.get("pools", {})
    hindsight, langgraph, jedisos = (pools.get(k, {}) for k in ("hindsight", "langgraph", "jedisos"))
    read_database = hindsight.get("read_database", False)
    if "read_max" in hindsight and not read_database:
        raise ConfigError("pools.hindsight.read_max", "only applies with pools.hindsight.read_database = true "
                                                      "(Hindsight opens no read pool without a read database) "
                                                      f"in {path}")
    demands = budget.design_pools(
        hindsight_processes=hindsight.get("processes", 1),
        hindsight_pool_max=hindsight.get("max", budget.HINDSIGHT_POOL_MAX),
        hindsight_read_database=read_database,
        hindsight_read_pool_max=hindsight.get("read_max", budget.HINDSIGHT_READ_POOL_MAX),
        langgraph_max=langgraph.get("max", budget.DESIGN_LANGGRAPH_MAX),
        langgraph_processes=langgraph.get("processes", 1),
        jedisos_processes=jedisos.get("processes", 1),
        jedisos_pool_size=jedisos.get("pool_size", budget.DESIGN_JEDISOS_POOL_SIZE),
        jedisos_max_overflow=jedisos.get("max_overflow", budget.DESIGN_JEDISOS_MAX_OVERFLOW))
    server = doc.get("server", {})
    placement = doc.get("hindsight", {})
    return Design(
        name=doc["name"], description=" ".join(doc["description"].split()), path=path, schema=schema,
        max_connections=server.get("max_connections", budget.DESIGN_MAX_CONNECTIONS),
        superuser_reserved=server.get("superuser_reserved_connections", budget.POSTGRES_SUPERUSER_RESERVED),
        pools=tuple(demands), embedding_dim=doc.get("embedding", {}).get("dimension", DIMENSION),
        retention=_retention(doc.get("retention", {}), schema, path),
        hindsight_placement=placement.get("placement", "shared-database"),
        hindsight_max_connections=placement.get("max_connections"),
        banks=placement.get("banks", "per-user"),
    )


def load_all(designs: Sequence[str | Path]) -> list[Design]:
    """Several designs (``--design A --design B``); their names must differ, since results are keyed by them."""
    loaded = [load(d) for d in designs]
    names = [d.name for d in loaded]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError("--design", f"each design must have its own name; given twice: {', '.join(twice)}")
    return loaded


def write_migration_sql(server_url: DatabaseURL, loaded: Sequence[Design], out_dir: Path) -> list[Path]:
    """``out_dir/<design>.sql`` for each design: the statements its migrations run on a fresh database of
    the server at ``server_url`` (created and dropped here), for squawk-cli (``nox -s squawk``)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for design in loaded:
        with provision.scratch_database(server_url, design.scratch_name("sql")) as url:
            path = out_dir / f"{design.name}.sql"
            path.write_text(f"-- {design.name}: {design.description}\n\n{design.migration_sql(url)}")
            written.append(path)
    return written
