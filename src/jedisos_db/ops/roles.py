"""Least-privilege login roles: one per owner, each owning only its schema (design §1, §10).

``jedisos_app`` owns ``jedisos``, ``langgraph_app`` owns ``langgraph``, ``hindsight_app`` owns
``hindsight``; none has any right in the other two schemas, none may CREATE in ``public``, and
none may create databases; only ``hindsight_app`` may create schemas (see :data:`SCHEMA_CREATORS`).
The superuser running :func:`create_roles` installs the
extensions that only a superuser may install (``vector`` is not trusted) or that the owners'
migrations expect to find (``pg_trgm``, ``btree_gin`` for Hindsight), all in ``public``.

Passwords are generated (or taken from the caller) and sent to the server only as SCRAM
verifiers computed client-side by libpq, so the clear text never appears in a statement the
server could log. They are returned to the caller, never logged or stored; a generated one is
marked so that the CLI shows it once (or writes it to a file only the user can read). Existing
roles keep their password unless the caller gives one or asks to ``rotate``.

The database CREATE right that Hindsight needs (see :data:`SCHEMA_CREATORS`) would let its role
create a schema named after another role, e.g. ``postgres``: the default search_path is
``"$user", public``, so a function ``lower(varchar)`` planted there (an exact match, preferred
over ``pg_catalog.lower(text)``) would run whenever that superuser calls ``lower`` on a varchar
in this database. :data:`SCHEMA_GUARD` refuses the plant itself; see its note for why that and
not a search_path setting.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from jedisos_db.ops import provision
from jedisos_db.runtime.db.connect import connect
from jedisos_db.runtime.errors import ConfigError, NotFoundError
from jedisos_db.runtime.owners import MIGRATION_LOCK_KEY, SCHEMA
from jedisos_db.runtime.urls import DatabaseURL

OWNERS: tuple[str, ...] = ("jedisos", "langgraph", "hindsight")
"""The three owners, each named after (and owning) the schema of the same name."""

DEFAULT_ROLES: dict[str, str] = {owner: f"{owner}_app" for owner in OWNERS}
SUPERUSER_EXTENSIONS: tuple[str, ...] = ("vector", "pg_trgm", "btree_gin")
SCHEMA_CREATORS: tuple[str, ...] = ("hindsight",)
"""Owners whose own migrations cannot run without the database CREATE right: Hindsight's
alembic env.py runs ``CREATE SCHEMA IF NOT EXISTS "hindsight"`` unconditionally, and PostgreSQL
checks that right before it looks whether the schema exists. It lets the role create *new*
schemas; it still has no right in ``jedisos`` or ``langgraph``."""

SCHEMA_GUARD = "jedisos_guard_schema_names"
"""Event trigger (and its function, owned by the superuser in :data:`GUARD_SCHEMA`) refusing any
schema a non-superuser creates or renames to the name of *another* role. Why an event trigger rather than
revoking database CREATE, pre-creating schemas named after privileged roles, or setting the
database's search_path:

- Hindsight's env.py needs database CREATE at every start (its server migrates on start-up), so
  the right cannot be granted only for one migration run;
- schemas pre-created for today's superusers do not protect a role created tomorrow;
- ``ALTER DATABASE … SET search_path`` is overridden by any role-level setting and by a client's
  own ``SET``; the guard holds whatever path a session uses, for every role, present or future.

A role may still create a schema named after itself: only its own "$user" path sees it."""
GUARD_SCHEMA = "jedisos_guard"
"""The superuser's own schema for the guard: ``public`` holds extensions only (design §1), and a
function in a schema an owner role owns could be dropped by that role. PUBLIC has no right in it."""

_GUARD_FUNCTION = """
CREATE FUNCTION {schema}.{guard}() RETURNS event_trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $guard$
DECLARE
    planted name;
BEGIN
    IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        RETURN;
    END IF;
    SELECT n.nspname INTO planted
      FROM pg_event_trigger_ddl_commands() c JOIN pg_namespace n ON n.oid = c.objid
     WHERE c.classid = 'pg_namespace'::regclass
       AND EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = n.nspname AND r.rolname <> current_user)
     LIMIT 1;
    IF planted IS NOT NULL THEN
        RAISE EXCEPTION 'schema % is named after another role: its "$user" search_path would run what is '
                        'put there', planted
              USING ERRCODE = 'insufficient_privilege';
    END IF;
END
$guard$
"""

# Each role's search_path is set on the role itself so it survives PgBouncer (which drops the
# `options` startup parameter). ``public`` stays on the path where the owner uses extension
# types (vector, trigram operators); LangGraph needs none, so its path is its schema alone.
_SEARCH_PATH: dict[str, tuple[str, ...]] = {
    "jedisos": (SCHEMA, "public"),
    "langgraph": ("langgraph",),
    "hindsight": ("hindsight", "public"),
}


@dataclass(frozen=True)
class RoleGrant:
    """One owner's login role. ``password`` is set only when this run chose or changed it."""

    owner: str
    role: str
    schema: str
    created: bool
    password: str | None = field(default=None, repr=False)
    generated: bool = False
    """True when ``password`` was generated in this run: nothing else holds it, nowhere is it stored."""

    def url(self, admin_url: DatabaseURL) -> DatabaseURL:
        """``admin_url`` with this role as the user (and its password when known)."""
        return admin_url.with_user(self.role, self.password)


@dataclass(frozen=True)
class RolesReport:
    database: str
    grants: list[RoleGrant]
    public_create_revoked: bool
    schema_creators: tuple[str, ...] = ()

    def by_owner(self, owner: str) -> RoleGrant:
        for grant in self.grants:
            if grant.owner == owner:
                return grant
        raise NotFoundError(f"roles report: no grant for owner {owner!r}")


def _role_names(names: Mapping[str, str] | None) -> dict[str, str]:
    chosen = dict(DEFAULT_ROLES)
    for owner, role in (names or {}).items():
        if owner not in OWNERS:
            raise ConfigError(f"roles.{owner}", f"unknown owner; expected one of {', '.join(OWNERS)}")
        if not role or len(role) > 63 or not role.replace("_", "").isalnum() or role[0].isdigit():
            raise ConfigError(f"roles.{owner}", f"{role!r} is not a plain role name ([A-Za-z_][A-Za-z0-9_]*, ≤63)")
        chosen[owner] = role
    if len(set(chosen.values())) != len(chosen):
        raise ConfigError("roles", f"each owner needs its own role, got {chosen}")
    return chosen


def _verifier(conn: psycopg.Connection[Any], role: str, password: str) -> str:
    """The SCRAM verifier of ``password``, computed by libpq on the client."""
    return conn.pgconn.encrypt_password(password.encode(), role.encode(), b"scram-sha-256").decode()


def create_roles(url: DatabaseURL, *, names: Mapping[str, str] | None = None,
                 passwords: Mapping[str, str] | None = None,
                 schema_creators: Collection[str] = SCHEMA_CREATORS, rotate: bool = False) -> RolesReport:
    """Create (or re-align) the three owner roles on the database of ``url`` (a superuser URL).

    Idempotent: existing roles keep their password unless one is given in ``passwords`` or
    ``rotate`` asks for a new generated one;
    an existing schema is handed to its role together with every relation and function in it.
    """
    roles = _role_names(names)
    given = dict(passwords or {})
    creators = tuple(schema_creators)
    for owner in creators:
        if owner not in OWNERS:
            raise ConfigError("schema_creators", f"unknown owner {owner!r}; expected one of {', '.join(OWNERS)}")
    for owner in given:
        if owner not in OWNERS:
            raise ConfigError(f"passwords.{owner}", f"unknown owner; expected one of {', '.join(OWNERS)}")
    grants: list[RoleGrant] = []
    with connect(url) as conn:
        su = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
        if not su or not su[0]:
            raise ConfigError("--dsn", "must connect as a superuser: it installs `vector` and hands schemas over")
        database = str(conn.execute("SELECT current_database()").fetchone()[0])  # type: ignore[index]
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", [MIGRATION_LOCK_KEY])
            for ext in SUPERUSER_EXTENSIONS:
                provision.ensure_extension(conn, ext, schema="public")
            # PG15+ already ships this; stated so older clusters and edited ones end the same.
            conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
            # PUBLIC's default CONNECT and TEMPORARY on the database go too: only the owner roles
            # (granted below) and superusers connect. EXECUTE on functions stays with PUBLIC: the
            # extensions' functions (vector operators, trigram) are what the owners call, and no
            # owner can create a function anywhere the others' search_path reaches.
            conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(database)))
            _install_schema_guard(conn)
            for owner in OWNERS:
                grants.append(_align_role(conn, database, owner, roles[owner], given.get(owner), rotate=rotate))
            for grant in grants:
                verb = "GRANT" if grant.owner in creators else "REVOKE"
                conn.execute(sql.SQL(verb + " CREATE ON DATABASE {} " + ("TO" if verb == "GRANT" else "FROM") + " {}")
                             .format(sql.Identifier(database), sql.Identifier(grant.role)))
                for other in OWNERS:
                    if other != grant.owner:
                        conn.execute(sql.SQL("REVOKE ALL ON SCHEMA {} FROM {}").format(
                            sql.Identifier(other), sql.Identifier(grant.role)))
        public_create = conn.execute(
            "SELECT bool_or(has_schema_privilege(r, 'public', 'CREATE')) FROM unnest(%s::text[]) r",
            [[g.role for g in grants]]).fetchone()
    revoked = not (public_create and public_create[0])
    if not revoked:
        raise ConfigError("public", "an owner role can still CREATE in schema public (check its memberships)")
    return RolesReport(database=database, grants=grants, public_create_revoked=revoked, schema_creators=creators)


def _install_schema_guard(conn: psycopg.Connection[Any]) -> None:
    guard, schema = sql.Identifier(SCHEMA_GUARD), sql.Identifier(GUARD_SCHEMA)
    # Rebuilt from nothing on every run: a schema of that name made meanwhile by a role with
    # database CREATE (and anything it put there) must not become, or hide in, the guard.
    conn.execute(sql.SQL("DROP EVENT TRIGGER IF EXISTS {}").format(guard))
    conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(schema))
    conn.execute(sql.SQL("CREATE SCHEMA {}").format(schema))
    conn.execute(sql.SQL("REVOKE ALL ON SCHEMA {} FROM PUBLIC").format(schema))
    conn.execute(sql.SQL(_GUARD_FUNCTION).format(guard=guard, schema=schema))
    conn.execute(sql.SQL("REVOKE ALL ON FUNCTION {}.{}() FROM PUBLIC").format(schema, guard))
    conn.execute(sql.SQL("CREATE EVENT TRIGGER {guard} ON ddl_command_end "
                         "WHEN TAG IN ('CREATE SCHEMA', 'ALTER SCHEMA') "
                         "EXECUTE FUNCTION {schema}.{guard}()").format(guard=guard, schema=schema))


def _align_role(conn: psycopg.Connection[Any], database: str, owner: str, role: str,
                password: str | None, *, rotate: bool = False) -> RoleGrant:
    ident = sql.Identifier(role)
    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone() is not None
    generated = password is None and (rotate or not exists)
    if generated:
        password = secrets.token_urlsafe(24)
    attrs: sql.Composable = sql.SQL("LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS")
    if password is not None:
        attrs = sql.SQL("{} PASSWORD {}").format(attrs, sql.Literal(_verifier(conn, role, password)))
    verb = "ALTER" if exists else "CREATE"
    conn.execute(sql.SQL(verb + " ROLE {} {}").format(ident, attrs))
    path = sql.SQL(", ").join(sql.Identifier(s) for s in _SEARCH_PATH[owner])
    conn.execute(sql.SQL("ALTER ROLE {} SET search_path = {}").format(ident, path))
    conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(database), ident))

    schema = sql.Identifier(owner)
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {} AUTHORIZATION {}").format(schema, ident))
    conn.execute(sql.SQL("ALTER SCHEMA {} OWNER TO {}").format(schema, ident))
    conn.execute(sql.SQL("REVOKE ALL ON SCHEMA {} FROM PUBLIC").format(schema))
    # Objects created before the role existed (e.g. by an earlier superuser `up`) follow the schema.
    relations = conn.execute(
        "SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'f') "
        "AND pg_get_userbyid(c.relowner) <> %s", [owner, role]).fetchall()
    for name, kind in relations:
        noun = {"v": "VIEW", "m": "MATERIALIZED VIEW", "f": "FOREIGN TABLE"}.get(kind, "TABLE")
        conn.execute(sql.SQL("ALTER " + noun + " {}.{} OWNER TO {}").format(schema, sql.Identifier(name), ident))
    sequences = conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relkind = 'S' AND pg_get_userbyid(c.relowner) <> %s "
        "AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype IN ('a', 'i'))",
        [owner, role]).fetchall()
    for (name,) in sequences:
        conn.execute(sql.SQL("ALTER SEQUENCE {}.{} OWNER TO {}").format(schema, sql.Identifier(name), ident))
    functions = conn.execute(
        "SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
        "WHERE n.nspname = %s AND pg_get_userbyid(p.proowner) <> %s "
        "AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')",
        [owner, role]).fetchall()
    for (signature,) in functions:
        conn.execute(sql.SQL("ALTER ROUTINE {} OWNER TO {}").format(sql.SQL(signature), ident))
    types = conn.execute(
        "SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
        "WHERE n.nspname = %s AND t.typtype IN ('e', 'd', 'c') AND t.typrelid = 0 "
        "AND pg_get_userbyid(t.typowner) <> %s", [owner, role]).fetchall()
    for (name,) in types:
        conn.execute(sql.SQL("ALTER TYPE {}.{} OWNER TO {}").format(schema, sql.Identifier(name), ident))
    return RoleGrant(owner=owner, role=role, schema=owner, created=not exists, password=password,
                     generated=generated)


def privilege_leaks(url: DatabaseURL, report: RolesReport) -> list[str]:
    """What each role may do outside its own schema; empty when isolation holds."""
    leaks: list[str] = []
    with connect(url) as conn:
        for grant in report.grants:
            for other in OWNERS:
                if other == grant.owner:
                    continue
                row = conn.execute(
                    "SELECT has_schema_privilege(%s, n.oid, 'USAGE'), has_schema_privilege(%s, n.oid, 'CREATE') "
                    "FROM pg_namespace n WHERE nspname = %s", [grant.role, grant.role, other]).fetchone()
                if row and (row[0] or row[1]):
                    leaks.append(f"{grant.role} has USAGE={row[0]} CREATE={row[1]} on schema {other}")
            create_public = conn.execute("SELECT has_schema_privilege(%s, 'public', 'CREATE')",
                                         [grant.role]).fetchone()
            if create_public and create_public[0]:
                leaks.append(f"{grant.role} may CREATE in schema public")
            create_db = conn.execute("SELECT has_database_privilege(%s, current_database(), 'CREATE')",
                                     [grant.role]).fetchone()
            if create_db and create_db[0] and grant.owner not in report.schema_creators:
                leaks.append(f"{grant.role} may create schemas in the database")
    return leaks
