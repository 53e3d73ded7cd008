"""Generated rows are rows the data layer accepts (issue 8: the capacity model measured rows the
repositories would reject, because datagen kept its own copies of the documented values).

Every column of every generated row goes through the check its repository applies before any SQL:
the event constructors (``AuditEvent``, ``CostEvent``), the specs (``ToolSpec``, ``McpServerSpec``),
the per-column checks (``preferences.FIELDS``, ``marketplace.registry_values``) and the schedule
checks (cron, action type, run result). A column without a repository check must be named below.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from jedisos_db.harness import datagen
from jedisos_db.runtime.db.models import Schedule, UserPreferences
from jedisos_db.runtime.errors import InvalidInputError
from jedisos_db.runtime.repositories import marketplace, preferences, schedules
from jedisos_db.runtime.repositories import validation as v
from jedisos_db.runtime.repositories.audit import AuditEvent
from jedisos_db.runtime.repositories.cost import CostEvent
from jedisos_db.runtime.repositories.mcp_servers import McpServerSpec
from jedisos_db.runtime.repositories.tools import ToolSpec

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

Row = dict[str, Any]
ROWS = 300
SEEDS = (0, 1, 7, 42)


def _spec_fields(cls: type[DataclassInstance]) -> set[str]:
    return set(cls.__dataclass_fields__) - {"row", "_"}


def _checked_audit(row: Row) -> set[str]:
    AuditEvent(**row)
    return _spec_fields(AuditEvent)


def _checked_cost(row: Row) -> set[str]:
    CostEvent(**row)
    return _spec_fields(CostEvent)


def _checked_tool(row: Row) -> set[str]:
    fields = _spec_fields(ToolSpec)
    ToolSpec(**{k: row[k] for k in fields if k in row})
    v.uuid_value("id", row["id"], required=True)
    return fields | {"id"}


def _checked_mcp_server(row: Row) -> set[str]:
    fields = _spec_fields(McpServerSpec) - {"env"}
    McpServerSpec(**{k: row[k] for k in fields})
    v.uuid_value("tool_id", row["tool_id"], required=True)
    v.choice("status", row["status"], v.MCP_STATUSES, required=True)
    v.timestamp("last_health_check", row["last_health_check"])
    v.text("error_message", row["error_message"], None)
    if not isinstance(row["env_encrypted"], bytes):  # stands in for a Fernet token
        raise InvalidInputError("env_encrypted", "must be bytes")
    return fields | {"tool_id", "status", "last_health_check", "error_message", "env_encrypted"}


def _checked_preferences(row: Row) -> set[str]:
    v.text("user_id", row["user_id"], v.varchar_limit(UserPreferences, "user_id"), required=True)
    for name, check in preferences.FIELDS.items():
        check(row[name])
    return {"user_id", *preferences.FIELDS}


def _checked_schedule(row: Row) -> set[str]:
    # What ScheduleRepository.create checks, then what record_run writes.
    v.text("user_id", row["user_id"], v.varchar_limit(Schedule, "user_id"), required=True)
    v.text("name", row["name"], v.varchar_limit(Schedule, "name"), required=True)
    schedules.check_cron(row["cron_expr"])
    v.choice("action_type", row["action_type"], v.ACTION_TYPES, required=True)
    v.json_document("action_payload", row["action_payload"], kind=dict, required=True)
    v.flag("enabled", row["enabled"])
    for name in ("last_run", "next_run"):
        v.timestamp(name, row[name])
    v.choice("last_result", row["last_result"], v.SCHEDULE_RESULTS)
    v.text("last_error", row["last_error"], None)
    return {"user_id", "name", "cron_expr", "action_type", "action_payload", "enabled", "last_run", "next_run",
            "last_result", "last_error"}


def _checked_marketplace(row: Row) -> set[str]:
    # What MarketplaceRepository.upsert writes for the cached registry entry, column for column.
    written = marketplace.registry_values(row["registry_data"])
    assert {k: row[k] for k in written} == written, "columns differ from the registry entry they cache"
    # A registry sync leaves the local state alone; link() is what sets it.
    assert row["installed_version"] is None
    assert row["installed_tool_id"] is None
    return {*written, "installed_version", "installed_tool_id"}


CHECKS: dict[str, Callable[[Row], set[str]]] = {
    "audit_logs": _checked_audit,
    "cost_tracking": _checked_cost,
    "installed_tools": _checked_tool,
    "user_preferences": _checked_preferences,
    "schedules": _checked_schedule,
    "marketplace_packages": _checked_marketplace,
}


def _generated(table: str, seed: int) -> list[Row]:
    if table == "mcp_servers":
        tools = datagen.installed_tool_rows(ROWS, seed=seed)
        return datagen.mcp_server_rows([t["id"] for t in tools], seed=seed)
    return datagen.ROW_GENERATORS[table](ROWS, seed=seed)


def test_every_generated_table_has_a_check() -> None:
    assert set(CHECKS) == set(datagen.ROW_GENERATORS)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("table", [*CHECKS, "mcp_servers"])
def test_every_generated_row_passes_the_repository_checks(table: str, seed: int) -> None:
    check = _checked_mcp_server if table == "mcp_servers" else CHECKS[table]
    rows = _generated(table, seed)
    assert len(rows) == ROWS
    for i, row in enumerate(rows):
        try:
            checked = check(row)
        except InvalidInputError as exc:
            raise AssertionError(f"{table} seed {seed}: datagen row {i} is rejected: {exc}") from exc
        assert set(row) <= checked, f"{table}: columns no check covers: {sorted(set(row) - checked)}"


def test_generated_values_cover_the_documented_choices() -> None:
    """Draws come from validation's documented values, and a few hundred rows reach most of them."""
    rows = {table: _generated(table, 0) for table in [*CHECKS, "mcp_servers"]}

    def seen(table: str, column: str) -> set[Any]:
        return {r[column] for r in rows[table]} - {None}

    assert seen("audit_logs", "severity") == set(v.SEVERITIES)
    assert seen("audit_logs", "channel") == set(v.CHANNELS)
    assert seen("audit_logs", "result") == set(v.AUDIT_RESULTS)
    assert seen("cost_tracking", "source") == set(v.COST_SOURCES)
    assert seen("installed_tools", "source") == set(v.TOOL_SOURCES)
    assert seen("schedules", "action_type") == set(v.ACTION_TYPES)
    assert seen("marketplace_packages", "package_type") == set(v.PACKAGE_TYPES)
    assert seen("mcp_servers", "status") <= set(v.MCP_STATUSES)
    channels = {name for r in rows["user_preferences"] for name in r["notification_channels"]}
    assert channels == set(v.NOTIFICATION_CHANNELS)


def test_timestamps_are_timezone_aware() -> None:
    """A naive timestamp would be read in the server's TimeZone; the repositories refuse them."""
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    row = datagen.audit_rows(1, start=start, span_days=1)[0]
    assert start <= row["timestamp"] <= start + dt.timedelta(days=1)


def test_conversation_turns_are_deterministic_user_and_assistant_text() -> None:
    """Turns for Hindsight's retain: same seed, same turns; a user line, then a reply of 2-4 sentences."""
    turns = datagen.conversation_turns(50, seed=3)
    assert turns == datagen.conversation_turns(50, seed=3)
    assert turns != datagen.conversation_turns(50, seed=4)
    for turn in turns:
        user, reply = turn.split("\n")
        assert user.startswith("User: ")
        assert reply.startswith("Assistant: ")
        assert 2 <= reply.count(".") <= 4, reply
