"""Audit log repository against the real server (design §4-3)."""

from __future__ import annotations

import datetime as dt
import uuid
from ipaddress import ip_address

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from jedisos_db.runtime.errors import InvalidInputError
from jedisos_db.runtime.owners import SCHEMA
from jedisos_db.runtime.repositories.audit import AuditEvent, AuditLogRepository
from jedisos_db.runtime.repositories.base import FIRST_CHUNK, MAX_CHUNK, chunks
from tests.plugins.tables import count

NOW = dt.datetime.now(dt.UTC)


@pytest.mark.claim("S10-sqlalchemy-asyncpg")
async def test_record_returns_id_and_stores_every_field(clean: AsyncEngine) -> None:
    repo = AuditLogRepository(clean)
    envelope = uuid.uuid4()
    event = AuditEvent("tool_executed", severity="warning", user_id="u1", channel="telegram", session_id="s1",
                       tool_name="weather", action="run", result="success", details={"args": {"city": "서울"}},
                       ip_address="2001:db8::1", envelope_id=envelope, timestamp=NOW)
    new_id = await repo.record(event)
    [row] = await repo.query(user_id="u1")
    assert row.id == new_id
    assert (row.event_type, row.severity, row.channel, row.result) == ("tool_executed", "warning", "telegram",
                                                                        "success")
    assert row.details == {"args": {"city": "서울"}}
    assert row.ip_address == ip_address("2001:db8::1")
    assert row.envelope_id == envelope
    assert row.timestamp == NOW


async def test_record_defaults_timestamp_to_server_now_and_severity_info(clean: AsyncEngine) -> None:
    repo = AuditLogRepository(clean)
    await repo.record({"event_type": "login"})
    [row] = await repo.query()
    assert row.severity == "info"
    assert row.details == {}
    assert abs(row.timestamp - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=5)


async def test_record_many_writes_all_rows_with_copy(clean: AsyncEngine) -> None:
    repo = AuditLogRepository(clean)
    events = [AuditEvent("login", user_id=f"u{i % 3}", ip_address="10.0.0.1",
                         timestamp=NOW - dt.timedelta(seconds=i)) for i in range(500)]
    events.append(AuditEvent("logout"))  # no timestamp: the transaction's now()
    assert await repo.record_many(events) == 501
    assert await count(clean, "audit_logs") == 501
    assert len(await repo.query(user_id="u1", limit=1000)) == 167


async def test_record_many_with_one_bad_row_writes_nothing_and_names_row_field_rule(clean: AsyncEngine) -> None:
    repo = AuditLogRepository(clean)
    batch = [{"event_type": "login"} for _ in range(10)]
    batch[7] = {"event_type": "login", "severity": "fatal"}
    with pytest.raises(InvalidInputError) as info:
        await repo.record_many(batch)
    assert (info.value.index, info.value.field) == (7, "severity")
    assert "must be one of debug, info, warning, error, critical" in str(info.value)
    assert str(info.value).startswith("row 7: severity:")
    assert await count(clean, "audit_logs") == 0


async def test_record_many_of_nothing_writes_nothing(clean: AsyncEngine) -> None:
    assert await AuditLogRepository(clean).record_many([]) == 0


async def test_query_filters_by_user_type_severity_and_window(clean: AsyncEngine) -> None:
    repo = AuditLogRepository(clean)
    await repo.record_many([
        AuditEvent("login", user_id="a", severity="info", timestamp=NOW - dt.timedelta(hours=3)),
        AuditEvent("policy_denied", user_id="a", severity="warning", result="denied",
                   timestamp=NOW - dt.timedelta(hours=2)),
        AuditEvent("policy_denied", user_id="b", severity="error", timestamp=NOW - dt.timedelta(hours=1)),
        AuditEvent("login", user_id="b", severity="debug", timestamp=NOW),
    ])
    assert [r.user_id for r in await repo.query(event_type="policy_denied")] == ["b", "a"]
    assert [r.event_type for r in await repo.query(user_id="a")] == ["policy_denied", "login"]
    assert {r.severity for r in await repo.query(severity=["warning", "error"])} == {"warning", "error"}
    window = await repo.query(since=NOW - dt.timedelta(hours=2), until=NOW)
    assert [r.severity for r in window] == ["error", "warning"]  # since inclusive, until exclusive
    assert len(await repo.query(limit=1)) == 1
    with pytest.raises(InvalidInputError, match="severity"):
        await repo.query(severity="loud")


def test_event_repr_is_plain_and_row_is_precomputed() -> None:
    event = AuditEvent("login", details={"a": 1})
    assert event.row[1:3] == ("login", "info")
    assert event.row[9] == '{"a":1}'
    assert "row=" not in repr(event)


@pytest.mark.parametrize("n", [0, 1, FIRST_CHUNK, 2 * FIRST_CHUNK, 1000, 5000, 20_000])
def test_a_streamed_batch_is_cut_into_chunks_that_grow_then_shrink_and_cover_every_row_once(n: int) -> None:
    spans = list(chunks(n))
    assert [start for start, _ in spans] == [0, *(stop for _, stop in spans[:-1])][:len(spans)]
    assert (spans[-1][1] if spans else 0) == n
    sizes = [stop - start for start, stop in spans]
    assert sizes[:1] == ([] if n == 0 else [n] if n < 2 * FIRST_CHUNK else [FIRST_CHUNK])
    assert all(size <= MAX_CHUNK for size in sizes)
    assert not sizes or sizes[-1] < 2 * FIRST_CHUNK  # the server's work after the last row sent is small
    peak = sizes.index(max(sizes)) if sizes else 0
    assert sizes[:peak + 1] == sorted(sizes[:peak + 1])


async def test_a_large_batch_of_dicts_streams_and_a_bad_row_late_in_it_writes_nothing(clean: AsyncEngine) -> None:
    """A batch of plain dicts streams chunk by chunk, each validated while the one before is written: a bad row
    in the last chunk, after the others were sent, still names its index in the whole batch and leaves no row."""
    repo = AuditLogRepository(clean)
    n = 1000
    spans = list(chunks(n))
    assert len(spans) >= 3
    late = spans[-1][0] + 3
    rows: list[dict[str, object]] = [{"event_type": f"e{i}"} for i in range(n)]
    rows[late] = {"event_type": "bad", "severity": "loud"}
    with pytest.raises(InvalidInputError, match="severity") as caught:
        await repo.record_many(rows)
    assert caught.value.index == late
    assert await count(clean, "audit_logs") == 0
    rows[late] = {"event_type": "fixed", "timestamp": NOW}  # one given time among defaults
    assert await repo.record_many(rows) == n
    async with clean.connect() as conn:
        stamps = (await conn.execute(text(f"SELECT count(DISTINCT timestamp), min(timestamp) FROM {SCHEMA}.audit_logs"
                                          ))).one()
    assert tuple(stamps) == (2, NOW)  # the others share their transaction's now()
