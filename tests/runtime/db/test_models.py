"""The ORM models against the migrated schema (design §4)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from jedisos_db.runtime.db import models
from jedisos_db.runtime.db.connect import connect
from jedisos_db.runtime.urls import DatabaseURL
from tests.plugins.tables import server_clock_passes


def test_models_cover_exactly_the_migrated_tables(migrated_db: DatabaseURL) -> None:
    with connect(migrated_db) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'jedisos' AND tablename <> 'schema_migrations'"
        ).fetchall()
    assert {r[0] for r in rows} >= set(models.TABLES)
    assert len(models.TABLES) == 7


@pytest.mark.claim("S4-documented-defaults")
async def test_orm_update_refreshes_updated_at(engine: AsyncEngine) -> None:
    """The design's DDL has no trigger for updated_at; the models' onupdate keeps it current."""
    session_factory = async_sessionmaker(engine, expire_on_commit=False)
    async with session_factory() as session:
        pref = models.UserPreferences(user_id="u-updated-at")
        session.add(pref)
        await session.commit()
        await session.refresh(pref)
        created = pref.updated_at
        await server_clock_passes(engine, created)
        pref.daily_budget_usd = Decimal("3.50")
        await session.commit()
        await session.refresh(pref)
    assert pref.updated_at > created
    assert pref.blocked_tools == ["shell_exec", "file_delete"]  # the documented default


@pytest.mark.claim("S4-daily-cost-view")
async def test_daily_cost_summary_view_is_mapped_read_only(engine: AsyncEngine) -> None:
    session_factory = async_sessionmaker(engine, expire_on_commit=False)
    async with session_factory() as session:
        session.add_all([
            models.CostRecord(model="m", provider="p", source="agent", user_id="u-view",
                              input_tokens=10, output_tokens=5, total_tokens=15, cost_usd=Decimal("0.25")),
            models.CostRecord(model="m", provider="p", source="agent", user_id="u-view",
                              input_tokens=1, output_tokens=1, total_tokens=2, cost_usd=Decimal("0.75")),
        ])
        await session.commit()
        row = (await session.execute(
            select(models.DailyCostSummary).where(models.DailyCostSummary.user_id == "u-view")
        )).scalar_one()
    assert row.call_count == 2
    assert row.total_input_tokens == 11
    assert row.total_cost_usd == Decimal("1.000000")
