"""Marketplace cache repository (design §4-7)."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from jedisos_db.runtime.errors import (
    DuplicateError,
    InvalidInputError,
    MissingReferenceError,
    NotFoundError,
)
from jedisos_db.runtime.repositories.marketplace import MarketplaceRepository
from jedisos_db.runtime.repositories.tools import ToolRepository, ToolSpec
from tests.plugins.tables import count

WEATHER = {"package_name": "@jedisos/weather", "package_type": "skill", "latest_version": "1.0.0",
           "description": "forecasts", "author": "jedisos", "license": "MIT", "tags": ["weather"],
           "download_count": 42, "rating": 4.5, "homepage": "https://example.invalid"}


@pytest.mark.claim("S4-marketplace-cache")
async def test_upsert_inserts_then_refreshes_registry_fields_but_keeps_local_state(clean: AsyncEngine) -> None:
    repo = MarketplaceRepository(clean)
    first = await repo.upsert(WEATHER)
    assert (first.download_count, first.rating) == (42, Decimal("4.50"))
    assert first.registry_data == WEATHER  # the raw registry response is cached
    tool = await ToolRepository(clean).install(ToolSpec(name="@jedisos/weather", version="1.0.0", tool_path="t.py"))
    await repo.link("@jedisos/weather", tool.id, "1.0.0")
    second = await repo.upsert({**WEATHER, "latest_version": "1.1.0", "download_count": 43})
    assert (second.latest_version, second.download_count) == ("1.1.0", 43)
    assert (second.installed_version, second.installed_tool_id) == ("1.0.0", tool.id)
    assert second.last_synced >= first.last_synced
    assert await count(clean, "marketplace_packages") == 1


@pytest.mark.claim("S4-marketplace-cache")
async def test_search_link_unlink(clean: AsyncEngine) -> None:
    repo = MarketplaceRepository(clean)
    await repo.upsert_many([WEATHER, {"package_name": "@x/persona", "package_type": "identity"}])
    assert [p.package_name for p in await repo.search(package_type="identity")] == ["@x/persona"]
    tool = await ToolRepository(clean).install(ToolSpec(name="w", version="1", tool_path="t.py"))
    await repo.link("@jedisos/weather", tool.id, "1.0.0")
    assert [p.package_name for p in await repo.search(installed=True)] == ["@jedisos/weather"]
    unlinked = await repo.unlink("@jedisos/weather")
    assert unlinked.installed_tool_id is None
    assert await repo.search(installed=True) == []
    with pytest.raises(NotFoundError):
        await repo.unlink("@nope/nothing")


@pytest.mark.claim("S4-relations-enforced")
async def test_link_to_missing_tool_is_a_missing_reference_and_changes_nothing(clean: AsyncEngine) -> None:
    repo = MarketplaceRepository(clean)
    await repo.upsert(WEATHER)
    with pytest.raises(MissingReferenceError) as info:
        await repo.link("@jedisos/weather", uuid.uuid4(), "1.0.0")
    assert info.value.field == "installed_tool_id"
    assert (await repo.get("@jedisos/weather")).installed_version is None


async def test_batch_with_bad_entry_or_duplicate_writes_nothing(clean: AsyncEngine) -> None:
    repo = MarketplaceRepository(clean)
    with pytest.raises(InvalidInputError) as info:
        await repo.upsert_many([WEATHER, {"package_name": "@x/y", "package_type": "plugin"}])
    assert (info.value.index, info.value.field) == (1, "package_type")
    with pytest.raises(DuplicateError):
        await repo.upsert_many([WEATHER, WEATHER])
    assert await count(clean, "marketplace_packages") == 0
