"""Installed tools repository (design §4-1) with MCP servers (§4-2) and the marketplace link (§4-7)."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from jedisos_db.runtime.db.models import McpServer
from jedisos_db.runtime.errors import DuplicateError, InvalidInputError, NotFoundError
from jedisos_db.runtime.repositories.marketplace import MarketplaceRepository
from jedisos_db.runtime.repositories.mcp_servers import McpServerSpec
from jedisos_db.runtime.repositories.tools import ToolRepository, ToolSpec
from jedisos_db.runtime.secrets import SecretCipher
from tests.plugins.tables import count, server_clock_passes

SKILL = ToolSpec(name="@jedisos/weather", version="1.0.0", tool_path="tools/weather/tool.py",
                 tool_yaml_path="tools/weather/tool.yaml", tags=["weather"], env_required=["WEATHER_KEY"])
MCP_TOOL = ToolSpec(name="@jedisos/google-calendar", version="0.3.0", tier=2, source="marketplace",
                    docker_image="ghcr.io/jedisos/gcal:0.3", mcp_endpoint="http://localhost:3001")
MCP = McpServerSpec(server_name="google-calendar", docker_image="ghcr.io/jedisos/gcal:0.3", port=3001,
                    oauth_provider="google", oauth_scopes=["calendar.readonly"], env={"CLIENT_SECRET": "s3cr3t"})


@pytest.mark.claim("S4-tool-registry", "S4-documented-defaults")
async def test_install_tier1_skill_with_documented_defaults(clean: AsyncEngine) -> None:
    repo = ToolRepository(clean)
    tool = await repo.install(SKILL)
    assert (tool.tier, tool.source, tool.enabled) == (1, "manual", True)
    assert tool.tags == ["weather"]
    assert tool.env_required == ["WEATHER_KEY"]
    assert (await repo.get_by_name("@jedisos/weather")).id == tool.id
    assert await repo.mcp_server(tool.id) is None


@pytest.mark.claim("S4-tool-registry")
async def test_install_tier2_creates_its_mcp_server_row_with_encrypted_env(
        clean: AsyncEngine, cipher: SecretCipher) -> None:
    repo = ToolRepository(clean, cipher)
    tool = await repo.install(MCP_TOOL, MCP)
    server = await repo.mcp_server(tool.id)
    assert server is not None
    assert (server.server_name, server.status, server.port) == ("google-calendar", "stopped", 3001)
    assert server.env_encrypted is not None
    assert b"s3cr3t" not in server.env_encrypted
    assert cipher.decrypt_env(server.env_encrypted)["CLIENT_SECRET"] == "s3cr3t"


async def test_tier2_install_failing_on_its_server_row_leaves_no_tool(clean: AsyncEngine, cipher: SecretCipher) -> None:
    repo = ToolRepository(clean, cipher)
    await repo.install(MCP_TOOL, MCP)
    other = ToolSpec(name="@jedisos/other", version="1", tier=2, docker_image="x")
    with pytest.raises(DuplicateError) as info:
        await repo.install(other, MCP)  # same server_name
    assert info.value.field == "server_name"
    assert await count(clean, "installed_tools") == 1


async def test_update_enable_disable_stamp_updated_at(clean: AsyncEngine) -> None:
    """Design DDL has no trigger for updated_at (DESIGN.md, "Where the seed is wrong"); the repository stamps it."""
    repo = ToolRepository(clean)
    tool = await repo.install(SKILL)
    await server_clock_passes(clean, tool.updated_at)
    updated = await repo.update(tool.id, version="1.1.0", description="now with radar")
    assert updated.version == "1.1.0"
    assert updated.updated_at > tool.updated_at
    assert updated.installed_at == tool.installed_at
    disabled = await repo.disable(tool.id)
    assert disabled.enabled is False
    assert disabled.updated_at > updated.updated_at
    assert [t.name for t in await repo.find(enabled=False)] == ["@jedisos/weather"]
    assert (await repo.enable(tool.id)).enabled is True
    with pytest.raises(InvalidInputError, match="cannot change name"):
        await repo.update(tool.id, name="renamed")


async def test_find_filters_by_tier_and_source(clean: AsyncEngine, cipher: SecretCipher) -> None:
    repo = ToolRepository(clean, cipher)
    await repo.install(SKILL)
    await repo.install(MCP_TOOL, MCP)
    assert [t.tier for t in await repo.find(tier=2)] == [2]
    assert [t.source for t in await repo.find(source="marketplace")] == ["marketplace"]


@pytest.mark.claim("S4-mcp-cascade")
async def test_uninstall_while_marketplace_cache_points_at_the_tool(clean: AsyncEngine, cipher: SecretCipher) -> None:
    """Design §4-7: installed_tool_id has no ON DELETE, so a bare DELETE fails; uninstall unlinks first."""
    tools = ToolRepository(clean, cipher)
    market = MarketplaceRepository(clean)
    tool = await tools.install(MCP_TOOL, MCP)
    await market.upsert({"package_name": "@jedisos/google-calendar", "package_type": "mcp_server"})
    await market.link("@jedisos/google-calendar", tool.id, "0.3.0")
    await tools.uninstall(tool.id)
    package = await market.get("@jedisos/google-calendar")
    assert package.installed_tool_id is None
    assert package.installed_version is None
    assert await count(clean, "installed_tools") == 0
    async with clean.connect() as conn:
        assert (await conn.execute(select(McpServer))).first() is None  # cascaded
    with pytest.raises(NotFoundError):
        await tools.uninstall(tool.id)


async def test_missing_tool_is_not_found(clean: AsyncEngine) -> None:
    with pytest.raises(NotFoundError):
        await ToolRepository(clean).get(uuid.uuid4())
    with pytest.raises(NotFoundError):
        await ToolRepository(clean).update(uuid.uuid4(), version="2")
