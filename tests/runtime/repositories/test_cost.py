"""Cost tracking repository against the real server (design §4-4, §4-5 budgets)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from jedisos_db.runtime.errors import InvalidInputError
from jedisos_db.runtime.repositories.cost import CostEvent, CostRepository, cost_event_from_litellm
from jedisos_db.runtime.repositories.preferences import PreferencesRepository
from tests.plugins.tables import count

NOON = dt.datetime(2026, 3, 15, 12, 0, tzinfo=dt.UTC)


def call(**kw: Any) -> CostEvent:
    base: dict[str, Any] = {"model": "claude-sonnet-5-20260203", "provider": "anthropic", "input_tokens": 100,
                               "output_tokens": 50, "cost_usd": Decimal("0.001500"), "source": "agent",
                               "user_id": "u1", "latency_ms": 800, "timestamp": NOON}
    base.update(kw)
    return CostEvent(**base)


def test_total_tokens_defaults_to_input_plus_output_and_cost_is_rounded_to_six_places() -> None:
    event = call(cost_usd=0.12345678)
    assert event.total_tokens == 150
    assert event.cost_usd == Decimal("0.123457")
    assert call(total_tokens=999).total_tokens == 999
    positional = CostEvent("gpt-5", "openai", cost_usd="0.5", source="forge")
    assert (positional.model, positional.provider, positional.total_tokens) == ("gpt-5", "openai", 0)


async def test_record_and_record_many(clean: AsyncEngine) -> None:
    repo = CostRepository(clean)
    first = await repo.record(call())
    assert first == 1
    assert await repo.record_many([call(user_id=f"u{i}") for i in range(200)]) == 200
    assert await count(clean, "cost_tracking") == 201


async def test_record_many_with_negative_tokens_in_row_3_writes_nothing(clean: AsyncEngine) -> None:
    repo = CostRepository(clean)
    rows: list[dict[str, object]] = [{"model": "m", "provider": "p", "cost_usd": 0, "source": "agent"}
                                     for _ in range(5)]
    rows[3]["input_tokens"] = -1
    with pytest.raises(InvalidInputError) as info:
        await repo.record_many(rows)
    assert (info.value.index, info.value.field) == (3, "input_tokens")
    assert ">= 0" in info.value.rule
    assert await count(clean, "cost_tracking") == 0


@pytest.mark.claim("S4-daily-cost-view")
async def test_daily_summary_groups_by_utc_day_user_source_model(clean: AsyncEngine) -> None:
    repo = CostRepository(clean)
    await repo.record_many([
        call(), call(latency_ms=1200),
        call(source="hindsight", latency_ms=None),
        call(timestamp=NOON + dt.timedelta(days=1)),
        call(user_id="u2"),
    ])
    rows = await repo.daily_summary(user_id="u1", since=NOON.date(), until=NOON.date())
    by_source = {r.source: r for r in rows}
    assert set(by_source) == {"agent", "hindsight"}
    agent = by_source["agent"]
    assert (agent.call_count, agent.total_input_tokens, agent.total_output_tokens) == (2, 200, 100)
    assert agent.total_cost_usd == Decimal("0.003")
    assert agent.avg_latency_ms == 1000
    assert by_source["hindsight"].avg_latency_ms is None
    assert len(await repo.daily_summary(user_id="u1")) == 3


@pytest.mark.claim("S4-budget-null-unlimited")
async def test_check_budget_against_user_preferences(clean: AsyncEngine) -> None:
    repo = CostRepository(clean)
    prefs = PreferencesRepository(clean)
    await prefs.get_or_create("u1")
    await prefs.set_budgets("u1", daily_usd="1.00", monthly_usd="10.00")
    await repo.record_many([
        call(cost_usd="0.60"),
        call(cost_usd="0.50", timestamp=NOON - dt.timedelta(days=3)),
        call(cost_usd="9.00", timestamp=NOON - dt.timedelta(days=20)),  # February: another month
        call(cost_usd="5.00", user_id="someone-else"),
    ])
    status = await repo.check_budget("u1", at=NOON)
    assert (status.daily_spent_usd, status.monthly_spent_usd) == (Decimal("0.60"), Decimal("1.10"))
    assert status.allowed
    await repo.record(call(cost_usd="0.40", timestamp=NOON - dt.timedelta(minutes=1)))
    status = await repo.check_budget("u1", at=NOON)
    assert status.daily_exceeded
    assert not status.monthly_exceeded
    assert not status.allowed


@pytest.mark.claim("S4-budget-null-unlimited")
async def test_check_budget_without_preferences_is_unlimited(clean: AsyncEngine) -> None:
    status = await CostRepository(clean).check_budget("nobody")
    assert status.daily_budget_usd is None
    assert status.allowed


@pytest.mark.claim("S4-litellm-callback")
async def test_litellm_success_callback_turns_its_arguments_into_a_row(clean: AsyncEngine) -> None:
    repo = CostRepository(clean)
    start = NOON
    end = NOON + dt.timedelta(milliseconds=1234)
    kwargs = {
        "model": "claude-sonnet-5-20260203",
        "litellm_params": {"custom_llm_provider": "anthropic",
                           "metadata": {"user_id": "u9", "session_id": "s9", "source": "forge"}},
        "response_cost": 0.0042,
    }
    response = SimpleNamespace(usage=SimpleNamespace(prompt_tokens=10, completion_tokens=20, total_tokens=30))
    new_id = await repo.litellm_callback(kwargs, response, start, end)
    assert new_id >= 1
    [row] = await repo.daily_summary(user_id="u9")
    assert (row.model, row.source, row.call_count, row.total_input_tokens) == (
        "claude-sonnet-5-20260203", "forge", 1, 10)
    assert row.total_cost_usd == Decimal("0.004200")
    assert row.avg_latency_ms == 1234


@pytest.mark.claim("S4-litellm-callback")
def test_litellm_callback_accepts_dict_responses_and_provider_prefixed_models() -> None:
    event = cost_event_from_litellm({"model": "openai/gpt-5", "response_cost": None},
                                    {"usage": {"prompt_tokens": 1, "completion_tokens": 2}}, None, None)
    assert (event.provider, event.model, event.total_tokens, event.cost_usd, event.source) == (
        "openai", "gpt-5", 3, Decimal(0), "agent")
    with pytest.raises(InvalidInputError, match="provider"):
        cost_event_from_litellm({"model": "gpt-5"}, {}, None, None)
