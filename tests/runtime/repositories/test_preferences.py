"""User preferences repository (design §4-5)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from jedisos_db.harness.verify.plugin import ClaimRecorder
from jedisos_db.runtime.errors import InvalidInputError, NotFoundError
from jedisos_db.runtime.repositories.preferences import PreferencesRepository
from tests.plugins.tables import server_clock_passes


@pytest.mark.claim("S2-bank-per-user")
@pytest.mark.claim("S4-documented-defaults")
async def test_get_or_create_applies_the_documented_defaults(clean: AsyncEngine) -> None:
    prefs = await PreferencesRepository(clean).get_or_create("alice")
    assert prefs.primary_model == "claude-sonnet-5-20260203"
    assert prefs.temperature == Decimal("0.70")
    assert prefs.max_tokens == 8192
    assert prefs.blocked_tools == ["shell_exec", "file_delete"]
    assert prefs.allowed_tools == []
    assert prefs.daily_budget_usd is None
    assert prefs.monthly_budget_usd is None
    assert prefs.auto_approve_skills is False
    assert prefs.notification_channels == {}
    assert prefs.bank_id == "jedisos-alice"  # design §2-2 bank naming
    again = await PreferencesRepository(clean).get_or_create("alice")
    assert again.id == prefs.id


@pytest.mark.claim("S4-updated-at", shows="fails")
async def test_design_ddl_leaves_updated_at_stale_and_the_repository_stamps_it(clean: AsyncEngine,
                                                                               claim: ClaimRecorder) -> None:
    """DESIGN.md "Where the seed is wrong": updated_at has no trigger; a plain UPDATE leaves it stale."""
    repo = PreferencesRepository(clean)
    created = await repo.get_or_create("bob")
    await server_clock_passes(clean, created.updated_at)
    async with clean.begin() as conn:
        await conn.execute(text("UPDATE jedisos.user_preferences SET max_tokens = 1 WHERE user_id = 'bob'"))
    stale = await repo.get("bob")
    assert stale is not None
    assert stale.updated_at == created.updated_at
    updated = await repo.update("bob", max_tokens=4096, temperature=0.2)
    assert updated.updated_at > created.updated_at
    assert (updated.max_tokens, updated.temperature) == (4096, Decimal("0.20"))
    claim.fails(f"a plain UPDATE of user_preferences left updated_at at {stale.updated_at.isoformat()}, its "
                "creation time", fix="head's repositories and models (onupdate) stamp updated_at on every change")


async def test_budgets_channels_identity_and_bank(clean: AsyncEngine) -> None:
    repo = PreferencesRepository(clean)
    await repo.get_or_create("carol")
    prefs = await repo.set_budgets("carol", daily_usd=Decimal("2.50"), monthly_usd=50)
    assert (prefs.daily_budget_usd, prefs.monthly_budget_usd) == (Decimal("2.50"), Decimal("50.00"))
    prefs = await repo.update("carol", notification_channels={"telegram": True, "email": False},
                              identity_file="IDENTITY.md", bank_id="jedisos-carol-2",
                              fallback_models=["gpt-5"], auto_approve_skills=True)
    assert prefs.notification_channels == {"telegram": True, "email": False}
    assert (prefs.identity_file, prefs.bank_id, prefs.fallback_models) == ("IDENTITY.md", "jedisos-carol-2",
                                                                          ["gpt-5"])
    assert (await repo.set_budgets("carol")).daily_budget_usd is None  # back to unlimited


@pytest.mark.claim("S4-allowed-tools-empty-allows-all")
async def test_allowed_and_blocked_tools(clean: AsyncEngine) -> None:
    repo = PreferencesRepository(clean)
    assert await repo.is_tool_allowed("dave", "weather")  # empty allow-list: everything not blocked
    assert not await repo.is_tool_allowed("dave", "shell_exec")
    await repo.allow_tool("dave", "weather")
    assert not await repo.is_tool_allowed("dave", "calendar")
    await repo.allow_tool("dave", "shell_exec")  # allowing removes it from the block-list
    assert await repo.is_tool_allowed("dave", "shell_exec")
    prefs = await repo.block_tool("dave", "weather")
    assert prefs.allowed_tools == ["shell_exec"]
    assert "weather" in (prefs.blocked_tools or [])


async def test_update_unknown_user_and_delete(clean: AsyncEngine) -> None:
    repo = PreferencesRepository(clean)
    with pytest.raises(NotFoundError):
        await repo.update("ghost", max_tokens=1)
    await repo.get_or_create("erin")
    assert await repo.delete("erin")
    assert not await repo.delete("erin")
    with pytest.raises(InvalidInputError, match="nothing to update"):
        await repo.update("erin")
