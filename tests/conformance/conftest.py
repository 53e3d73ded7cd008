"""The whole stack on one database, run under the least-privilege roles, with every statement captured.

``stack`` (session-scoped) builds one database the way the design deploys it (design §1; with
``--test-hindsight-dsn``, Hindsight's schema goes to a database of the same name on its own server instead):
a superuser installs the extensions and the owner roles (``jedisos-db roles``); then, with
``pg_stat_statements`` reset and ``log_statement=all`` on that database (the session's server
writes a jsonlog, whose lines carry ``application_name`` and ``user`` like a ``log_line_prefix``
with ``%a``/``%u`` would, without changing the server-wide prefix), each owner runs its own
start-up step under its own role,
a real LangGraph graph is checkpointed, JediSOS writes its own tables through SQLAlchemy, and
(when Hindsight is installed) the real Hindsight API, started as ``hindsight_app``, retains,
recalls, lists entities and deletes a bank.
What the server saw is kept for the "never touched by direct SQL" tests (design §2, §3, §10).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from langchain_core.messages import HumanMessage
from psycopg import sql
from sqlalchemy import insert

from jedisos_db.ops import roles, startup
from jedisos_db.runtime import checkpointer
from jedisos_db.runtime.db import models
from jedisos_db.runtime.db.connect import connect
from jedisos_db.runtime.db.engine import create_engine
from jedisos_db.runtime.urls import DatabaseURL
from tests.plugins.databases import DatabaseFactory
from tests.plugins.hindsight import HindsightFactory, HindsightHome, apart
from tests.plugins.roles import RolesFactory
from tests.runtime.graph import echo_graph

_STATEMENT = re.compile(r"^(?:statement|execute [^:]*): (?P<sql>.*)$", re.S)


@dataclass(frozen=True)
class Statement:
    role: str
    application: str | None  # None where the source (pg_stat_statements) does not record it
    text: str
    source: str


@dataclass
class Stack:
    url: DatabaseURL  # superuser URL of the stack's database
    database: str
    report: roles.RolesReport
    owner_urls: dict[str, DatabaseURL]
    steps: list[startup.StartupStep]
    statements: list[Statement] = field(default_factory=list)
    log_captured: str | None = None  # reason when the server log could not be read
    pgss_captured: str | None = None  # reason when pg_stat_statements is not available
    graph_messages: list[str] = field(default_factory=list)
    hindsight_flow: dict[str, object] = field(default_factory=dict)  # empty when Hindsight is not installed
    hindsight_admin: DatabaseURL | None = None  # superuser URL of Hindsight's database on its own server

    @property
    def hindsight_side(self) -> Stack:
        """The stack as seen on the server Hindsight's schema is on: this stack, or (Hindsight on a server of its
        own) the same roles on Hindsight's database there, for the checks about Hindsight's schema."""
        if self.hindsight_admin is None:
            return self
        there = self.hindsight_admin
        return dataclasses.replace(self, url=there, database=there.database,
                                   owner_urls={g.owner: g.url(there) for g in self.report.grants})

    @property
    def hindsight_url(self) -> DatabaseURL:
        """Hindsight's database: the stack's own, or one on Hindsight's own server (``--test-hindsight-dsn``)."""
        return self.owner_urls["hindsight"]

    @property
    def hindsight_apart(self) -> bool:
        """Whether Hindsight's schema went to a server of its own instead of the stack's database."""
        return apart(self.url, self.hindsight_url)

    @property
    def hindsight_ran(self) -> bool:
        return any(s.name == "hindsight" and s.status != "skipped" for s in self.steps)


def _log_file(url: DatabaseURL) -> Path | None:
    """The server's current jsonlog file, when the logging collector writes one we can read."""
    with connect(url) as conn:
        row = conn.execute("SELECT current_setting('data_directory'), pg_current_logfile('jsonlog')").fetchone()
    if not row or not row[1]:
        return None
    path = Path(str(row[0])) / str(row[1])
    return path if path.is_file() else None


def parse_log(text: str, database: str) -> list[Statement]:
    """Statements of ``database`` in a jsonlog excerpt (one JSON object per line)."""
    out = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if entry.get("dbname") != database or entry.get("error_severity") != "LOG":
            continue
        m = _STATEMENT.match(str(entry.get("message", "")))
        if m:
            out.append(Statement(str(entry.get("user", "")), str(entry.get("application_name", "")), m["sql"], "log"))
    return out


async def _hindsight_flow(base_url: str) -> dict[str, object]:
    """retain → recall finds it → entities listed → bank deleted, through the real REST API."""
    bank = "/v1/default/banks/jedisos-conformance"
    async with httpx.AsyncClient(base_url=base_url, timeout=120) as client:
        retained = await client.post(f"{bank}/memories", json={"items": [
            {"content": "Alice maintains the JediSOS PostgreSQL cluster in Seoul."}]})
        retained.raise_for_status()
        recall = await client.post(f"{bank}/memories/recall", json={"query": "Who maintains the cluster?"})
        recall.raise_for_status()
        entities = await client.get(f"{bank}/entities")
        entities.raise_for_status()
        deleted = await client.delete(bank)
        after = await client.post(f"{bank}/memories/recall", json={"query": "Alice"})
    return {"recall": recall.json().get("results", []), "entities": entities.json(),
            "deleted": deleted.status_code, "recall_after_delete": after.status_code}


async def _run_stack(stack: Stack, hindsight_factory: HindsightFactory) -> None:
    # Alembic's env.py runs its own event loop, so the synchronous start-up runs in a thread.
    stack.steps = await asyncio.to_thread(startup.run_steps, stack.url, owner_urls=stack.owner_urls)
    if stack.hindsight_ran:
        running = await asyncio.to_thread(hindsight_factory, stack.owner_urls["hindsight"])
        stack.hindsight_flow = await _hindsight_flow(running.base_url)
    async with checkpointer.open_checkpointer(stack.owner_urls["langgraph"]) as saver:
        graph = echo_graph(saver)
        config = {"configurable": {"thread_id": checkpointer.thread_id_for("conformance")}}
        await graph.ainvoke({"messages": [HumanMessage(content="hi")]}, config)
        state = await graph.aget_state(config)
        stack.graph_messages = [m.content for m in state.values["messages"]]
    engine = create_engine(url=stack.owner_urls["jedisos"], application_name="jedisos-app")
    try:
        async with engine.begin() as conn:
            await conn.execute(insert(models.InstalledTool).values(name="conformance", version="1"))
    finally:
        await engine.dispose()


class _Capture:
    """Every statement one database of a server runs while the stack is built: its jsonlog lines (with
    ``log_statement=all`` on that database) and its pg_stat_statements entries."""

    def __init__(self, admin: DatabaseURL, url: DatabaseURL) -> None:
        self.admin, self.url, self.database = admin, url, url.database
        with connect(url) as conn:
            preload = conn.execute("SELECT current_setting('shared_preload_libraries')").fetchone()
            self.pgss = preload is not None and "pg_stat_statements" in str(preload[0])
            if self.pgss:
                conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        self.log = _log_file(admin)
        self.offset = self.log.stat().st_size if self.log else 0

    def start(self) -> None:
        with connect(self.admin) as conn:
            conn.execute(sql.SQL("ALTER DATABASE {} SET log_statement = 'all'").format(sql.Identifier(self.database)))
        if self.pgss:
            with connect(self.url) as conn:
                conn.execute("SELECT pg_stat_statements_reset()")

    def stop(self) -> None:
        with connect(self.admin) as conn:
            conn.execute(sql.SQL("ALTER DATABASE {} RESET log_statement").format(sql.Identifier(self.database)))

    def collect(self, stack: Stack) -> None:
        if self.pgss:
            with connect(self.url) as conn:
                rows = conn.execute(
                    "SELECT pg_get_userbyid(s.userid), s.query FROM pg_stat_statements s "
                    "WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())").fetchall()
            stack.statements += [Statement(str(r), None, str(q), "pg_stat_statements") for r, q in rows]
        else:
            stack.pgss_captured = "pg_stat_statements is not in shared_preload_libraries on this server"
        if self.log is None:
            stack.log_captured = "no readable jsonlog (logging_collector off or a remote server)"
        else:
            with self.log.open("rb") as fh:
                fh.seek(self.offset)
                stack.statements += parse_log(fh.read().decode(errors="replace"), self.database)


@pytest.fixture(scope="session")
async def stack(server_url: DatabaseURL, database_factory: DatabaseFactory, roles_factory: RolesFactory,
                hindsight_server_factory: HindsightFactory, hindsight_home: HindsightHome,
                hindsight_admin_url: DatabaseURL) -> Stack:
    url = database_factory("stack", bootstrap=False)
    captures = [_Capture(server_url, url)]
    report = roles_factory(url)
    owner_urls = {g.owner: g.url(url) for g in report.grants}
    owner_urls["hindsight"] = hindsight_home(owner_urls["hindsight"])
    stack = Stack(url=url, database=url.database, report=report, owner_urls=owner_urls, steps=[])
    if stack.hindsight_apart:  # Hindsight's statements are on its own server: capture them there too
        stack.hindsight_admin = hindsight_admin_url.with_database(stack.hindsight_url.database)
        captures.append(_Capture(hindsight_admin_url, stack.hindsight_admin))
    for capture in captures:
        capture.start()
    try:
        await _run_stack(stack, hindsight_server_factory)
    finally:
        for capture in captures:
            capture.stop()
    for capture in captures:
        capture.collect(stack)
    return stack
