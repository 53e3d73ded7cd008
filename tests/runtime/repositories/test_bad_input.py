"""Bad input across the repositories and the settings: each kind raises a typed error naming the field,
and nothing is written (every jedisos table has the same row count before and after). The few unusual
inputs that are accepted on purpose are listed in ACCEPTED with the rule that makes them fine, and checked
to store what the rule says. Hypothesis covers the boundaries.

The counts (issue 11): ``pytest tests/runtime/repositories/test_bad_input.py -k counts -s`` prints them.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import string
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from jedisos_db.harness import pools
from jedisos_db.runtime import checkpointer, urls
from jedisos_db.runtime.config import load_settings
from jedisos_db.runtime.db.models import AuditLog, Base, CostRecord, InstalledTool, McpServer
from jedisos_db.runtime.errors import (
    ConfigError,
    DuplicateError,
    InvalidInputError,
    MissingReferenceError,
)
from jedisos_db.runtime.hindsight.retry import HindsightClientSettings
from jedisos_db.runtime.owners import SCHEMA
from jedisos_db.runtime.repositories.audit import AuditEvent, AuditLogRepository
from jedisos_db.runtime.repositories.cost import CostEvent, CostRepository
from jedisos_db.runtime.repositories.marketplace import MarketplaceRepository
from jedisos_db.runtime.repositories.mcp_servers import McpServerRepository, McpServerSpec
from jedisos_db.runtime.repositories.preferences import PreferencesRepository
from jedisos_db.runtime.repositories.schedules import ScheduleRepository
from jedisos_db.runtime.repositories.tools import ToolRepository, ToolSpec
from jedisos_db.runtime.repositories.validation import INT4_MAX, MAX_JSON_BYTES, varchar_limit
from jedisos_db.runtime.secrets import SecretCipher

Action = Callable[[AsyncEngine, SecretCipher], Awaitable[Any]]
TABLES = [t.name for t in Base.metadata.sorted_tables if not t.info.get("is_view")]


def audit(**kw: Any) -> Action:
    return lambda e, c: AuditLogRepository(e).record_many([{"event_type": "ok"}, {"event_type": "x", **kw}])


def cost(**kw: Any) -> Action:
    base = {"model": "m", "provider": "p", "cost_usd": 0, "source": "agent"}
    return lambda e, c: CostRepository(e).record({**base, **kw})


# Valid base arguments; the cases override them with values of the wrong type on purpose, hence Any.
SKILL: dict[str, Any] = {"name": "skill", "version": "1", "tool_path": "t.py"}


def tool(**kw: Any) -> Action:
    return lambda e, c: ToolRepository(e, c).install(ToolSpec(**{**SKILL, **kw}))


async def _duplicate_tool(e: AsyncEngine, c: SecretCipher) -> None:
    await ToolRepository(e, c).install(ToolSpec(**SKILL))


def prefs(**kw: Any) -> Action:
    return lambda e, c: PreferencesRepository(e).get_or_create("u1", **kw)


SCHEDULE: dict[str, Any] = {"user_id": "u", "name": "n", "cron_expr": "0 8 * * *", "action_type": "chat",
                            "action_payload": {}}


def schedule(**kw: Any) -> Action:
    return lambda e, c: ScheduleRepository(e).create(**{**SCHEDULE, **kw})


def package(**kw: Any) -> Action:
    return lambda e, c: MarketplaceRepository(e).upsert({"package_name": "p", "package_type": "skill", **kw})


async def _prefs_row(e: AsyncEngine, c: SecretCipher) -> None:
    await PreferencesRepository(e).get_or_create("u1")


async def _package_row(e: AsyncEngine, c: SecretCipher) -> None:
    await MarketplaceRepository(e).upsert({"package_name": "p", "package_type": "skill"})


async def _mcp_server(e: AsyncEngine, c: SecretCipher) -> None:
    await ToolRepository(e, c).install(ToolSpec(name="a", version="1", tier=2),
                                       McpServerSpec(server_name="s", docker_image="i"))


def health_check(at: dt.datetime) -> Action:
    async def check(e: AsyncEngine, c: SecretCipher) -> McpServer:
        repo = McpServerRepository(e, c)
        return await repo.record_health_check((await repo.get_by_name("s")).id, healthy=True, at=at)

    return check


def settings_(**kw: Any) -> Action:
    """Settings from the environment plus ``kw`` (by field name): no database is touched."""
    async def load(e: AsyncEngine, c: SecretCipher) -> object:
        return load_settings(**{"jedisos_db_url": "postgresql://u@h/db", **kw})

    return load


def sync(build: Callable[[], object]) -> Action:
    async def run(e: AsyncEngine, c: SecretCipher) -> object:
        return build()

    return run


LONE = "\ud800"
"""A lone surrogate: what a JSON decoder with surrogatepass, or a bad slice of UTF-16, hands over."""
AT_PLUS_14 = dt.timezone(dt.timedelta(hours=14))


@dataclass(frozen=True)
class Case:
    kind: str
    action: Action
    field: str
    error: type[InvalidInputError] | type[ConfigError] = InvalidInputError
    setup: Action | None = None


CASES = [
    Case("audit: wrong type", audit(event_type=42), "event_type"),
    Case("audit: event_type over VARCHAR(100)", audit(event_type="e" * 101), "event_type"),
    Case("audit: empty event_type", audit(event_type=""), "event_type"),
    Case("audit: unknown severity", audit(severity="fatal"), "severity"),
    Case("audit: unknown channel", audit(channel="irc"), "channel"),
    Case("audit: unknown result", audit(result="maybe"), "result"),
    Case("audit: invalid IP for INET", audit(ip_address="999.1.1.1"), "ip_address"),
    Case("audit: IP of wrong type", audit(ip_address=167772161), "ip_address"),
    Case("audit: details not an object", audit(details=["a"]), "details"),
    Case("audit: oversized details JSON", audit(details={"blob": "x" * MAX_JSON_BYTES}), "details"),
    Case("audit: details not serialisable", audit(details={"s": {1, 2}}), "details"),
    Case("audit: NaN in details", audit(details={"n": float("nan")}), "details"),
    Case("audit: envelope_id not a UUID", audit(envelope_id="not-a-uuid"), "envelope_id"),
    Case("audit: naive timestamp", audit(timestamp=dt.datetime(2026, 1, 1)), "timestamp"),
    Case("audit: NUL in text", audit(action="a\x00b"), "action"),
    Case("audit: unknown keyword", audit(colour="red"), "event"),
    Case("cost: negative input tokens", cost(input_tokens=-1), "input_tokens"),
    Case("cost: tokens over INTEGER", cost(output_tokens=INT4_MAX + 1), "output_tokens"),
    Case("cost: tokens as string", cost(input_tokens="10"), "input_tokens"),
    Case("cost: tokens as bool", cost(input_tokens=True), "input_tokens"),
    Case("cost: negative cost", cost(cost_usd=Decimal("-0.01")), "cost_usd"),
    Case("cost: cost over DECIMAL(10,6)", cost(cost_usd=10_000), "cost_usd"),
    Case("cost: NaN cost", cost(cost_usd=float("nan")), "cost_usd"),
    Case("cost: unknown source", cost(source="human"), "source"),
    Case("cost: unknown status", cost(status="ok"), "status"),
    Case("cost: negative latency", cost(latency_ms=-5), "latency_ms"),
    Case("cost: missing model", cost(model=None), "model"),
    Case("tools: tier 3", tool(tier=3), "tier"),
    Case("tools: unknown source", tool(source="github"), "source"),
    Case("tools: duplicate name", tool(), "name", DuplicateError, _duplicate_tool),
    Case("tools: tier 2 without its MCP server",
         lambda e, c: ToolRepository(e, c).install(ToolSpec(name="t2", version="1", tier=2)), "mcp"),
    Case("tools: tags not strings", tool(tags=[1]), "tags[0]"),
    Case("tools: version over VARCHAR(50)", tool(version="1" * 51), "version"),
    Case("mcp: port out of range",
         lambda e, c: McpServerRepository(e, c).add(uuid.uuid4(), McpServerSpec(server_name="s", docker_image="i",
                                                                                   port=70000)), "port"),
    Case("mcp: server for a missing tool",
         lambda e, c: McpServerRepository(e, c).add(uuid.uuid4(), McpServerSpec(server_name="s", docker_image="i")),
         "tool_id", MissingReferenceError),
    Case("mcp: duplicate server name",
         lambda e, c: ToolRepository(e, c).install(ToolSpec(name="b", version="1", tier=2),
                                                   McpServerSpec(server_name="s", docker_image="i")),
         "server_name", DuplicateError,
         lambda e, c: ToolRepository(e, c).install(ToolSpec(name="a", version="1", tier=2),
                                                   McpServerSpec(server_name="s", docker_image="i"))),
    Case("mcp: env value not a string",
         # The int env value is the wrong type under test, hence the ignore.
         lambda e, c: ToolRepository(e, c).install(ToolSpec(name="a", version="1", tier=2),
                                                   McpServerSpec(server_name="s", docker_image="i",
                                                                 env={"P": 1})),  # type: ignore[dict-item]
         "env[P]"),
    Case("prefs: temperature above 2", prefs(temperature=2.5), "temperature"),
    Case("prefs: max_tokens zero", prefs(max_tokens=0), "max_tokens"),
    Case("prefs: negative budget", prefs(daily_budget_usd=-1), "daily_budget_usd"),
    Case("prefs: unknown notification channel", prefs(notification_channels={"pager": True}),
         "notification_channels"),
    Case("prefs: derived bank id over VARCHAR(255)",
         lambda e, c: PreferencesRepository(e).get_or_create("u" * 250), "bank_id"),
    Case("prefs: unknown column", lambda e, c: PreferencesRepository(e).update("u1", id=uuid.uuid4()), "changes",
         setup=_prefs_row),
    Case("schedules: bad cron", schedule(cron_expr="0 25 * * *"), "cron_expr"),
    Case("schedules: unknown action_type", schedule(action_type="email"), "action_type"),
    Case("schedules: payload not an object", schedule(action_payload="hi"), "action_payload"),
    Case("marketplace: unknown package_type", package(package_type="plugin"), "package_type"),
    Case("marketplace: rating over 5", package(rating=6), "rating"),
    Case("marketplace: negative download count", package(download_count=-1), "download_count"),
    Case("marketplace: link to a missing tool",
         lambda e, c: MarketplaceRepository(e).link("p", uuid.uuid4(), "1"), "installed_tool_id",
         MissingReferenceError, _package_row),
    # issue 11: inputs that used to raise untyped errors or were accepted silently
    Case("audit: lone surrogate in text (batch)", audit(action=f"a{LONE}"), "action"),
    Case("audit: lone surrogate in text (one event)",
         lambda e, c: AuditLogRepository(e).record({"event_type": "x", "user_id": LONE}), "user_id"),
    Case("audit: lone surrogate in a JSON value", audit(details={"k": LONE}), "details"),
    Case("audit: lone surrogate in a JSON key", audit(details={LONE: 1}), "details"),
    Case("cost: lone surrogate in model", cost(model=f"m{LONE}"), "model"),
    Case("tools: lone surrogate in description", tool(description=LONE), "description"),
    Case("prefs: lone surrogate in user_id", lambda e, c: PreferencesRepository(e).get_or_create(LONE), "user_id"),
    Case("schedules: lone surrogate in the payload", schedule(action_payload={"t": LONE}), "action_payload"),
    Case("cost: cost_usd=1e30 (float)", cost(cost_usd=1e30), "cost_usd"),
    Case("cost: cost_usd=1e30 (Decimal)", cost(cost_usd=Decimal("1e30")), "cost_usd"),
    Case("audit: datetime.min at +14:00 (batch)", audit(timestamp=dt.datetime.min.replace(tzinfo=AT_PLUS_14)),
         "timestamp"),
    Case("cost: datetime.min at +14:00", cost(timestamp=dt.datetime.min.replace(tzinfo=AT_PLUS_14)), "timestamp"),
    Case("schedules: cron that never fires (30 February)", schedule(cron_expr="0 0 30 2 *"), "cron_expr"),
    Case("tools: get by a non-UUID id", lambda e, c: ToolRepository(e, c).get("abc"), "tool_id"),  # type: ignore[arg-type]
    Case("tools: uninstall a non-UUID id", lambda e, c: ToolRepository(e, c).uninstall(42),  # type: ignore[arg-type]
         "tool_id"),
    Case("mcp: transition a non-UUID id",
         lambda e, c: McpServerRepository(e, c).transition("abc", "running"), "server_id"),  # type: ignore[arg-type]
    Case("audit: IPv6 with a zone (fe80::1%eth0)", audit(ip_address="fe80::1%eth0"), "ip_address"),
    Case("mcp: naive health-check time", health_check(dt.datetime(2026, 1, 1)), "at", setup=_mcp_server),
    Case("settings: JEDISOS_DB_URL port 99999", settings_(jedisos_db_url="postgresql://u@h:99999/db"),
         "JEDISOS_DB_URL", ConfigError),
    Case("settings: JEDISOS_DB_URL port abc", settings_(jedisos_db_url="postgresql://u@h:abc/db"),
         "JEDISOS_DB_URL", ConfigError),
    Case("settings: POSTGRES_PORT 99999",
         settings_(jedisos_db_url=None, postgres_user="u", postgres_host="h", postgres_db="d", postgres_port=99999),
         "POSTGRES_PORT", ConfigError),
    Case("settings: statement timeout of 30 years", settings_(statement_timeout_ms=10**12),
         "JEDISOS_DB_STATEMENT_TIMEOUT_MS", ConfigError),
    Case("settings: negative statement timeout", settings_(statement_timeout_ms=-1),
         "JEDISOS_DB_STATEMENT_TIMEOUT_MS", ConfigError),
    Case("settings: zero connect timeout", settings_(connect_timeout_s=0), "JEDISOS_DB_CONNECT_TIMEOUT_S",
         ConfigError),
    Case("settings: pool timeout over a day", settings_(pool_timeout_s=86_401), "JEDISOS_DB_POOL_TIMEOUT_S",
         ConfigError),
    Case("langgraph: pool checkout timeout over a day", sync(lambda: checkpointer.PoolSizing(timeout=1e9)),
         "timeout", ConfigError),
    Case("langgraph: negative connect timeout", sync(lambda: checkpointer.PoolSizing(connect_timeout=-1)),
         "connect_timeout", ConfigError),
    Case("hindsight: read timeout over a day", sync(lambda: HindsightClientSettings(read_timeout=1e9)),
         "read_timeout", ConfigError),
    Case("pools: --samples 0", lambda e, c: pools.measure(urls.parse(e.url), samples=0), "samples", ConfigError),
]


@dataclass(frozen=True)
class Accepted:
    """An unusual input taken on purpose: ``rule`` says why, ``check`` what is stored (it raises otherwise)."""

    kind: str
    rule: str
    check: Action


async def _rounded_cost(e: AsyncEngine, c: SecretCipher) -> None:
    await CostRepository(e).record({"model": "m", "provider": "p", "cost_usd": 1e-30, "source": "agent"})
    async with e.connect() as conn:
        assert (await conn.execute(text("SELECT cost_usd FROM jedisos.cost_tracking"))).scalar_one() == 0


async def _no_statement_limit(e: AsyncEngine, c: SecretCipher) -> None:
    settings = load_settings(jedisos_db_url="postgresql://u@h/db", statement_timeout_ms=0)
    assert settings.command_timeout_s is None


async def _max_at_plus_14(e: AsyncEngine, c: SecretCipher) -> None:
    at = dt.datetime.max.replace(tzinfo=AT_PLUS_14)  # 9999-12-31 09:59:59 UTC: exists, so it is stored
    await AuditLogRepository(e).record_many([{"event_type": "e", "timestamp": at}])
    async with e.connect() as conn:
        assert (await conn.execute(text("SELECT timestamp FROM jedisos.audit_logs"))).scalar_one() == at


async def _mapped_ipv4(e: AsyncEngine, c: SecretCipher) -> None:
    await AuditLogRepository(e).record({"event_type": "e", "ip_address": "::ffff:10.0.0.1"})
    async with e.connect() as conn:
        stored = (await conn.execute(text("SELECT host(ip_address) FROM jedisos.audit_logs"))).scalar_one()
    assert stored == "::ffff:10.0.0.1"


ACCEPTED = [
    Accepted("cost: cost_usd=1e-30", "rounded to DECIMAL(10,6) like every cost: stored as 0", _rounded_cost),
    Accepted("settings: statement timeout 0", "0 is PostgreSQL's 'no limit' (migrations, retention); the "
                                              "client then sets no statement wait either", _no_statement_limit),
    Accepted("audit: datetime.max at +14:00", "exists in UTC (9999-12-31 09:59:59)", _max_at_plus_14),
    Accepted("audit: IPv4-mapped IPv6", "a valid INET value, stored as given", _mapped_ipv4),
]


async def row_counts(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as conn:
        return {t: int((await conn.execute(text(f"SELECT count(*) FROM {SCHEMA}.{t}"))).scalar_one())
                for t in TABLES}


def test_at_least_thirty_kinds() -> None:
    assert len({c.kind for c in CASES}) >= 30
    assert len({c.kind for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.kind for c in CASES])
async def test_bad_input_is_a_typed_error_naming_the_field_and_writes_nothing(
        clean: AsyncEngine, cipher: SecretCipher, case: Case) -> None:
    if case.setup is not None:
        await case.setup(clean, cipher)
    before = await row_counts(clean)
    with pytest.raises(case.error) as info:
        await case.action(clean, cipher)
    error = info.value
    assert isinstance(error, InvalidInputError | ConfigError)
    assert error.field == case.field, str(error)
    assert str(error).startswith((f"{case.field}:", f"row 1: {case.field}:")), str(error)
    assert await row_counts(clean) == before


@pytest.mark.parametrize("accepted", ACCEPTED, ids=[a.kind for a in ACCEPTED])
async def test_documented_acceptances_store_what_their_rule_says(
        clean: AsyncEngine, cipher: SecretCipher, accepted: Accepted) -> None:
    await accepted.check(clean, cipher)


async def _empty(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {', '.join(f'{SCHEMA}.{t}' for t in TABLES)} CASCADE"))


async def test_bad_input_counts(clean: AsyncEngine, cipher: SecretCipher) -> None:
    """The issue's table: tried, typed and naming the field, silently accepted, rows a rejected call wrote."""
    typed = silent = written = 0
    wrong: list[str] = []
    for case in CASES:
        await _empty(clean)
        if case.setup is not None:
            await case.setup(clean, cipher)
        before = await row_counts(clean)
        try:
            await case.action(clean, cipher)
        except (InvalidInputError, ConfigError) as exc:
            if isinstance(exc, case.error) and exc.field == case.field:
                typed += 1
            else:
                wrong.append(f"{case.kind}: {type(exc).__name__} {exc}")
        except Exception as exc:  # untyped: counted, then reported below
            wrong.append(f"{case.kind}: untyped {type(exc).__name__} {exc}")
        else:
            silent += 1
            wrong.append(f"{case.kind}: accepted silently")
        written += sum((await row_counts(clean)).values()) - sum(before.values())
    for accepted in ACCEPTED:
        await _empty(clean)
        await accepted.check(clean, cipher)
    await _empty(clean)
    print(f"\n| tried | typed, naming the field | accepted, documented | silently accepted | "
          f"rows written by a rejected call |\n|---|---|---|---|---|\n"
          f"| {len(CASES) + len(ACCEPTED)} | {typed} | {len(ACCEPTED)} | {silent} | {written} |")
    assert not wrong, wrong
    assert (typed, silent, written) == (len(CASES), 0, 0)


# --- boundaries, with hypothesis ---------------------------------------------------------------

VARCHARS = [(AuditLog, "event_type", "event_type"), (AuditLog, "user_id", "user_id"),
            (AuditLog, "tool_name", "tool_name"), (CostRecord, "model", "model"),
            (CostRecord, "provider", "provider"), (InstalledTool, "name", "name")]
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _build(model: type, field: str, value: str) -> object:
    # ``field`` is chosen at run time, so the keyword arguments cannot be checked statically.
    if model is AuditLog:
        audit_args: dict[str, Any] = {"event_type": "e", field: value}
        return AuditEvent(**audit_args)
    if model is CostRecord:
        cost_args: dict[str, Any] = {"model": "m", "provider": "p", "cost_usd": 0, "source": "agent", field: value}
        return CostEvent(**cost_args)
    return ToolSpec(**{**SKILL, field: value})


@pytest.mark.parametrize(("model", "column", "field"), VARCHARS)
@FAST
@given(data=st.data())
def test_varchar_limits_are_the_models(model: type, column: str, field: str, data: st.DataObject) -> None:
    limit = varchar_limit(model, column)
    size = data.draw(st.integers(min_value=1, max_value=limit + 40))
    value = data.draw(st.text(alphabet=string.ascii_letters + "가나다é", min_size=size, max_size=size))
    if size <= limit:
        _build(model, field, value)
    else:
        with pytest.raises(InvalidInputError, match=f"VARCHAR\\({limit}\\)") as info:
            _build(model, field, value)
        assert info.value.field == field


def accepted_or_rejected(valid: bool, field: str, build: Callable[[], object]) -> object | None:
    """Build; when ``valid`` is False the build must raise naming ``field``."""
    if valid:
        return build()
    with pytest.raises(InvalidInputError) as info:
        build()
    assert info.value.field == field
    return None


@FAST
@given(tokens=st.integers(min_value=-(2**40), max_value=2**40))
def test_token_boundaries(tokens: int) -> None:
    accepted_or_rejected(0 <= tokens <= INT4_MAX, "input_tokens", lambda: CostEvent(
        model="m", provider="p", input_tokens=tokens, cost_usd=0, source="agent"))


@FAST
@given(cost=st.decimals(min_value=Decimal("-1"), max_value=Decimal("20000"), allow_nan=False, places=8))
def test_cost_boundaries(cost: Decimal) -> None:
    rounded = cost.quantize(Decimal("0.000001"))
    event = accepted_or_rejected(cost >= 0 and rounded < 10_000, "cost_usd",
                                 lambda: CostEvent(model="m", provider="p", cost_usd=cost, source="agent"))
    if event is not None:
        assert isinstance(event, CostEvent)
        assert event.cost_usd == rounded


def _is_ip(text_: str) -> bool:
    try:
        ipaddress.ip_address(text_)
    except ValueError:
        return False
    return True


@FAST
@given(address=st.one_of(st.ip_addresses().map(str), st.text(max_size=45)))
def test_inet_accepts_exactly_ip_addresses(address: str) -> None:
    accepted_or_rejected(_is_ip(address), "ip_address", lambda: AuditEvent("e", ip_address=address))


@FAST
@given(severity=st.one_of(st.sampled_from(["debug", "info", "warning", "error", "critical"]), st.text(max_size=12)))
@pytest.mark.claim("S4-audit-severities")
def test_only_documented_severities(severity: str) -> None:
    accepted_or_rejected(severity in ("debug", "info", "warning", "error", "critical"), "severity",
                         lambda: AuditEvent("e", severity=severity))


async def test_values_exactly_at_every_limit_are_accepted_by_the_server(clean: AsyncEngine) -> None:
    """The Python limits are the DDL's: a value at each limit round-trips through the real columns."""
    await AuditLogRepository(clean).record_many([AuditEvent(
        "e" * varchar_limit(AuditLog, "event_type"), user_id="u" * varchar_limit(AuditLog, "user_id"),
        session_id="s" * varchar_limit(AuditLog, "session_id"), tool_name="t" * varchar_limit(AuditLog, "tool_name"),
        action="a" * varchar_limit(AuditLog, "action"), ip_address="::ffff:10.0.0.1",
        details={"blob": "x" * (MAX_JSON_BYTES - 20)})])
    await CostRepository(clean).record(CostEvent(
        model="m" * varchar_limit(CostRecord, "model"), provider="p" * varchar_limit(CostRecord, "provider"),
        input_tokens=INT4_MAX, output_tokens=0, cost_usd=Decimal("9999.999999"), source="forge"))
    async with clean.connect() as conn:
        assert (await conn.execute(text("SELECT max(cost_usd) FROM jedisos.cost_tracking"))).scalar_one() == Decimal(
            "9999.999999")
        assert (await conn.execute(text("SELECT length(event_type) FROM jedisos.audit_logs"))).scalar_one() == 100


# --- the column-wise fast path of record_many agrees with the per-row checks ---------------------

AUDIT_ROWS: list[dict[str, Any]] = [
    {"event_type": "login"},
    {"event_type": "tool_executed", "severity": "warning", "user_id": "u", "channel": "cli", "session_id": "s",
     "tool_name": "t", "action": "a", "result": "denied", "details": {"k": [1, 2]}, "ip_address": "::1",
     "envelope_id": uuid.UUID(int=7), "timestamp": dt.datetime(2026, 1, 1, tzinfo=dt.UTC)},
]
COST_ROWS: list[dict[str, Any]] = [
    {"model": "m", "provider": "p", "cost_usd": Decimal("0.1234567"), "source": "agent"},
    {"model": "m", "provider": "p", "input_tokens": 3, "output_tokens": 4, "total_tokens": 9,
     "cost_usd": Decimal("9999.999999"), "source": "hindsight", "session_id": "s", "user_id": "u",
     "latency_ms": 0, "status": "timeout", "timestamp": dt.datetime(2026, 1, 1, tzinfo=dt.UTC)},
]


def test_fast_path_rows_equal_per_row_rows() -> None:
    from jedisos_db.runtime.repositories import audit as audit_module
    from jedisos_db.runtime.repositories import cost as cost_module

    audit_columns = audit_module.fast_columns(AUDIT_ROWS)
    cost_columns = cost_module.fast_columns(COST_ROWS)
    assert audit_columns is not None
    assert cost_columns is not None
    assert list(zip(*audit_columns, strict=True)) == [AuditEvent(**d).row for d in AUDIT_ROWS]
    assert list(zip(*cost_columns, strict=True)) == [CostEvent(**d).row for d in COST_ROWS]


@pytest.mark.parametrize("bad", [
    {"severity": "fatal"}, {"channel": ["web"]}, {"event_type": ""}, {"details": None}, {"ip_address": "x"},
    {"timestamp": dt.datetime(2026, 1, 1)}, {"user_id": "u" * 256}, {"action": "\x00"}, {"extra": 1},
])
def test_fast_path_defers_every_doubt_to_the_per_row_path(bad: dict[str, Any]) -> None:
    from jedisos_db.runtime.repositories import audit as audit_module

    assert audit_module.fast_columns([*AUDIT_ROWS, {"event_type": "e", **bad}]) is None
    with pytest.raises(InvalidInputError) as info:
        [AuditEvent.coerce(d, i) for i, d in enumerate([*AUDIT_ROWS, {"event_type": "e", **bad}])]
    assert info.value.index == 2


@pytest.mark.parametrize("bad", [
    {"input_tokens": -1}, {"cost_usd": Decimal("-1")}, {"cost_usd": Decimal("10000")}, {"cost_usd": Decimal("NaN")},
    {"source": "x"}, {"status": None}, {"latency_ms": -1}, {"total_tokens": INT4_MAX + 1}, {"model": None},
])
def test_cost_fast_path_defers_every_doubt(bad: dict[str, Any]) -> None:
    from jedisos_db.runtime.repositories import cost as cost_module

    rows = [*COST_ROWS, {**COST_ROWS[0], **bad}]
    assert cost_module.fast_columns(rows) is None
    with pytest.raises(InvalidInputError) as info:
        [CostEvent.coerce(d, i) for i, d in enumerate(rows)]
    assert info.value.index == 2
