"""Representative generated rows for every ``jedisos`` table (design §4), deterministic per seed.

The capacity model measures bytes per row on these, and the write benchmarks and Locust users
insert them, so their shape matters more than their meaning: realistic string lengths, JSONB
payloads the size JediSOS writes (tool arguments, policy decisions, LiteLLM metadata), the
severity mix the retention policy acts on, timestamps spread over a window.

Each generator returns dicts keyed by column name (what SQLAlchemy Core ``insert()`` takes);
``as_tuples`` turns them into positional rows for ``COPY``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import random
import uuid
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any, Final

from jedisos_db.runtime.repositories import marketplace
from jedisos_db.runtime.repositories import validation as v

Row = dict[str, Any]

# The documented values (validation.py) are the only source of every enum column below; the
# weights are this generator's own assumption about how often each value occurs.
SEVERITY_MIX: dict[str, float] = dict(zip(v.SEVERITIES, (0.10, 0.80, 0.07, 0.025, 0.005), strict=True))
"""Share of each audit severity. The design's retention (§7) deletes debug/info after 90 days,
so this mix decides how much of ``audit_logs`` the policy can reclaim."""
AUDIT_RESULT_WEIGHTS: Final = dict(zip(v.AUDIT_RESULTS, (5, 1, 1), strict=True))
COST_SOURCE_WEIGHTS: Final = dict(zip(v.COST_SOURCES, (3, 2, 1), strict=True))
COST_STATUS_WEIGHTS: Final = dict(zip(v.COST_STATUSES, (97, 2, 1), strict=True))
TOOL_TIER_WEIGHTS: Final = dict(zip(v.TOOL_TIERS, (7, 3), strict=True))

EVENT_TYPES = ["tool.executed", "policy.decision", "auth.login", "skill.installed", "envelope.verified",
               "memory.recall", "memory.retain", "schedule.fired", "mcp.health_check", "channel.message"]
"""Sample event types: the design leaves ``event_type`` open (no documented values)."""
TOOLS = ["web_search", "file_read", "shell_exec", "calendar_create", "gmail_send", "notion_query",
         "github_issue", "weather", "calculator", "browser_open"]
MODELS = [("claude-sonnet-5-20260203", "anthropic"), ("claude-haiku-4-5", "anthropic"), ("gpt-5-mini", "openai"),
          ("gemini-3-flash", "google"), ("text-embedding-3-small", "openai")]


def _rng(seed: int) -> random.Random:
    return random.Random(seed)


def _stamp(rng: random.Random, start: dt.datetime, span_days: float) -> dt.datetime:
    return start + dt.timedelta(seconds=rng.uniform(0, span_days * 86400))


def _words(rng: random.Random, n: int) -> str:
    vocab = ["agent", "memory", "tool", "user", "schedule", "policy", "allow", "deny", "request", "result",
             "calendar", "email", "search", "summary", "token", "model", "budget", "session", "thread", "bank"]
    return " ".join(rng.choice(vocab) for _ in range(n))


def _session(rng: random.Random) -> str:
    return f"sess-{rng.getrandbits(64):016x}"


def _uuid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def _weighted(rng: random.Random, weights: Mapping[Any, float]) -> Any:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _default_start(span_days: float) -> dt.datetime:
    return dt.datetime.now(dt.UTC) - dt.timedelta(days=span_days)


def audit_rows(n: int, *, seed: int = 0, users: int = 10, start: dt.datetime | None = None,
               span_days: float = 30.0) -> list[Row]:
    """``audit_logs`` rows: a tool run or policy decision with its arguments in ``details``."""
    rng = _rng(seed)
    start = start or _default_start(span_days)
    rows = []
    for _ in range(n):
        tool = rng.choice(TOOLS)
        rows.append({
            "timestamp": _stamp(rng, start, span_days),
            "event_type": rng.choice(EVENT_TYPES),
            "severity": _weighted(rng, SEVERITY_MIX),
            "user_id": f"user-{rng.randrange(users):05d}",
            "channel": rng.choice(v.CHANNELS),
            "session_id": _session(rng),
            "tool_name": tool,
            "action": f"{tool}.invoke",
            "result": _weighted(rng, AUDIT_RESULT_WEIGHTS),
            "details": {
                "args": {"query": _words(rng, rng.randint(3, 12)), "limit": rng.randint(1, 50)},
                "duration_ms": rng.randint(5, 4000),
                "policy": {"rule": f"tier{rng.randint(1, 2)}-default", "decision": rng.choice(["allow", "deny"])},
                "trace_id": f"{rng.getrandbits(128):032x}",
            },
            "ip_address": ipaddress.IPv4Address(rng.getrandbits(32)),
            "envelope_id": _uuid(rng),
            "idempotency_key": None,  # what a write that is never retried sends (bench/test_writes.py sets keys)
        })
    return rows


def cost_rows(n: int, *, seed: int = 0, users: int = 10, start: dt.datetime | None = None,
              span_days: float = 30.0) -> list[Row]:
    """``cost_tracking`` rows: one LLM call as LiteLLM's ``success_callback`` reports it."""
    rng = _rng(seed)
    start = start or _default_start(span_days)
    rows = []
    for _ in range(n):
        model, provider = rng.choice(MODELS)
        inp, out = rng.randint(200, 12000), rng.randint(20, 2000)
        rows.append({
            "timestamp": _stamp(rng, start, span_days),
            "model": model,
            "provider": provider,
            "input_tokens": inp,
            "output_tokens": out,
            "total_tokens": inp + out,
            "cost_usd": Decimal(inp * 3 + out * 15).scaleb(-6).quantize(Decimal("0.000001")),
            "source": _weighted(rng, COST_SOURCE_WEIGHTS),
            "session_id": _session(rng),
            "user_id": f"user-{rng.randrange(users):05d}",
            "latency_ms": rng.randint(150, 30000),
            "status": _weighted(rng, COST_STATUS_WEIGHTS),
            "idempotency_key": None,
        })
    return rows


def installed_tool_rows(n: int, *, seed: int = 0) -> list[Row]:
    rng = _rng(seed)
    rows = []
    for i in range(n):
        tier = _weighted(rng, TOOL_TIER_WEIGHTS)
        name = f"{rng.choice(TOOLS)}-{i:05d}-{rng.getrandbits(24):06x}"
        rows.append({
            "id": _uuid(rng),
            "name": name,
            "tier": tier,
            "version": f"{rng.randint(0, 3)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}",
            "description": _words(rng, rng.randint(8, 30)),
            "author": f"author-{rng.randint(1, 500)}",
            "tool_path": f"/var/lib/jedisos/tools/{name}" if tier == 1 else None,
            "tool_yaml_path": f"/var/lib/jedisos/tools/{name}/tool.yaml" if tier == 1 else None,
            "docker_image": f"ghcr.io/jedisos/{name}:latest" if tier == 2 else None,
            "mcp_endpoint": f"http://127.0.0.1:{9000 + i % 1000}/mcp" if tier == 2 else None,
            "source": rng.choice(v.TOOL_SOURCES),
            "enabled": rng.random() < 0.9,
            "tags": [rng.choice(["productivity", "search", "dev", "finance", "home"]) for _ in range(3)],
            "env_required": ["API_KEY"] if rng.random() < 0.4 else [],
        })
    return rows


def mcp_server_rows(tool_ids: Sequence[uuid.UUID], *, seed: int = 0) -> list[Row]:
    """One ``mcp_servers`` row per given ``installed_tools`` id (its foreign key)."""
    rng = _rng(seed)
    rows = []
    for i, tool_id in enumerate(tool_ids):
        name = f"mcp-{i:05d}-{rng.getrandbits(24):06x}"
        rows.append({
            "tool_id": tool_id,
            "server_name": name,
            "docker_image": f"ghcr.io/jedisos/{name}:1.{rng.randint(0, 9)}",
            "container_name": f"jedisos-{name}",
            "port": 9000 + i % 1000,
            "oauth_provider": rng.choice([None, "google", "github", "notion"]),
            "oauth_scopes": ["read", "write"] if rng.random() < 0.5 else [],
            "auth_proxy_url": "http://127.0.0.1:8090/oauth",
            "status": rng.choice(v.MCP_STATUSES),
            "last_health_check": dt.datetime.now(dt.UTC),
            "error_message": None,
            # Encrypted env (never plain text): random bytes stand in for the ciphertext.
            "env_encrypted": rng.randbytes(rng.randint(64, 256)),
        })
    return rows


def user_preferences_rows(n: int, *, seed: int = 0) -> list[Row]:
    rng = _rng(seed)
    return [{
        "user_id": f"user-{i:05d}-{rng.getrandbits(16):04x}",
        "primary_model": MODELS[0][0],
        "fallback_models": [MODELS[1][0], MODELS[2][0]],
        "temperature": Decimal("0.70"),
        "max_tokens": 8192,
        "daily_budget_usd": Decimal(rng.randint(1, 50)),
        "monthly_budget_usd": Decimal(rng.randint(20, 500)),
        "auto_approve_skills": rng.random() < 0.2,
        "allowed_tools": rng.sample(TOOLS, 4),
        "blocked_tools": ["shell_exec", "file_delete"],
        "notification_channels": {name: rng.random() < 0.8
                                  for name in rng.sample(v.NOTIFICATION_CHANNELS, rng.randint(1, 3))},
        "identity_file": f"/var/lib/jedisos/identity/user-{i:05d}.md",
        "bank_id": f"bank-user-{i:05d}",
    } for i in range(n)]


def schedule_rows(n: int, *, seed: int = 0, users: int = 10) -> list[Row]:
    rng = _rng(seed)
    now = dt.datetime.now(dt.UTC)
    return [{
        "user_id": f"user-{rng.randrange(users):05d}",
        "name": f"{_words(rng, 3)} {i}",
        "cron_expr": f"{rng.randint(0, 59)} {rng.randint(0, 23)} * * {rng.choice(['*', '1-5', '0'])}",
        "action_type": rng.choice(v.ACTION_TYPES),
        "action_payload": {"prompt": _words(rng, rng.randint(10, 40)), "channel": rng.choice(v.CHANNELS)},
        "enabled": rng.random() < 0.85,
        "last_run": now - dt.timedelta(hours=rng.randint(1, 200)),
        "next_run": now + dt.timedelta(hours=rng.randint(1, 200)),
        "last_result": rng.choice([*v.SCHEDULE_RESULTS, None]),
        "last_error": None,
    } for i in range(n)]


def marketplace_rows(n: int, *, seed: int = 0) -> list[Row]:
    """Rows as :meth:`MarketplaceRepository.upsert` writes a registry entry: its columns, and the
    whole entry cached as ``registry_data``; not linked to an installed tool."""
    rng = _rng(seed)
    return [{
        **marketplace.registry_values({
            "package_name": f"@jedisos/{rng.choice(TOOLS)}-{i:05d}-{rng.getrandbits(16):04x}",
            "package_type": rng.choice(v.PACKAGE_TYPES),
            "latest_version": f"{rng.randint(0, 3)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}",
            "description": _words(rng, rng.randint(10, 40)),
            "author": f"author-{rng.randint(1, 500)}",
            "license": rng.choice(["MIT", "Apache-2.0", "BSD-3-Clause"]),
            "tags": [rng.choice(["productivity", "search", "dev", "finance", "home"]) for _ in range(3)],
            "download_count": rng.randint(0, 100000),
            "rating": rng.randint(100, 500) / 100,  # a registry sends JSON numbers
            "homepage": f"https://example.invalid/{i}",
            "checksum": f"{rng.getrandbits(256):064x}",
            "requires": [rng.choice(TOOLS)],
        }),
        "installed_version": None,
        "installed_tool_id": None,
    } for i in range(n)]


ROW_GENERATORS: dict[str, Callable[..., list[Row]]] = {
    "audit_logs": audit_rows,
    "cost_tracking": cost_rows,
    "installed_tools": installed_tool_rows,
    "user_preferences": user_preferences_rows,
    "schedules": schedule_rows,
    "marketplace_packages": marketplace_rows,
}
"""Generators taking ``(n, seed=...)``. ``mcp_servers`` is apart: it needs ``installed_tools`` ids."""

def as_tuples(rows: Sequence[Row], columns: Sequence[str],
              convert: dict[str, Callable[[Any], Any]] | None = None) -> list[tuple[Any, ...]]:
    """Positional rows for ``COPY`` in ``columns`` order (take it from
    ``jedisos_db.runtime.repositories.base.copy_columns``); ``convert`` adapts a column, e.g. JSONB to
    text for asyncpg."""
    convert = convert or {}
    return [tuple(convert[c](r[c]) if c in convert else r[c] for c in columns) for r in rows]


# --- conversation turns (what JediSOS retains in Hindsight after each turn) -------------------

_PEOPLE: Final = ("Alice", "Bob", "Minji", "Jisoo", "Carlos", "Priya", "Tom", "Hana", "Yuna", "Daniel")
_PLACES: Final = ("Seoul", "Busan", "Berlin", "Tokyo", "the office", "Jeju", "Incheon airport", "the gym")
_TOPICS: Final = ("the quarterly report", "the PostgreSQL upgrade", "a dentist appointment", "the trip to Japan",
                  "the piano lesson", "the marketing budget", "a birthday dinner", "the Kubernetes migration",
                  "the new laptop", "the Korean class", "the team offsite", "the mortgage renewal")
_ASKS: Final = ("Can you remind me about {topic} with {person}?", "What did {person} say about {topic}?",
                "Please plan {topic} in {place} next {day}.", "I met {person} in {place} to talk about {topic}.",
                "Schedule a call with {person} about {topic} on {day}.")
_FACTS: Final = ("{person} prefers meetings in the morning.", "{person} lives in {place} and works on {topic}.",
                 "The deadline for {topic} moved to {day}.", "{person} will travel to {place} on {day}.",
                 "{person} asked to keep {topic} within budget.", "{person} recommended a restaurant in {place}.",
                 "The user wants a summary of {topic} every {day}.", "{person} finished the draft of {topic}.")
_DAYS: Final = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def conversation_turns(n: int, *, seed: int = 0) -> list[str]:
    """``n`` conversation turns (a user message and the assistant's reply, 3-5 sentences about people,
    places and tasks that recur), the text JediSOS hands Hindsight's retain after each turn."""
    rng = _rng(seed)
    turns = []
    for _ in range(n):
        def fill(template: str) -> str:
            return template.format(person=rng.choice(_PEOPLE), place=rng.choice(_PLACES),
                                   topic=rng.choice(_TOPICS), day=rng.choice(_DAYS))
        facts = " ".join(fill(rng.choice(_FACTS)) for _ in range(rng.randint(2, 4)))
        turns.append(f"User: {fill(rng.choice(_ASKS))}\nAssistant: {facts}")
    return turns
