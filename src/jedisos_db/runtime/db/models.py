"""SQLAlchemy 2.0 models of the ``jedisos`` schema, equal to what migrations 001–006 build.

The DDL is the design document's section 4 (claims ``S4-*`` in docs/design-claims.md). Two deliberate
additions that change no DDL: ``updated_at`` gets an ORM ``onupdate`` (the design's DDL has no trigger,
so it would go stale: claim ``S4-updated-at``),
and the ``daily_cost_summary`` view is mapped read-only.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from ipaddress import IPv4Address, IPv6Address
from typing import Any, Final

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import BYTEA, INET, JSONB, TIMESTAMP, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from jedisos_db.runtime.owners import SCHEMA

# PostgreSQL's own default names, so the catalog built from the documented DDL (which names no
# constraints) and the one built by Alembic are identical.
NAMING_CONVENTION = {
    "pk": "%(table_name)s_pkey",
    "uq": "%(table_name)s_%(column_0_name)s_key",
    "fk": "%(table_name)s_%(column_0_name)s_fkey",
    "ck": "%(table_name)s_%(constraint_name)s_check",
    "ix": "%(table_name)s_%(column_0_name)s_idx",
}

VIEW_INFO = {"is_view": True}
"""``Table.info`` marker for views: Alembic's autogenerate must not try to create them as tables."""

TZ = TIMESTAMP(timezone=True)
JSON_ARRAY = text("'[]'::jsonb")
JSON_OBJECT = text("'{}'::jsonb")
NOW = text("now()")


class Base(DeclarativeBase):
    metadata = MetaData(schema=SCHEMA, naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dt.datetime: TZ, dict[str, Any]: JSONB, list[Any]: JSONB}


def _uuid_pk() -> Mapped[uuid.UUID]:
    return mapped_column(UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()"))


def _created_at() -> Mapped[dt.datetime]:
    return mapped_column(TZ, nullable=False, server_default=NOW)


def _updated_at() -> Mapped[dt.datetime]:
    return mapped_column(TZ, nullable=False, server_default=NOW, onupdate=func.now())


class InstalledTool(Base):
    """Section 4-1: Tier 1 skills and Tier 2 MCP servers in one registry."""

    __tablename__ = "installed_tools"
    __table_args__ = (
        Index("idx_tools_tier", "tier"),
        Index("idx_tools_source", "source"),
        Index("idx_tools_enabled", "enabled"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    name: Mapped[str] = mapped_column(String(255), nullable=False, unique=True)
    tier: Mapped[int] = mapped_column(SmallInteger, nullable=False, server_default=text("1"))
    version: Mapped[str] = mapped_column(String(50), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    author: Mapped[str | None] = mapped_column(String(255))
    tool_path: Mapped[str | None] = mapped_column(String(512))
    tool_yaml_path: Mapped[str | None] = mapped_column(String(512))
    docker_image: Mapped[str | None] = mapped_column(String(512))
    mcp_endpoint: Mapped[str | None] = mapped_column(String(512))
    source: Mapped[str] = mapped_column(String(50), nullable=False, server_default=text("'manual'"))
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    tags: Mapped[list[Any] | None] = mapped_column(JSONB, server_default=JSON_ARRAY)
    env_required: Mapped[list[Any] | None] = mapped_column(JSONB, server_default=JSON_ARRAY)
    installed_at: Mapped[dt.datetime] = _created_at()
    updated_at: Mapped[dt.datetime] = _updated_at()


IDEMPOTENCY_KEY: Final = "idempotency_key"
KEYED: Final = f"{IDEMPOTENCY_KEY} IS NOT NULL"
"""The predicate of the event tables' partial unique indexes on ``idempotency_key`` (revision 010), also the
``ON CONFLICT`` target's: rows without a key are not in the index at all."""


class AuditLog(Base):
    """Section 4-3: security events, tool runs, policy decisions."""

    __tablename__ = "audit_logs"
    __table_args__ = (
        Index("idx_audit_timestamp", text("timestamp DESC")),
        Index("idx_audit_event_type", "event_type"),
        Index("idx_audit_user", "user_id"),
        Index(
            "idx_audit_severity",
            "severity",
            postgresql_where=text("severity IN ('warning', 'error', 'critical')"),
        ),
        Index("idx_audit_idempotency_key", "idempotency_key", unique=True, postgresql_where=text(KEYED)),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    timestamp: Mapped[dt.datetime] = mapped_column(TZ, nullable=False, server_default=NOW)
    event_type: Mapped[str] = mapped_column(String(100), nullable=False)
    severity: Mapped[str] = mapped_column(String(20), nullable=False, server_default=text("'info'"))
    user_id: Mapped[str | None] = mapped_column(String(255))
    channel: Mapped[str | None] = mapped_column(String(50))
    session_id: Mapped[str | None] = mapped_column(String(255))
    tool_name: Mapped[str | None] = mapped_column(String(255))
    action: Mapped[str | None] = mapped_column(String(255))
    result: Mapped[str | None] = mapped_column(String(50))
    details: Mapped[dict[str, Any] | None] = mapped_column(JSONB, server_default=JSON_OBJECT)
    ip_address: Mapped[IPv4Address | IPv6Address | None] = mapped_column(INET)
    envelope_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    """Revision 010: a retried write with the same key is written once (see :data:`KEYED`)."""


class CostRecord(Base):
    """Section 4-4: one LLM call, as LiteLLM's ``success_callback`` reports it."""

    __tablename__ = "cost_tracking"
    __table_args__ = (
        Index("idx_cost_timestamp", text("timestamp DESC")),
        Index("idx_cost_model", "model"),
        Index("idx_cost_source", "source"),
        Index("idx_cost_user", "user_id"),
        Index("idx_cost_idempotency_key", "idempotency_key", unique=True, postgresql_where=text(KEYED)),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    timestamp: Mapped[dt.datetime] = mapped_column(TZ, nullable=False, server_default=NOW)
    model: Mapped[str] = mapped_column(String(255), nullable=False)
    provider: Mapped[str] = mapped_column(String(100), nullable=False)
    input_tokens: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    output_tokens: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    total_tokens: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    cost_usd: Mapped[Decimal] = mapped_column(Numeric(10, 6), nullable=False, server_default=text("0"))
    source: Mapped[str] = mapped_column(String(50), nullable=False)
    session_id: Mapped[str | None] = mapped_column(String(255))
    user_id: Mapped[str | None] = mapped_column(String(255))
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20), nullable=False, server_default=text("'success'"))
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    """Revision 010, as on :class:`AuditLog`."""


class UserPreferences(Base):
    """Section 4-5: per-user settings from the Web UI and CLI."""

    __tablename__ = "user_preferences"

    id: Mapped[uuid.UUID] = _uuid_pk()
    user_id: Mapped[str] = mapped_column(String(255), nullable=False, unique=True)
    primary_model: Mapped[str | None] = mapped_column(
        String(255), server_default=text("'claude-sonnet-5-20260203'")
    )
    fallback_models: Mapped[list[Any] | None] = mapped_column(JSONB, server_default=JSON_ARRAY)
    temperature: Mapped[Decimal | None] = mapped_column(Numeric(3, 2), server_default=text("0.7"))
    max_tokens: Mapped[int | None] = mapped_column(Integer, server_default=text("8192"))
    daily_budget_usd: Mapped[Decimal | None] = mapped_column(Numeric(10, 2))
    monthly_budget_usd: Mapped[Decimal | None] = mapped_column(Numeric(10, 2))
    auto_approve_skills: Mapped[bool | None] = mapped_column(Boolean, server_default=text("false"))
    allowed_tools: Mapped[list[Any] | None] = mapped_column(JSONB, server_default=JSON_ARRAY)
    blocked_tools: Mapped[list[Any] | None] = mapped_column(
        JSONB, server_default=text("'[\"shell_exec\", \"file_delete\"]'::jsonb")
    )
    notification_channels: Mapped[dict[str, Any] | None] = mapped_column(JSONB, server_default=JSON_OBJECT)
    identity_file: Mapped[str | None] = mapped_column(String(512))
    bank_id: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = _created_at()
    updated_at: Mapped[dt.datetime] = _updated_at()


class Schedule(Base):
    """Section 4-6: cron-driven jobs."""

    __tablename__ = "schedules"
    __table_args__ = (
        Index("idx_schedules_next_run", "next_run", postgresql_where=text("enabled = true")),
        Index("idx_schedules_user", "user_id"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    user_id: Mapped[str] = mapped_column(String(255), nullable=False)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    cron_expr: Mapped[str] = mapped_column(String(100), nullable=False)
    action_type: Mapped[str] = mapped_column(String(50), nullable=False)
    action_payload: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    last_run: Mapped[dt.datetime | None] = mapped_column(TZ)
    next_run: Mapped[dt.datetime | None] = mapped_column(TZ)
    last_result: Mapped[str | None] = mapped_column(String(50))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = _created_at()
    updated_at: Mapped[dt.datetime] = _updated_at()


class MarketplacePackage(Base):
    """Section 4-7: local cache of marketplace registry metadata."""

    __tablename__ = "marketplace_packages"
    __table_args__ = (
        Index("idx_packages_type", "package_type"),
        Index(
            "idx_packages_installed",
            "installed_version",
            postgresql_where=text("installed_version IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    package_name: Mapped[str] = mapped_column(String(255), nullable=False, unique=True)
    package_type: Mapped[str] = mapped_column(String(50), nullable=False)
    latest_version: Mapped[str | None] = mapped_column(String(50))
    description: Mapped[str | None] = mapped_column(Text)
    author: Mapped[str | None] = mapped_column(String(255))
    license: Mapped[str | None] = mapped_column(String(100))
    tags: Mapped[list[Any] | None] = mapped_column(JSONB, server_default=JSON_ARRAY)
    download_count: Mapped[int | None] = mapped_column(Integer, server_default=text("0"))
    rating: Mapped[Decimal | None] = mapped_column(Numeric(3, 2))
    installed_version: Mapped[str | None] = mapped_column(String(50))
    # The design gives this foreign key no ON DELETE; the uninstall path unlinks first.
    installed_tool_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey(InstalledTool.id)
    )
    last_synced: Mapped[dt.datetime] = mapped_column(TZ, nullable=False, server_default=NOW)
    registry_data: Mapped[dict[str, Any] | None] = mapped_column(JSONB)


class McpServer(Base):
    """Section 4-2: container settings of a Tier 2 MCP server."""

    __tablename__ = "mcp_servers"

    id: Mapped[uuid.UUID] = _uuid_pk()
    tool_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey(InstalledTool.id, ondelete="CASCADE"), nullable=False
    )
    server_name: Mapped[str] = mapped_column(String(255), nullable=False, unique=True)
    docker_image: Mapped[str] = mapped_column(String(512), nullable=False)
    container_name: Mapped[str | None] = mapped_column(String(255))
    port: Mapped[int | None] = mapped_column(Integer)
    oauth_provider: Mapped[str | None] = mapped_column(String(100))
    oauth_scopes: Mapped[list[Any] | None] = mapped_column(JSONB, server_default=JSON_ARRAY)
    auth_proxy_url: Mapped[str | None] = mapped_column(String(512))
    status: Mapped[str] = mapped_column(String(50), nullable=False, server_default=text("'stopped'"))
    last_health_check: Mapped[dt.datetime | None] = mapped_column(TZ)
    error_message: Mapped[str | None] = mapped_column(Text)
    env_encrypted: Mapped[bytes | None] = mapped_column(BYTEA)
    created_at: Mapped[dt.datetime] = _created_at()
    updated_at: Mapped[dt.datetime] = _updated_at()


class DailyCostSummary(Base):
    """Section 4-4's ``daily_cost_summary`` view, read-only. It has no key; the grouping columns serve."""

    __tablename__ = "daily_cost_summary"
    __table_args__ = {"info": VIEW_INFO}

    date: Mapped[dt.date] = mapped_column(primary_key=True)
    user_id: Mapped[str | None] = mapped_column(String(255), primary_key=True)
    source: Mapped[str] = mapped_column(String(50), primary_key=True)
    model: Mapped[str] = mapped_column(String(255), primary_key=True)
    call_count: Mapped[int] = mapped_column(BigInteger)
    total_input_tokens: Mapped[int | None] = mapped_column(BigInteger)
    total_output_tokens: Mapped[int | None] = mapped_column(BigInteger)
    total_cost_usd: Mapped[Decimal | None] = mapped_column(Numeric)
    avg_latency_ms: Mapped[Decimal | None] = mapped_column(Numeric)


class DailyCostRollup(Base):
    """Revision 007: per-day cost totals kept after retention deletes the detail rows (UTC days)."""

    __tablename__ = "daily_cost_rollup"
    __table_args__ = (
        UniqueConstraint("date", "user_id", "source", "model", name="daily_cost_rollup_date_key",
                         postgresql_nulls_not_distinct=True),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    date: Mapped[dt.date] = mapped_column(nullable=False)
    user_id: Mapped[str | None] = mapped_column(String(255))
    source: Mapped[str] = mapped_column(String(50), nullable=False)
    model: Mapped[str] = mapped_column(String(255), nullable=False)
    call_count: Mapped[int] = mapped_column(BigInteger, nullable=False)
    total_input_tokens: Mapped[int] = mapped_column(BigInteger, nullable=False)
    total_output_tokens: Mapped[int] = mapped_column(BigInteger, nullable=False)
    total_cost_usd: Mapped[Decimal] = mapped_column(Numeric, nullable=False)
    latency_sum_ms: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default=text("0"))
    latency_count: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default=text("0"))
    rolled_up_at: Mapped[dt.datetime] = mapped_column(TZ, nullable=False, server_default=NOW)


COST_ROLLUP_TRIGGER: Final = "cost_tracking_roll_up_deleted"
"""Revision 009: the statement-level AFTER DELETE trigger on cost_tracking that adds every deleted row
to ``daily_cost_rollup`` (retention only deletes, and refuses to when the trigger is missing)."""
COST_ROLLUP_FUNCTION: Final = "roll_up_deleted_costs"
"""Revision 009: the function that trigger runs (it reads the deleted rows as the transition table ``gone``)."""


class LangGraphThread(Base):
    """Revision 008: thread ids the application used, so idle ones can be deleted via the LangGraph API."""

    __tablename__ = "langgraph_threads"
    __table_args__ = (Index("idx_langgraph_threads_last_active", "last_active_at"),)

    thread_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    user_id: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = _created_at()
    last_active_at: Mapped[dt.datetime] = mapped_column(TZ, nullable=False, server_default=NOW)


TABLES = [m.__tablename__ for m in (InstalledTool, McpServer, AuditLog, CostRecord, UserPreferences,
                                     Schedule, MarketplacePackage)]
"""The seven tables of section 4 (the view and the version table are not in this list)."""
