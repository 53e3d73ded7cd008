"""MCP server repository (design §4-2): status machine, health checks, Fernet env and key rotation."""

from __future__ import annotations

import logging

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from jedisos_db.runtime.errors import (
    InvalidInputError,
    InvalidTransitionError,
    MissingReferenceError,
    SecretDecryptionError,
)
from jedisos_db.runtime.repositories.mcp_servers import McpServerRepository, McpServerSpec
from jedisos_db.runtime.repositories.tools import ToolRepository, ToolSpec
from jedisos_db.runtime.secrets import SecretCipher

SECRET = "sk-very-secret-value-123"


async def _server(engine: AsyncEngine, cipher: SecretCipher) -> McpServerRepository:
    tools = ToolRepository(engine, cipher)
    await tools.install(ToolSpec(name="gh", version="1", tier=2, docker_image="gh:1"),
                        McpServerSpec(server_name="github", docker_image="gh:1", env={"GITHUB_TOKEN": SECRET}))
    return McpServerRepository(engine, cipher)


@pytest.mark.claim("S4-mcp-status-values")
async def test_status_transitions_follow_the_lifecycle(clean: AsyncEngine, cipher: SecretCipher) -> None:
    repo = await _server(clean, cipher)
    server = await repo.get_by_name("github")
    for status in ("starting", "running", "error", "starting", "running", "stopped"):
        changed = await repo.transition(server.id, status, error_message="boom" if status == "error" else None)
        assert changed.status == status
        assert changed.updated_at >= server.updated_at
    assert changed.error_message is None  # cleared when leaving error
    with pytest.raises(InvalidTransitionError, match="cannot go from stopped to running"):
        await repo.transition(server.id, "running")
    with pytest.raises(InvalidInputError, match="status: must be one of stopped, starting, running, error"):
        await repo.transition(server.id, "paused")
    assert (await repo.get(server.id)).status == "stopped"


@pytest.mark.claim("S4-mcp-status-values")
async def test_failed_health_check_of_running_server_sets_error(clean: AsyncEngine, cipher: SecretCipher) -> None:
    repo = await _server(clean, cipher)
    server = await repo.get_by_name("github")
    await repo.transition(server.id, "starting")
    await repo.transition(server.id, "running")
    ok = await repo.record_health_check(server.id, healthy=True)
    assert ok.last_health_check is not None
    assert ok.status == "running"
    bad = await repo.record_health_check(server.id, healthy=False, error_message="timeout")
    assert (bad.status, bad.error_message) == ("error", "timeout")


@pytest.mark.claim("S4-env-encrypted")
async def test_env_is_encrypted_at_rest_and_never_in_reprs_or_logs(
        clean: AsyncEngine, cipher: SecretCipher, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    repo = await _server(clean, cipher)
    server = await repo.get_by_name("github")
    env = await repo.get_env(server.id)
    assert env["GITHUB_TOKEN"] == SECRET
    logging.getLogger("test").info("env=%s server=%r", env, server)
    assert SECRET not in repr(env)
    assert SECRET not in str(env)
    assert SECRET not in repr(server)
    assert SECRET not in repr(McpServerSpec(server_name="x", docker_image="y", env={"K": SECRET}))
    assert SECRET not in caplog.text
    async with clean.connect() as conn:
        stored = (await conn.execute(text(
            "SELECT count(*) FROM jedisos.mcp_servers WHERE position(convert_to(:s, 'UTF8') in env_encrypted) > 0"
        ), {"s": SECRET})).scalar_one()
    assert stored == 0


@pytest.mark.claim("S4-env-encrypted")
async def test_key_rotation_reencrypts_every_row(clean: AsyncEngine, cipher: SecretCipher) -> None:
    old_key = Fernet.generate_key()
    old = SecretCipher([old_key])
    repo = await _server(clean, old)
    server = await repo.get_by_name("github")
    new_key = Fernet.generate_key()
    rotating = McpServerRepository(clean, SecretCipher([new_key, old_key]))
    assert await rotating.rotate_env_keys() == 1
    new_only = McpServerRepository(clean, SecretCipher([new_key]))
    assert (await new_only.get_env(server.id))["GITHUB_TOKEN"] == SECRET
    with pytest.raises(SecretDecryptionError):
        await McpServerRepository(clean, old).get_env(server.id)


async def test_set_env_replaces_the_stored_environment(clean: AsyncEngine, cipher: SecretCipher) -> None:
    repo = await _server(clean, cipher)
    server = await repo.get_by_name("github")
    await repo.set_env(server.id, {"A": "1"})
    assert dict((await repo.get_env(server.id)).reveal()) == {"A": "1"}


@pytest.mark.claim("S4-relations-enforced")
async def test_server_for_missing_tool_is_a_missing_reference(clean: AsyncEngine, cipher: SecretCipher) -> None:
    import uuid

    with pytest.raises(MissingReferenceError) as info:
        await McpServerRepository(clean, cipher).add(uuid.uuid4(), McpServerSpec(server_name="x", docker_image="y"))
    assert info.value.field == "tool_id"
