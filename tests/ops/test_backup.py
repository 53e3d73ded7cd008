"""Backup and restore (design §9, issue 11): into a fresh server, for the whole database and each owner's
schema alone, with owners, grants, head revisions and identical checksums; the app writes afterwards.

Each restore goes into a second embedded server started for the test, so roles, extensions and the
database all have to come from the backup. Hindsight's schema (its real migrations and API) is e2e.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import re
import stat
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from langchain_core.messages import HumanMessage
from psycopg import sql
from typer.testing import CliRunner

from jedisos_db.cli.main import app
from jedisos_db.harness import capacity
from jedisos_db.harness.hindsight import server as hs
from jedisos_db.harness.verify.plugin import ClaimRecorder
from jedisos_db.ops import backup, provision, roles, startup, tablesums
from jedisos_db.runtime import checkpointer
from jedisos_db.runtime.db import migrations
from jedisos_db.runtime.db.connect import connect
from jedisos_db.runtime.db.engine import create_engine
from jedisos_db.runtime.errors import BackupError, ConfigError
from jedisos_db.runtime.hindsight.client import HindsightClient, bank_id_for
from jedisos_db.runtime.repositories.cost import CostEvent, CostRepository
from jedisos_db.runtime.urls import DatabaseURL
from tests.conformance.test_order import _tables
from tests.plugins.databases import DatabaseFactory, postgres_env
from tests.plugins.hindsight import HindsightFactory, HindsightHome, apart, server_of
from tests.plugins.roles import RolesFactory
from tests.runtime.graph import echo_graph

THREADS = ("alpha", "beta", "gamma")


@dataclass(frozen=True)
class Source:
    url: DatabaseURL  # superuser URL of the source database
    database: str
    report: roles.RolesReport
    owner_urls: dict[str, DatabaseURL]
    hindsight_admin: DatabaseURL | None = None  # superuser URL of Hindsight's database on a server of its own

    @property
    def hindsight_apart(self) -> bool:
        """Whether the design put Hindsight's database on a server of its own (then a second backup is needed)."""
        return self.hindsight_admin is not None

    @property
    def hindsight_side(self) -> Source:
        """Hindsight's database as a source (itself unless the design put Hindsight on a server of its own)."""
        if self.hindsight_admin is None:
            return self
        return dataclasses.replace(self, url=self.hindsight_admin, database=self.hindsight_admin.database)


def _build_source(url: DatabaseURL, roles_factory: RolesFactory, *,
                  hindsight_home: HindsightHome | None = None) -> Source:
    """The design's deployment under the owner roles, every owner's tables filled by its own path; with
    ``hindsight_home``, Hindsight too (in the database it says: on a server of its own for such a design)."""
    report = roles_factory(url)
    owner_urls = {g.owner: g.url(url) for g in report.grants}
    hindsight = hindsight_home is not None
    if hindsight_home is not None:
        owner_urls["hindsight"] = hindsight_home(owner_urls["hindsight"])
    if hindsight:
        startup.run_steps(url, owner_urls=owner_urls)
    else:  # the normal suite: Hindsight's schema is the e2e tests' (it needs the [hindsight] extra)
        startup.step_extension(owner_urls["jedisos"])
        startup.step_langgraph(owner_urls["langgraph"])
        startup.step_jedisos(owner_urls["jedisos"])
    capacity.measure.measure_jedisos(owner_urls["jedisos"], 150, seed=11)
    with checkpointer.open_sync_checkpointer(owner_urls["langgraph"], setup=False) as saver:
        graph = echo_graph(saver)
        for thread in THREADS:
            graph.invoke({"messages": [HumanMessage(content=f"hello {thread}")]},
                         {"configurable": {"thread_id": checkpointer.thread_id_for(thread)}})
    return Source(url, url.database or "", report, owner_urls)


@pytest.fixture(scope="module")
def source(database_factory: DatabaseFactory, roles_factory: RolesFactory) -> Source:
    return _build_source(database_factory("backup_src", bootstrap=False), roles_factory)


@contextmanager
def _started(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[DatabaseURL]:
    server = provision.EmbeddedServer(tmp_path_factory.mktemp(name), provision.ServerSettings(max_connections=50))
    url = server.start()
    try:
        yield url
    finally:
        server.stop()


@pytest.fixture(scope="module")
def second_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DatabaseURL]:
    """A second embedded server, started once per module (starting one per test is slow on a busy machine)."""
    with _started(tmp_path_factory, "fresh") as url:
        yield url


@pytest.fixture(scope="module")
def hindsight_second_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DatabaseURL]:
    """A fresh server for Hindsight's side of a design that gives Hindsight a server of its own (started only
    by the tests that restore that side: a deployment of two servers is restored into two)."""
    with _started(tmp_path_factory, "fresh_hindsight") as url:
        yield url


_LEFT_OVER = {
    "database": "SELECT datname FROM pg_database WHERE NOT datistemplate AND datname <> 'postgres'",
    "role": "SELECT rolname FROM pg_roles WHERE NOT rolsuper AND rolname NOT LIKE 'pg\\_%'",
}


@contextmanager
def _as_initdb_left_it(server: DatabaseURL) -> Iterator[DatabaseURL]:
    """Admin URL of ``server`` as initdb left it: no roles, no extensions, no databases of ours.

    Whatever a test restored there (databases, roles) is dropped afterwards.
    """
    with connect(server) as conn:
        assert {kind: conn.execute(q).fetchall() for kind, q in _LEFT_OVER.items()} == {"database": [], "role": []}
    yield server
    with connect(server) as conn:
        for (name,) in conn.execute(_LEFT_OVER["database"]).fetchall():
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
        for (name,) in conn.execute(_LEFT_OVER["role"]).fetchall():
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


@pytest.fixture
def fresh_server(second_server: DatabaseURL) -> Iterator[DatabaseURL]:
    """The second server as initdb left it (:func:`_as_initdb_left_it`)."""
    with _as_initdb_left_it(second_server) as url:
        yield url


@pytest.fixture
def fresh_hindsight_server(hindsight_second_server: DatabaseURL) -> Iterator[DatabaseURL]:
    """The server Hindsight's side restores into, as initdb left it (:func:`_as_initdb_left_it`)."""
    with _as_initdb_left_it(hindsight_second_server) as url:
        yield url


def _target(server_url: DatabaseURL, database: str) -> DatabaseURL:
    return server_url.with_database(database)


def _ownership(url: DatabaseURL, schemas: list[str]) -> dict[str, str]:
    """Owner of each schema and of each relation in them, read from the catalog."""
    with connect(url) as conn:
        rows = conn.execute(
            "SELECT n.nspname, pg_get_userbyid(n.nspowner) FROM pg_namespace n WHERE n.nspname = ANY(%(s)s) "
            "UNION ALL SELECT n.nspname || '.' || c.relname, pg_get_userbyid(c.relowner) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = ANY(%(s)s)", {"s": schemas}).fetchall()
    return {str(k): str(v) for k, v in rows}


def _verifiers(url: DatabaseURL, names: list[str]) -> dict[str, str]:
    with connect(url) as conn:
        return {str(r): str(p) for r, p in conn.execute(
            "SELECT rolname, rolpassword FROM pg_authid WHERE rolname = ANY(%s)", [names]).fetchall()}


def _sums(url: DatabaseURL, schemas: list[str]) -> dict[str, tuple[int, str]]:
    with connect(url) as conn:
        return {s.name: (s.rows, s.checksum) for s in tablesums.table_sums(conn, schemas)}


def _report(scope: str, made: backup.BackupResult, restored: backup.RestoreResult) -> None:
    check = restored.verification
    assert check is not None
    equal = sum(c.ok for c in check.tables)
    print(f"\n[backup] scope={scope:<9} tables={len(check.tables):>2} checksums_equal={equal}/{len(check.tables)} "
          f"rows={sum(t.rows for t in made.manifest.tables)} dump_bytes={made.manifest.dump_bytes} "
          f"backup_s={made.seconds:.2f} restore_s={restored.seconds:.2f}")


def _assert_identical(source: Source, made: backup.BackupResult, restored: backup.RestoreResult,
                      target: DatabaseURL) -> None:
    """What a restore into a fresh server must give back, checked independently of restore's own verify."""
    m = made.manifest
    check = restored.verification
    assert check is not None
    assert check.ok, check.problems()
    assert check.privileges_checked
    assert len(check.tables) == len(m.tables) > 0
    assert _sums(target, list(m.schemas)) == _sums(source.url, list(m.schemas))
    assert _ownership(target, list(m.schemas)) == _ownership(source.url, list(m.schemas))
    assert restored.created_database
    assert set(restored.created_roles) == set(m.roles)
    assert _verifiers(target, list(m.roles)) == _verifiers(source.url, list(m.roles)), "login secrets differ"
    assert check.revisions == {owner: (head, head) for owner, head in m.revisions.items()}
    # Every owner with tables in the backup has its head recorded (Hindsight's own server also holds the owner
    # roles' empty schemas jedisos and langgraph, which have none).
    filled = {t.schema for t in m.tables}
    assert all(m.revisions[o] is not None for o in roles.OWNERS if o in filled), m.revisions


async def _app_writes_cost(owner_url: DatabaseURL) -> int:
    """Insert through the repository as ``jedisos_app``; the new id continues the restored sequence."""
    engine = create_engine(url=owner_url, pool_size=1, max_overflow=0)
    try:
        repo = CostRepository(engine)
        before = await repo.count()
        new_id = await repo.record(CostEvent(model="m", provider="p", cost_usd="0.5", source="agent", user_id="u1",
                                             timestamp=dt.datetime.now(dt.UTC)))
        assert await repo.count() == before + 1
        return new_id
    finally:
        await engine.dispose()


async def test_whole_database_restores_into_a_fresh_server_identically(
        source: Source, fresh_server: DatabaseURL, tmp_path: Path) -> None:
    """Design §9's "one pg_dump backs up all three schemas", made true: roles, owners, grants, data, heads."""
    made = backup.backup(source.url, tmp_path / "whole")
    m = made.manifest
    assert m.scope == backup.WHOLE
    assert {"jedisos", "langgraph", "public"} <= set(m.schemas)
    assert set(m.roles) == {g.role for g in source.report.grants}
    assert "vector" in {e.name for e in m.extensions}
    assert m.revisions["jedisos"] == migrations.head()
    assert m.revisions["langgraph"] == str(checkpointer.migration_version(source.url))
    filled = {s.name: s.rows for s in m.tables}
    assert filled["jedisos.audit_logs"] == filled["jedisos.cost_tracking"] == 150
    assert filled["langgraph.checkpoints"] >= 3 * len(THREADS)
    assert stat.S_IMODE((tmp_path / "whole").stat().st_mode) == 0o700  # the roles file holds SCRAM verifiers

    target = _target(fresh_server, source.database)
    restored = backup.restore(tmp_path / "whole", target, verify_after=True)
    _report("database", made, restored)
    _assert_identical(source, made, restored, target)
    database_acl = "SELECT array_agg(a ORDER BY a) FROM pg_database, unnest(datacl::text[]) a " \
                   "WHERE datname = current_database()"
    with connect(target) as restored_conn, connect(source.url) as source_conn:
        assert restored_conn.execute(database_acl).fetchone() == source_conn.execute(database_acl).fetchone()

    restored_owner = source.report.by_owner("jedisos").url(target)
    with connect(source.url) as conn:
        last = conn.execute("SELECT max(id) FROM jedisos.cost_tracking").fetchone()
    assert last is not None
    assert await _app_writes_cost(restored_owner) > last[0]


def _continue_thread(owner_url: DatabaseURL, thread: str) -> list[str]:
    with checkpointer.open_sync_checkpointer(owner_url, setup=False) as saver:
        graph = echo_graph(saver)
        config = {"configurable": {"thread_id": checkpointer.thread_id_for(thread)}}
        graph.invoke({"messages": [HumanMessage(content="again")]}, config)
        return [str(msg.content) for msg in graph.get_state(config).values["messages"]]


@pytest.mark.parametrize("owner", ["jedisos", "langgraph"])
async def test_one_owners_schema_restores_alone_into_a_fresh_server(
        source: Source, fresh_server: DatabaseURL, tmp_path: Path, owner: str) -> None:
    """Design §9's `pg_dump -n <schema>`, made to restore on its own: the schema, its role, its extensions."""
    made = backup.backup(source.url, tmp_path / owner, schema=owner)
    assert made.manifest.schemas == (owner,)
    assert made.manifest.roles == (source.report.by_owner(owner).role,)
    assert set(made.manifest.revisions) == {owner}
    target = _target(fresh_server, f"only_{owner}")
    restored = backup.restore(tmp_path / owner, target, verify_after=True)
    _report(owner, made, restored)
    _assert_identical(source, made, restored, target)
    with connect(target) as conn:
        schemas = {r[0] for r in conn.execute("SELECT nspname FROM pg_namespace WHERE nspname = ANY(%s)",
                                              [list(roles.OWNERS)]).fetchall()}
    assert schemas == {owner}

    owner_url = source.report.by_owner(owner).url(target)
    if owner == "jedisos":
        await _app_writes_cost(owner_url)
    else:  # LangGraph, as langgraph_app, carries on a thread it checkpointed before the backup
        assert _continue_thread(owner_url, "beta") == ["hello beta", "echo: hello beta", "again", "echo: again"]


async def test_verify_reports_a_changed_row_and_a_changed_owner(
        source: Source, database_factory: DatabaseFactory, server_url: DatabaseURL, tmp_path: Path) -> None:
    """restore --verify can fail: after the app writes and an owner changes, it names both."""
    made = backup.backup(source.url, tmp_path / "j", schema="jedisos")
    target = database_factory("restore_verify", bootstrap=False)  # an existing, empty database
    try:
        await _verify_reports(source, made, target, tmp_path)
    finally:  # its objects belong to the session's roles, which are dropped before the databases
        provision.drop_database(server_url, target.database or "")


async def _verify_reports(source: Source, made: backup.BackupResult, target: DatabaseURL, tmp_path: Path) -> None:
    restored = backup.restore(tmp_path / "j", target, verify_after=True)
    assert restored.verification is not None
    assert restored.verification.ok, restored.verification.problems()
    assert not restored.created_database
    assert restored.created_roles == ()  # the session's roles exist on this server: re-aligned, not created
    await _app_writes_cost(source.report.by_owner("jedisos").url(target))
    with connect(target) as conn:
        conn.execute("ALTER TABLE jedisos.schedules OWNER TO CURRENT_USER")
    problems = backup.verify(made.manifest, target).problems()
    assert any(p.startswith("table jedisos.cost_tracking: 150 rows") and "151 rows" in p for p in problems), problems
    assert any(p.startswith("table jedisos.schedules:") and "owner" in p for p in problems), problems
    assert len(problems) == 2, problems


def test_cli_backup_then_restore_verify(source: Source, fresh_server: DatabaseURL, tmp_path: Path) -> None:
    runner = CliRunner()
    made = runner.invoke(app, ["backup", str(tmp_path / "cli"), "--schema", "jedisos", "--dsn", source.url.libpq()])
    assert made.exit_code == 0, made.output
    assert "jedisos.cost_tracking" in made.output
    assert "roles      " + source.report.by_owner("jedisos").role in made.output
    target = _target(fresh_server, "cli_copy")
    restored = runner.invoke(app, ["restore", str(tmp_path / "cli"), "--verify", "--dsn", target.libpq()])
    assert restored.exit_code == 0, restored.output
    assert "verified   10 tables: counts and checksums equal" in restored.output
    assert "owners     and grants as in the backup" in restored.output
    again = runner.invoke(app, ["restore", str(tmp_path / "cli"), "--dsn", target.libpq()])
    assert again.exit_code == 1
    assert "already has schema(s) jedisos" in again.output


def _older_pg_dump(server_major: int) -> Path | None:
    """The bin directory of a pg_dump on this machine older than the server (Debian keeps each major)."""
    for path in [Path("/usr/bin/pg_dump"), *sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_dump"))]:
        tool = backup.tool_at("pg_dump", path)
        if tool is not None and tool.major < server_major:
            return path.parent
    return None


@pytest.mark.parametrize("via", ["env", "option"])
def test_an_older_pg_dump_is_refused_clearly_and_leaves_no_file(
        source: Source, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server_info: provision.ServerInfo,
        via: str) -> None:
    """The machine's own pg_dump (15 here) against the PostgreSQL 18 server: one clear line, nothing written."""
    major = int(server_info.server_version.split(".")[0])
    old = _older_pg_dump(major)
    if old is None:
        pytest.skip(f"no pg_dump older than {major} on this machine to point the lookup at")
    out = tmp_path / "b" / "never"
    out.parent.mkdir()
    args = ["backup", str(out), "--dsn", source.url.libpq()]
    if via == "env":
        monkeypatch.setenv(backup.ENV_PG_BIN, str(old))
    else:
        args += ["--pg-bin", str(old)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    [line] = result.output.strip().splitlines()
    assert f"(PostgreSQL {major}); pg_dump {major} is needed" in line, line
    assert f"{old / 'pg_dump'}" in line
    assert "is older than the server" in line
    assert list(out.parent.iterdir()) == []


def test_a_dump_failing_midway_leaves_no_partial_backup(source: Source, tmp_path: Path) -> None:
    """pg_dump stopped by a lock (a migration holding ACCESS EXCLUSIVE): the staged roles file and the
    partial dump both go; the destination never appears."""
    with connect(source.url, autocommit=False) as blocker:
        blocker.execute("LOCK TABLE jedisos.audit_logs IN ACCESS EXCLUSIVE MODE")
        with pytest.raises(BackupError, match=r"pg_dump failed .*timeout"):
            backup.backup(source.url, tmp_path / "b", lock_timeout_s=0.2)
        blocker.rollback()
    assert list(tmp_path.iterdir()) == []


def test_passwords_go_to_the_environment_never_the_command_line(source: Source, tmp_path: Path) -> None:
    """common rules: secrets never on a command line. A non-superuser backs up its own schema (no roles)."""
    grant = source.report.by_owner("jedisos")
    assert grant.password
    url = grant.url(source.url)
    tool = backup.find_tool("pg_dump", 18)
    argv, env = backup.invocation(tool, ["--schema=jedisos"], url)
    assert not any(grant.password in arg for arg in argv), argv
    assert env["PGPASSWORD"] == grant.password
    made = backup.backup(url, tmp_path / "own", schema="jedisos", roles=False)
    assert made.manifest.roles == ()
    assert made.manifest.roles_file is None


def test_restore_refuses_a_damaged_dump_and_creates_nothing(source: Source, fresh_server: DatabaseURL,
                                                            tmp_path: Path) -> None:
    backup.backup(source.url, tmp_path / "b", schema="jedisos")
    with (tmp_path / "b" / backup.DUMP_FILE).open("ab") as fh:
        fh.write(b"\0")
    target = _target(fresh_server, "damaged")
    with pytest.raises(BackupError, match="does not match the manifest's sha256"):
        backup.restore(tmp_path / "b", target)
    with connect(fresh_server) as conn:
        assert conn.execute("SELECT 1 FROM pg_database WHERE datname = 'damaged'").fetchone() is None


def test_a_failed_restore_drops_the_database_and_roles_it_created(
        source: Source, fresh_server: DatabaseURL, tmp_path: Path) -> None:
    """pg_restore fails part-way (a dump cut short after the manifest was written): the database and roles
    this restore created are gone again, and a second attempt on the intact dump succeeds."""
    made = backup.backup(source.url, tmp_path / "b", schema="jedisos")
    dump = tmp_path / "b" / backup.DUMP_FILE
    whole = dump.read_bytes()
    dump.write_bytes(whole[: len(whole) * 2 // 3])
    cut = dataclasses.replace(made.manifest, dump_sha256=hashlib.sha256(dump.read_bytes()).hexdigest())
    backup.write_manifest(tmp_path / "b", cut)
    target = _target(fresh_server, "cut_short")
    with pytest.raises(BackupError, match="pg_restore failed"):
        backup.restore(tmp_path / "b", target)
    with connect(fresh_server) as conn:
        assert conn.execute("SELECT 1 FROM pg_database WHERE datname = 'cut_short'").fetchone() is None
        assert conn.execute("SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)",
                            [list(made.manifest.roles)]).fetchall() == []
    dump.write_bytes(whole)
    backup.write_manifest(tmp_path / "b", made.manifest)
    again = backup.restore(tmp_path / "b", target, verify_after=True)
    assert again.verification is not None
    assert again.verification.ok, again.verification.problems()


def test_role_statements_keep_only_the_roles_in_scope() -> None:
    script = "\n".join([
        "--", "-- Roles", "--", "\\restrict abc", "SET default_transaction_read_only = off;",
        "CREATE ROLE app;", "ALTER ROLE app WITH LOGIN PASSWORD 'SCRAM-SHA-256$x';",
        'CREATE ROLE "Odd ""name""";', 'ALTER ROLE "Odd ""name""" WITH NOLOGIN;',
        "CREATE ROLE postgres;", "ALTER ROLE postgres WITH SUPERUSER;", "CREATE ROLE other;",
        "ALTER ROLE app SET search_path TO 'jedisos', 'public';",
        "GRANT app TO other GRANTED BY postgres;", 'GRANT app TO "Odd ""name""" GRANTED BY postgres;',
        "\\unrestrict abc"])
    kept = backup.role_statements(script, ["app", 'Odd "name"'])
    assert kept == ["CREATE ROLE app;", "ALTER ROLE app WITH LOGIN PASSWORD 'SCRAM-SHA-256$x';",
                    'CREATE ROLE "Odd ""name""";', 'ALTER ROLE "Odd ""name""" WITH NOLOGIN;',
                    "ALTER ROLE app SET search_path TO 'jedisos', 'public';",
                    'GRANT app TO "Odd ""name""" GRANTED BY postgres;']


def test_bad_scope_is_a_typed_error_naming_the_option(source: Source, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--schema: must be one of hindsight, langgraph, jedisos"):
        backup.backup(source.url, tmp_path / "b", schema="public")
    with pytest.raises(BackupError, match="already exists"):
        backup.backup(source.url, tmp_path)
    assert list(tmp_path.iterdir()) == []


# --- the real Hindsight (e2e) ------------------------------------------------------------------

FACTS = ["Alice maintains the JediSOS PostgreSQL cluster in Seoul.", "Bob is a pianist who lives in Busan."]


@pytest.fixture(scope="module")
async def hindsight_source(database_factory: DatabaseFactory, roles_factory: RolesFactory,
                           hindsight_server_factory: HindsightFactory, hindsight_home: HindsightHome,
                           hindsight_admin_url: DatabaseURL, hindsight_installed: None) -> Source:
    """All three owners with Hindsight's own migrations, memories retained through its real API."""
    url = database_factory("backup_hs_src", bootstrap=False)
    # Alembic's env.py runs its own event loop, so the synchronous start-up runs in a thread.
    src = await asyncio.to_thread(_build_source, url, roles_factory, hindsight_home=hindsight_home)
    if apart(src.url, src.owner_urls["hindsight"]):
        src = dataclasses.replace(src, hindsight_admin=hindsight_admin_url.with_database(
            src.owner_urls["hindsight"].database))
    running = await asyncio.to_thread(hindsight_server_factory, src.owner_urls["hindsight"])
    try:
        async with HindsightClient(running.base_url, timeout=120) as client:
            assert (await client.retain(bank_id_for("backup"), FACTS, context="backup")).success
    finally:
        running.server.stop()
    return src


def _whole_restored(side: Source, server: DatabaseURL, out: Path) -> tuple[backup.BackupResult, DatabaseURL]:
    """One server's database backed up whole, restored into ``server`` and checked identical to ``side``."""
    made = backup.backup(side.url, out)
    target = _target(server, side.database)
    restored = backup.restore(out, target, verify_after=True)
    _report("database", made, restored)
    _assert_identical(side, made, restored, target)
    return made, target


@pytest.mark.e2e
async def test_hindsight_whole_database_restores_and_hindsight_serves_it(
        hindsight_source: Source, fresh_server: DatabaseURL, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """Every database of the deployment backed up whole and restored into a fresh server: the design's one
    database; with Hindsight on a server of its own, the main database no longer holds Hindsight, so its
    database on that server is backed up too and restored into a fresh server of its own."""
    made, target = _whole_restored(hindsight_source, fresh_server, tmp_path / "whole")
    assert {"jedisos", "langgraph"} <= set(made.manifest.schemas)
    # Apart, the main database keeps only the empty schema the owner roles set up: no table of Hindsight's.
    hindsight_tables = [t.name for t in made.manifest.tables if t.schema == "hindsight"]
    assert bool(hindsight_tables) is not hindsight_source.hindsight_apart, (hindsight_tables, hindsight_source)
    if hindsight_source.hindsight_apart:  # one backup per server
        made, target = _whole_restored(hindsight_source.hindsight_side,
                                       request.getfixturevalue("fresh_hindsight_server"), tmp_path / "whole-hindsight")
        assert "hindsight" in made.manifest.schemas
        assert not {t.schema for t in made.manifest.tables} & {"jedisos", "langgraph"}, made.manifest.tables
    assert made.manifest.revisions["hindsight"]
    assert {s.name: s.rows for s in made.manifest.tables}["hindsight.memory_units"] >= len(FACTS)
    # Hindsight itself, as hindsight_app on the restored server, recalls what it retained and writes more.
    with hs.HindsightServer(hindsight_source.report.by_owner("hindsight").url(target)) as server:
        async with HindsightClient(server.base_url, timeout=120) as client:
            found = await client.recall(bank_id_for("backup"), "Who maintains the cluster?")
            assert any("Alice" in m.text for m in found), [m.text for m in found]
            assert (await client.retain(bank_id_for("backup"), ["Carol joined in 2026."])).success


@pytest.mark.e2e
async def test_hindsight_schema_restores_alone_with_its_extensions(
        hindsight_source: Source, fresh_server: DatabaseURL, tmp_path: Path) -> None:
    """The design's `pg_dump -n hindsight` fails alone (type "public.vector" does not exist); ours does not.
    Both run on Hindsight's database: on its own server when the design gives it one (a backup of the main
    database's schema hindsight then holds no table)."""
    side = hindsight_source.hindsight_side
    if hindsight_source.hindsight_apart:  # the main database's schema hindsight is the roles' empty one
        assert backup.backup(hindsight_source.url, tmp_path / "main-hs", schema="hindsight").manifest.tables == ()
    made = backup.backup(side.url, tmp_path / "hs", schema="hindsight")
    assert {e.name for e in made.manifest.extensions} >= {"vector", "pg_trgm", "btree_gin"}
    target = _target(fresh_server, "only_hindsight")
    restored = backup.restore(tmp_path / "hs", target, verify_after=True)
    _report("hindsight", made, restored)
    _assert_identical(side, made, restored, target)

    design = tmp_path / "design.pgc"
    dump = backup.find_tool("pg_dump", 18)
    backup.run_tool(dump, ["--format=custom", "--schema=hindsight", f"--file={design}"], side.url, timeout=300)
    provision.create_database(fresh_server, "design_way")
    with pytest.raises(BackupError, match=re.escape('type "public.vector" does not exist')):
        backup.run_tool(backup.find_tool("pg_restore", 18), ["--single-transaction", "--exit-on-error", str(design)],
                    _target(fresh_server, "design_way"), timeout=300)
    with psycopg.connect(_target(fresh_server, "design_way").libpq()) as conn:
        assert conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname = 'hindsight'").fetchone() == (0,)


# --- design §9's commands, run as written -------------------------------------------------------

DESIGN_SECTION_9 = {
    "database": "pg_dump -U ${POSTGRES_USER} -h ${POSTGRES_HOST} ${POSTGRES_DB} > backup_$(date +%Y%m%d).sql",
    "jedisos": "pg_dump -U ${POSTGRES_USER} -h ${POSTGRES_HOST} -n jedisos ${POSTGRES_DB} > "
               "jedisos_backup_$(date +%Y%m%d).sql",
    "hindsight": "pg_dump -U ${POSTGRES_USER} -h ${POSTGRES_HOST} -n hindsight ${POSTGRES_DB} > "
                 "hindsight_backup_$(date +%Y%m%d).sql",
}
"""Design §9's three backup lines, verbatim."""

_MISSING_ROLE = re.compile(r'role "[^"]+" does not exist')
HEAD_FIX = "fixed at head by `jedisos-db backup` / `restore`: roles, extensions and owners travel with the dump"


@dataclass(frozen=True)
class DesignRestore:
    """What §9's command, then ``psql -f`` of its file into an empty server, gave back."""

    scope: str
    dump_bytes: int
    errors: tuple[str, ...]
    tables: int
    tables_equal: int
    owners: int
    owners_kept: int

    @property
    def data_intact(self) -> bool:
        return self.tables > 0 and self.tables_equal == self.tables

    def sentence(self) -> str:
        # The error that decides, when there is one beyond the missing roles every line of §9 meets.
        decisive = [e for e in self.errors if not _MISSING_ROLE.fullmatch(e)] or list(self.errors)
        first = f"; first error: {decisive[0]}" if decisive else ""
        return (f"§9's {self.scope} pg_dump line, restored with psql -f into an empty PostgreSQL 18 server: "
                f"{len(self.errors)} errors ({len(set(self.errors))} distinct), {self.tables_equal}/{self.tables} "
                "tables with equal rows and checksums, "
                f"{self.owners_kept}/{self.owners} objects kept their owner{first}")

    def figures(self) -> dict[str, int]:
        return {"restore_errors": len(self.errors), "distinct_errors": len(set(self.errors)), "tables": self.tables,
                "tables_equal": self.tables_equal,
                "owners": self.owners, "owners_kept": self.owners_kept, "dump_bytes": self.dump_bytes}


def design_dump_and_restore(source: Source, fresh_server: DatabaseURL, tmp_path: Path, scope: str) -> DesignRestore:
    """Run §9's line for ``scope`` in a shell as written (the PostgreSQL 18 client tools first on PATH:
    the machine's own pg_dump is older than the server and refuses), then load the file the way a plain
    SQL dump is restored, ``psql -f``, into a new database of a server that has never seen the source."""
    dump_tool = backup.find_tool("pg_dump", 18)
    env = {k: v for k, v in postgres_env(source.url).items() if v is not None}
    env |= {"PATH": f"{dump_tool.path.parent}:/usr/bin:/bin", "PGPORT": env["POSTGRES_PORT"]}
    if "POSTGRES_PASSWORD" in env:
        env["PGPASSWORD"] = env["POSTGRES_PASSWORD"]
    out = tmp_path / f"design-{scope}"
    out.mkdir()
    done = subprocess.run(["bash", "-c", DESIGN_SECTION_9[scope]], cwd=out, env=env, capture_output=True, text=True,
                          timeout=300, check=False, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, f"§9's {scope} line failed (exit {done.returncode}): {done.stderr.strip()}"
    [dump] = list(out.glob("*.sql"))
    target = provision.create_database(fresh_server, f"design_{scope}")
    psql = backup.find_tool("psql", 18)
    argv, psql_env = backup.invocation(psql, ["-X", "-q", "-f", str(dump)], target)
    restored = subprocess.run(argv, env=psql_env, capture_output=True, text=True, timeout=300, check=False,
                              stdin=subprocess.DEVNULL)
    assert restored.returncode == 0, f"psql -f stopped (exit {restored.returncode}): {restored.stderr.strip()}"
    errors = tuple(line.split("ERROR:", 1)[1].strip() for line in restored.stderr.splitlines() if "ERROR:" in line)
    schemas = list(roles.OWNERS) if scope == backup.WHOLE else [scope]
    with connect(source.url) as conn:
        present = [s for s in schemas if conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [s]).fetchone()]
    want, got = _sums(source.url, present), _sums(target, present)
    owners_want, owners_got = _ownership(source.url, present), _ownership(target, present)
    return DesignRestore(scope, dump.stat().st_size, errors, len(want), sum(got.get(t) == v for t, v in want.items()),
                         len(owners_want), sum(owners_got.get(k) == v for k, v in owners_want.items()))


def record_design_restore(found: DesignRestore, claim: ClaimRecorder, *, claim_id: str | None = None) -> None:
    """The verdict of one §9 line: holds only when everything came back as it was, with no error."""
    if found.data_intact and not found.errors and found.owners_kept == found.owners:
        claim.holds(found.sentence(), claim=claim_id, **found.figures())
    elif found.data_intact:
        claim.partial(found.sentence(), claim=claim_id, fix=HEAD_FIX, **found.figures())
    else:
        claim.fails(found.sentence(), claim=claim_id, fix=HEAD_FIX, **found.figures())


@pytest.mark.claim("S9-jedisos-dump")
def test_design_jedisos_dump_as_written_into_an_empty_server(source: Source, fresh_server: DatabaseURL,
                                                             tmp_path: Path, claim: ClaimRecorder) -> None:
    """§9's `pg_dump -n jedisos` line, restored into an empty server: the data, and whose it is."""
    found = design_dump_and_restore(source, fresh_server, tmp_path, "jedisos")
    jedisos_app = source.report.by_owner("jedisos").role
    assert found.data_intact, found.sentence()
    assert f'role "{jedisos_app}" does not exist' in found.errors, found.sentence()
    assert found.owners_kept == 0, found.sentence()
    record_design_restore(found, claim)


@pytest.mark.e2e
@pytest.mark.claim("S9-full-dump", "S1-one-dump-backs-up-all")
def test_design_full_dump_as_written_into_an_empty_server(hindsight_source: Source, fresh_server: DatabaseURL,
                                                          tmp_path: Path, claim: ClaimRecorder) -> None:
    """§9's whole-database line with all three owners (Hindsight's real schema): one dump carries every
    schema's data, but no role, so nothing keeps its owner and the owner roles cannot log in."""
    found = design_dump_and_restore(hindsight_source, fresh_server, tmp_path, backup.WHOLE)
    assert found.data_intact, found.sentence()
    elsewhere = hindsight_source.owner_urls["hindsight"]
    if apart(hindsight_source.url, elsewhere):  # the design put Hindsight on a server of its own
        tables = _tables(elsewhere, "hindsight")
        assert tables, f"Hindsight's schema on its own server ({elsewhere.database}) holds no table"
        claim.fails(f"one dump of database {hindsight_source.database} carries jedisos and langgraph only: "
                    f"Hindsight's {len(tables)} tables are on a server of its own ({server_of(elsewhere)}, not "
                    f"{server_of(hindsight_source.url)}) and need a second dump", claim="S1-one-dump-backs-up-all",
                    hindsight_tables_elsewhere=len(tables))
        record_design_restore(found, claim, claim_id="S9-full-dump")
        return
    missing = {f'role "{g.role}" does not exist' for g in hindsight_source.report.grants}
    assert missing <= set(found.errors), found.sentence()
    assert found.owners_kept < found.owners, found.sentence()
    record_design_restore(found, claim)


@pytest.mark.e2e
@pytest.mark.claim("S9-hindsight-dump", shows="fails")
def test_design_hindsight_dump_as_written_into_an_empty_server(hindsight_source: Source, fresh_server: DatabaseURL,
                                                               tmp_path: Path, claim: ClaimRecorder) -> None:
    """§9's `pg_dump -n hindsight` carries no extension: Hindsight's tables need `vector` and fail to restore
    (run on Hindsight's database, on its own server when the design gives it one)."""
    found = design_dump_and_restore(hindsight_source.hindsight_side, fresh_server, tmp_path, "hindsight")
    assert 'type "public.vector" does not exist' in found.errors, found.sentence()
    assert not found.data_intact, found.sentence()
    record_design_restore(found, claim)
