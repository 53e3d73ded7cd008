"""Installed tools (design §4-1): Tier 1 skills and Tier 2 MCP servers in one registry.

A Tier 2 tool is installed together with its ``mcp_servers`` row, in one transaction. Uninstall
first unlinks any ``marketplace_packages`` row pointing at the tool: the design's foreign key
has no ``ON DELETE``, so deleting a tool the cache still references would fail.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Final

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from jedisos_db.runtime.db.models import InstalledTool, MarketplacePackage, McpServer
from jedisos_db.runtime.errors import InvalidInputError
from jedisos_db.runtime.repositories import validation as v
from jedisos_db.runtime.repositories.base import Repository
from jedisos_db.runtime.repositories.mcp_servers import CONSTRAINTS as MCP_CONSTRAINTS
from jedisos_db.runtime.repositories.mcp_servers import McpServerSpec, insert_server
from jedisos_db.runtime.secrets import SecretCipher


def _limit(column: str) -> int:
    return v.varchar_limit(InstalledTool, column)


FIELDS: Final[Mapping[str, Callable[[Any], Any]]] = {
    "version": lambda x: v.text("version", x, _limit("version"), required=True),
    "description": lambda x: v.text("description", x, None),
    "author": lambda x: v.text("author", x, _limit("author")),
    "tool_path": lambda x: v.text("tool_path", x, _limit("tool_path")),
    "tool_yaml_path": lambda x: v.text("tool_yaml_path", x, _limit("tool_yaml_path")),
    "docker_image": lambda x: v.text("docker_image", x, _limit("docker_image")),
    "mcp_endpoint": lambda x: v.text("mcp_endpoint", x, _limit("mcp_endpoint")),
    "tags": lambda x: v.string_list("tags", x),
    "env_required": lambda x: v.string_list("env_required", x),
}
"""Columns :meth:`ToolRepository.update` may change, each with its check."""

CONSTRAINTS: Final = {"installed_tools_name_key": "name", **MCP_CONSTRAINTS}


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolSpec:
    """What :meth:`ToolRepository.install` writes; validated on construction."""

    name: str
    version: str
    tier: int = 1
    description: str | None = None
    author: str | None = None
    tool_path: str | None = None
    tool_yaml_path: str | None = None
    docker_image: str | None = None
    mcp_endpoint: str | None = None
    source: str = "manual"
    enabled: bool = True
    tags: list[str] = field(default_factory=list)
    env_required: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        v.text("name", self.name, _limit("name"), required=True)
        v.choice("tier", self.tier, v.TOOL_TIERS, required=True)
        v.choice("source", self.source, v.TOOL_SOURCES, required=True)
        v.flag("enabled", self.enabled)
        for name, check in FIELDS.items():
            check(getattr(self, name))
        if self.tier == 1 and not self.tool_path:
            raise InvalidInputError("tool_path", "is required for a Tier 1 skill")

    def values(self) -> dict[str, Any]:
        """The ``installed_tools`` columns this spec sets: one per field."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


class ToolRepository(Repository[InstalledTool]):
    """Install, update, enable/disable and uninstall ``jedisos.installed_tools`` rows."""

    model = InstalledTool
    noun = "tool"
    key_field = "tool_id"
    constraints = CONSTRAINTS

    def __init__(self, engine: AsyncEngine, cipher: SecretCipher | None = None) -> None:
        super().__init__(engine)
        self._cipher = cipher

    async def install(self, spec: ToolSpec, mcp: McpServerSpec | None = None, *,
                      session: AsyncSession | None = None) -> InstalledTool:
        """Insert the tool (and, for Tier 2, its MCP server) in one transaction."""
        if not isinstance(spec, ToolSpec):
            raise InvalidInputError("spec", f"must be a ToolSpec, got {type(spec).__name__}")
        if spec.tier == 2 and mcp is None:
            raise InvalidInputError("mcp", "a Tier 2 tool is installed with its McpServerSpec")
        if spec.tier == 1 and mcp is not None:
            raise InvalidInputError("mcp", "a Tier 1 skill has no MCP server")
        async with self._transaction(session) as s:
            tool = (await s.execute(insert(InstalledTool).values(**spec.values()).returning(InstalledTool))
                    ).scalar_one()
            if mcp is not None:
                await insert_server(s, tool.id, mcp, self._cipher)
        return tool

    async def get(self, tool_id: uuid.UUID, *, session: AsyncSession | None = None) -> InstalledTool:
        return await self._get(tool_id, session=session)

    async def get_by_name(self, name: str, *, session: AsyncSession | None = None) -> InstalledTool:
        return await self._get(name, by="name", session=session)

    async def find(self, *, tier: int | None = None, source: str | None = None, enabled: bool | None = None,
                   session: AsyncSession | None = None) -> list[InstalledTool]:
        stmt = select(InstalledTool).order_by(InstalledTool.name)
        if tier is not None:
            stmt = stmt.where(InstalledTool.tier == v.choice("tier", tier, v.TOOL_TIERS))
        if source is not None:
            stmt = stmt.where(InstalledTool.source == v.choice("source", source, v.TOOL_SOURCES))
        if enabled is not None:
            stmt = stmt.where(InstalledTool.enabled == v.flag("enabled", enabled))
        async with self._transaction(session) as s:
            return list((await s.execute(stmt)).scalars())

    async def mcp_server(self, tool_id: uuid.UUID, *, session: AsyncSession | None = None) -> McpServer | None:
        tool_id = v.uuid_value("tool_id", tool_id, required=True)  # type: ignore[assignment]
        async with self._transaction(session) as s:
            return (await s.execute(select(McpServer).where(McpServer.tool_id == tool_id))).scalar_one_or_none()

    async def update(self, tool_id: uuid.UUID, *, session: AsyncSession | None = None,
                     **changes: Any) -> InstalledTool:
        """Change any of :data:`FIELDS`; stamps ``updated_at``."""
        v.known_fields("changes", changes, list(FIELDS))
        if not changes:
            raise InvalidInputError("changes", "nothing to update")
        return await self._update(tool_id, {name: FIELDS[name](value) for name, value in changes.items()},
                                  session=session)

    async def set_enabled(self, tool_id: uuid.UUID, enabled: bool, *,
                          session: AsyncSession | None = None) -> InstalledTool:
        return await self._update(tool_id, {"enabled": v.flag("enabled", enabled)}, session=session)

    async def enable(self, tool_id: uuid.UUID, *, session: AsyncSession | None = None) -> InstalledTool:
        return await self.set_enabled(tool_id, True, session=session)

    async def disable(self, tool_id: uuid.UUID, *, session: AsyncSession | None = None) -> InstalledTool:
        return await self.set_enabled(tool_id, False, session=session)

    async def uninstall(self, tool_id: uuid.UUID, *, session: AsyncSession | None = None) -> None:
        """Unlink marketplace rows, then delete the tool (its MCP server row cascades); one transaction."""
        tool_id = v.uuid_value("tool_id", tool_id, required=True)  # type: ignore[assignment]
        async with self._transaction(session) as s:
            await s.execute(
                update(MarketplacePackage).where(MarketplacePackage.installed_tool_id == tool_id)
                .values(installed_tool_id=None, installed_version=None)
            )
            if not await self._delete(tool_id, session=s):
                raise self._missing(tool_id)
