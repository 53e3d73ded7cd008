"""MCP server settings (design §4-2): status transitions, health checks, encrypted environments.

``env_encrypted`` holds a Fernet token of the server's environment variables (JSON). The plain
values exist only in :class:`~jedisos_db.runtime.secrets.SecretEnv` objects, whose ``repr`` hides them,
and in :class:`McpServerSpec`, whose ``repr`` leaves ``env`` out.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from jedisos_db.runtime.db.models import McpServer
from jedisos_db.runtime.errors import InvalidInputError, InvalidTransitionError
from jedisos_db.runtime.repositories import validation as v
from jedisos_db.runtime.repositories.base import Repository
from jedisos_db.runtime.secrets import SecretCipher, SecretEnv

_NAME = v.varchar_limit(McpServer, "server_name")
_IMAGE = v.varchar_limit(McpServer, "docker_image")
_CONTAINER = v.varchar_limit(McpServer, "container_name")
_OAUTH = v.varchar_limit(McpServer, "oauth_provider")
_PROXY = v.varchar_limit(McpServer, "auth_proxy_url")

TRANSITIONS: Final[Mapping[str, frozenset[str]]] = {
    "stopped": frozenset({"starting"}),
    "starting": frozenset({"running", "error", "stopped"}),
    "running": frozenset({"stopped", "error"}),
    "error": frozenset({"starting", "stopped"}),
}
"""Allowed status changes (the lifecycle of a container: start, run, stop, fail, retry)."""

CONSTRAINTS: Final = {"mcp_servers_server_name_key": "server_name", "mcp_servers_tool_id_fkey": "tool_id"}


@dataclass(frozen=True, slots=True, kw_only=True)
class McpServerSpec:
    """The ``mcp_servers`` row of a Tier 2 tool. ``env`` is encrypted before it is stored."""

    server_name: str
    docker_image: str
    container_name: str | None = None
    port: int | None = None
    oauth_provider: str | None = None
    oauth_scopes: list[str] = field(default_factory=list)
    auth_proxy_url: str | None = None
    env: Mapping[str, str] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        v.text("server_name", self.server_name, _NAME, required=True)
        v.text("docker_image", self.docker_image, _IMAGE, required=True)
        v.text("container_name", self.container_name, _CONTAINER)
        v.integer("port", self.port, low=1, high=65535, required=False)
        v.text("oauth_provider", self.oauth_provider, _OAUTH)
        v.string_list("oauth_scopes", self.oauth_scopes)
        v.text("auth_proxy_url", self.auth_proxy_url, _PROXY)
        if self.env is not None and not isinstance(self.env, Mapping):
            raise InvalidInputError("env", f"must be a mapping of strings, got {type(self.env).__name__}")


def _require_cipher(cipher: SecretCipher | None) -> SecretCipher:
    if cipher is None:
        raise InvalidInputError("env", "cannot be stored without a SecretCipher (JEDISOS_FERNET_KEYS)")
    return cipher


async def insert_server(session: AsyncSession, tool_id: uuid.UUID, spec: McpServerSpec,
                        cipher: SecretCipher | None) -> McpServer:
    """Insert ``spec`` for ``tool_id`` in the caller's transaction (the tools repository uses it)."""
    encrypted = _require_cipher(cipher).encrypt_env(spec.env) if spec.env else None
    stmt = insert(McpServer).values(
        tool_id=tool_id, server_name=spec.server_name, docker_image=spec.docker_image,
        container_name=spec.container_name, port=spec.port, oauth_provider=spec.oauth_provider,
        oauth_scopes=list(spec.oauth_scopes), auth_proxy_url=spec.auth_proxy_url, env_encrypted=encrypted,
    ).returning(McpServer)
    return (await session.execute(stmt)).scalar_one()


class McpServerRepository(Repository[McpServer]):
    """Reads and changes ``jedisos.mcp_servers``."""

    model = McpServer
    noun = "server"
    key_field = "server_id"
    constraints = CONSTRAINTS

    def __init__(self, engine: AsyncEngine, cipher: SecretCipher | None = None) -> None:
        super().__init__(engine)
        self._cipher = cipher

    async def add(self, tool_id: uuid.UUID, spec: McpServerSpec, *, session: AsyncSession | None = None) -> McpServer:
        tool_id = v.uuid_value("tool_id", tool_id, required=True)  # type: ignore[assignment]
        async with self._transaction(session) as s:
            return await insert_server(s, tool_id, spec, self._cipher)

    async def get(self, server_id: uuid.UUID, *, session: AsyncSession | None = None) -> McpServer:
        return await self._get(server_id, session=session)

    async def get_by_name(self, server_name: str, *, session: AsyncSession | None = None) -> McpServer:
        return await self._get(server_name, by="server_name", session=session)

    async def transition(self, server_id: uuid.UUID, status: str, *, error_message: str | None = None,
                         session: AsyncSession | None = None) -> McpServer:
        """Move to ``status`` if :data:`TRANSITIONS` allows it from the current one."""
        v.choice("status", status, v.MCP_STATUSES, required=True)
        v.text("error_message", error_message, None)
        async with self._transaction(session) as s:
            current = (await self._get(server_id, lock=True, session=s)).status
            if status not in TRANSITIONS.get(current, frozenset()):
                raise InvalidTransitionError(
                    "status", f"cannot go from {current} to {status}; allowed: "
                              f"{', '.join(sorted(TRANSITIONS.get(current, ()))) or 'none'}")
            return await self._update(server_id, {
                "status": status,
                "error_message": error_message if status == "error" else None,
            }, session=s)

    async def record_health_check(self, server_id: uuid.UUID, *, healthy: bool, error_message: str | None = None,
                                  at: dt.datetime | None = None, session: AsyncSession | None = None) -> McpServer:
        """Stamp ``last_health_check``; a failed check of a running server moves it to ``error``."""
        v.flag("healthy", healthy)
        v.text("error_message", error_message, None)
        at = v.timestamp("at", at)
        async with self._transaction(session) as s:
            current = (await self._get(server_id, lock=True, session=s)).status
            values: dict[str, Any] = {"last_health_check": at if at is not None else func.now()}
            if not healthy and current == "running":
                values.update(status="error", error_message=error_message or "health check failed")
            return await self._update(server_id, values, session=s)

    async def set_env(self, server_id: uuid.UUID, env: Mapping[str, str], *,
                      session: AsyncSession | None = None) -> McpServer:
        """Encrypt and store ``env`` (replacing the previous one)."""
        token = _require_cipher(self._cipher).encrypt_env(env)
        return await self._update(server_id, {"env_encrypted": token}, session=session)

    async def get_env(self, server_id: uuid.UUID, *, session: AsyncSession | None = None) -> SecretEnv:
        server = await self.get(server_id, session=session)
        if server.env_encrypted is None:
            return SecretEnv({})
        return _require_cipher(self._cipher).decrypt_env(server.env_encrypted)

    async def rotate_env_keys(self, *, session: AsyncSession | None = None) -> int:
        """Re-encrypt every stored environment under the newest key, in one transaction; returns rows."""
        cipher = _require_cipher(self._cipher)
        async with self._transaction(session) as s:
            rows = (await s.execute(
                select(McpServer.id, McpServer.env_encrypted)
                .where(McpServer.env_encrypted.is_not(None)).with_for_update()
            )).all()
            for server_id, token in rows:
                await self._update(server_id, {"env_encrypted": cipher.rotate(token)}, session=s)
        return len(rows)
