"""Audit log (design §4-3): security events, tool runs, policy decisions.

An :class:`AuditEvent` is checked when it is built (documented enum values, ``VARCHAR`` limits,
``INET``, JSON size), and keeps the row it will become. :meth:`AuditLogRepository.record_many`
therefore only gathers those rows and streams them with ``COPY`` through asyncpg, in one
statement: all rows or none.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from jedisos_db.runtime.db.models import AuditLog
from jedisos_db.runtime.errors import InvalidInputError
from jedisos_db.runtime.repositories import validation as v
from jedisos_db.runtime.repositories.base import EventRepository, copy_columns, row_maker

_EVENT_TYPE = v.varchar_limit(AuditLog, "event_type")
_USER_ID = v.varchar_limit(AuditLog, "user_id")
_SESSION_ID = v.varchar_limit(AuditLog, "session_id")
_TOOL_NAME = v.varchar_limit(AuditLog, "tool_name")
_ACTION = v.varchar_limit(AuditLog, "action")
_KEY = v.varchar_limit(AuditLog, "idempotency_key")

COPY_COLUMNS: Final = copy_columns(AuditLog)
"""Column order of :attr:`AuditEvent.row` and of the ``COPY`` that writes it (derived from the model)."""
_ROW: Final = row_maker(AuditLog)


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One audit event, validated on construction (raises :class:`InvalidInputError`)."""

    event_type: str
    severity: str = "info"
    user_id: str | None = None
    channel: str | None = None
    session_id: str | None = None
    tool_name: str | None = None
    action: str | None = None
    result: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    ip_address: str | IPv4Address | IPv6Address | None = None
    envelope_id: uuid.UUID | None = None
    timestamp: dt.datetime | None = None
    idempotency_key: str | None = None
    """Names the event: writing it again with the same key (a retry) writes nothing (revision 010)."""
    row: tuple[Any, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "row", _ROW({
            "timestamp": v.timestamp("timestamp", self.timestamp),
            "event_type": v.text("event_type", self.event_type, _EVENT_TYPE, required=True),
            "severity": v.choice("severity", self.severity, v.SEVERITIES, required=True),
            "user_id": v.text("user_id", self.user_id, _USER_ID),
            "channel": v.choice("channel", self.channel, v.CHANNELS),
            "session_id": v.text("session_id", self.session_id, _SESSION_ID),
            "tool_name": v.text("tool_name", self.tool_name, _TOOL_NAME),
            "action": v.text("action", self.action, _ACTION),
            "result": v.choice("result", self.result, v.AUDIT_RESULTS),
            "details": v.json_document("details", self.details, kind=dict, required=True),
            "ip_address": v.ip_address("ip_address", self.ip_address),
            "envelope_id": v.uuid_value("envelope_id", self.envelope_id),
            "idempotency_key": v.text("idempotency_key", self.idempotency_key, _KEY),
        }))

    @classmethod
    def coerce(cls, item: AuditEvent | Mapping[str, Any], index: int | None = None) -> AuditEvent:
        """``item`` as an event; a mapping is validated, errors carry ``index``."""
        return v.coerce(cls, item, index)


_FIELDS: Final = frozenset(f for f in AuditEvent.__dataclass_fields__ if f != "row")


def fast_columns(items: list[Any]) -> tuple[list[Any], ...] | None:
    """The column lists (in :data:`COPY_COLUMNS` order) of a list of plain dicts, checked column by column;
    None when the per-row path must decide."""
    if not items or not all(type(item) is dict for item in items):
        return None
    if set().union(*items) - _FIELDS:
        return None
    ts = [d.get("timestamp") for d in items]
    event_type = [d.get("event_type") for d in items]
    severity = [d.get("severity", "info") for d in items]
    user_id = [d.get("user_id") for d in items]
    channel = [d.get("channel") for d in items]
    session_id = [d.get("session_id") for d in items]
    tool_name = [d.get("tool_name") for d in items]
    action = [d.get("action") for d in items]
    result = [d.get("result") for d in items]
    details = [d.get("details", _EMPTY) for d in items]
    ip = [d.get("ip_address") for d in items]
    envelope = [d.get("envelope_id") for d in items]
    key = [d.get("idempotency_key") for d in items]
    ok = (
        v.column_timestamps(ts)
        and v.column_text(event_type, _EVENT_TYPE, required=True)
        and v.column_choice(severity, v.SEVERITIES, required=True)
        and v.column_text(user_id, _USER_ID)
        and v.column_choice(channel, v.CHANNELS)
        and v.column_text(session_id, _SESSION_ID)
        and v.column_text(tool_name, _TOOL_NAME)
        and v.column_text(action, _ACTION)
        and v.column_choice(result, v.AUDIT_RESULTS)
        and v.column_types(details, {dict})
        and v.column_types(ip, {str, IPv4Address, IPv6Address, type(None)})
        and v.column_types(envelope, {uuid.UUID, type(None)})
        and v.column_text(key, _KEY)
    )
    if not ok:
        return None
    try:
        # JSON and addresses still need one call per row; their errors carry no index, so the
        # per-row path re-runs to name the row.
        details_json = [v.json_document("details", x, kind=dict, required=True) for x in details]
        addresses = [v.ip_address("ip_address", x) for x in ip]
    except InvalidInputError:
        return None
    columns = {"timestamp": ts, "event_type": event_type, "severity": severity, "user_id": user_id,
               "channel": channel, "session_id": session_id, "tool_name": tool_name, "action": action,
               "result": result, "details": details_json, "ip_address": addresses, "envelope_id": envelope,
               "idempotency_key": key}
    return _ROW(columns)


_EMPTY: Final[dict[str, Any]] = {}


class AuditLogRepository(EventRepository[AuditLog, AuditEvent]):
    """Writes (:meth:`record`, :meth:`record_many`) and queries ``jedisos.audit_logs``."""

    model = AuditLog
    noun = "event"
    event = AuditEvent
    fast_columns = staticmethod(fast_columns)

    async def query(
        self,
        *,
        user_id: str | None = None,
        event_type: str | None = None,
        severity: str | Sequence[str] | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        limit: int = 1000,
        session: AsyncSession | None = None,
    ) -> list[AuditLog]:
        """Events matching every given filter, newest first; ``since`` inclusive, ``until`` exclusive."""
        stmt = select(AuditLog)
        if user_id is not None:
            stmt = stmt.where(AuditLog.user_id == v.text("user_id", user_id, _USER_ID))
        if event_type is not None:
            stmt = stmt.where(AuditLog.event_type == v.text("event_type", event_type, _EVENT_TYPE))
        if severity is not None:
            wanted = [severity] if isinstance(severity, str) else list(severity)
            for level in wanted:
                v.choice("severity", level, v.SEVERITIES, required=True)
            stmt = stmt.where(AuditLog.severity.in_(wanted))
        if since is not None:
            stmt = stmt.where(AuditLog.timestamp >= v.timestamp("since", since))
        if until is not None:
            stmt = stmt.where(AuditLog.timestamp < v.timestamp("until", until))
        v.integer("limit", limit, low=1, high=100_000)
        stmt = stmt.order_by(AuditLog.timestamp.desc(), AuditLog.id.desc()).limit(limit)
        async with self._transaction(session) as s:
            return list((await s.execute(stmt)).scalars())
