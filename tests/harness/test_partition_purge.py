"""The partitioned design's purge rests before each drop (runtime/partitions.py, DROP_REST): after the detaches
and between drops, in proportion to the step before, never after the last drop; a bad rest is refused first."""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from jedisos_db.harness import designs
from jedisos_db.runtime import partitions
from jedisos_db.runtime.db.engine import create_engine
from jedisos_db.runtime.errors import InvalidInputError
from jedisos_db.runtime.owners import SCHEMA
from jedisos_db.runtime.repositories.audit import AuditLogRepository
from jedisos_db.runtime.retention import AUDIT_RULE
from tests.plugins.databases import DatabaseFactory

pytestmark = pytest.mark.slow
DAY = dt.timedelta(days=1)
EXPIRED_MONTHS = 3


@pytest.fixture(scope="module")
def built(database_factory: DatabaseFactory) -> str:
    """A database the partitioned design built, copied by each test (a build takes seconds, a copy does not)."""
    url = database_factory("purge_rest_template")
    designs.load("partitioned").build(url)
    return url.database


@pytest.fixture
async def engine(database_factory: DatabaseFactory, built: str) -> AsyncIterator[AsyncEngine]:
    """A partitioned database with rows in the :data:`EXPIRED_MONTHS` months before the audit cutoff's month."""
    engine = create_engine(url=database_factory("purge_rest", template=built))
    now = dt.datetime.now(dt.UTC)
    expired = [partitions.month_of(now - AUDIT_RULE.keep)]  # the cutoff's month, not wholly expired: left out
    for _ in range(EXPIRED_MONTHS):
        expired.insert(0, partitions.month_of(expired[0] - DAY))
    await partitions.ensure_partitions(engine, first=expired[0], last=now)
    stamps = [dt.datetime.combine(month.replace(day=15), dt.time(), dt.UTC) for month in expired[:-1]]
    await AuditLogRepository(engine).record_many([{"event_type": "e", "severity": "info", "user_id": "r",
                                                   "timestamp": t} for t in stamps for _ in range(200)])
    try:
        yield engine
    finally:
        await engine.dispose()


async def _purgeable_months(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text(
            "SELECT count(*) FROM pg_class WHERE relnamespace = to_regnamespace(:s) AND starts_with(relname, :p)"),
            {"s": SCHEMA, "p": f"{partitions.AUDIT.monthly}_p"})).scalar_one())


async def test_each_drop_rests_in_proportion_to_the_step_before_it(engine: AsyncEngine) -> None:
    events: list[tuple[str, float, float]] = []

    async def pause(seconds: float) -> None:
        events.append(("rest", seconds, time.perf_counter()))

    def dropped(rule: str, months: int) -> None:
        events.append(("drop", 0.0, time.perf_counter()))

    result = await partitions.drop_expired_partitions(
        engine, "audit_logs", rest=4.0, pause=pause, on_batch=dropped,
        on_removed=lambda: events.append(("removed", 0.0, time.perf_counter())))
    assert (result.rows, result.batches) == (EXPIRED_MONTHS * 200, EXPIRED_MONTHS)
    assert [kind for kind, _, _ in events] == ["removed"] + ["rest", "drop"] * EXPIRED_MONTHS  # none after the last
    rests = [seconds for kind, seconds, _ in events if kind == "rest"]
    assert all(seconds > 0 for seconds in rests), rests
    # A rest after a drop is 4 times that drop, which took no longer than from its rest to its commit.
    spans = [events[i + 1][2] - events[i][2] for i in range(1, len(events) - 1, 2)]
    for later_rest, drop_span in zip(rests[1:], spans, strict=False):
        assert later_rest <= 4.0 * drop_span, (rests, spans)


async def test_no_rest_when_rest_is_zero(engine: AsyncEngine) -> None:
    rests: list[float] = []

    async def pause(seconds: float) -> None:
        rests.append(seconds)

    result = await partitions.drop_expired_partitions(engine, "audit_logs", rest=0, pause=pause)
    assert (result.rows, result.batches, rests) == (EXPIRED_MONTHS * 200, EXPIRED_MONTHS, [])


@pytest.mark.parametrize("rest", [-1.0, math.nan, math.inf, partitions.MAX_REST + 1, True, "1"])
async def test_a_bad_rest_is_refused_before_anything_is_dropped(engine: AsyncEngine, rest: object) -> None:
    before = await _purgeable_months(engine)
    with pytest.raises(InvalidInputError) as caught:
        await partitions.drop_expired_partitions(engine, "audit_logs", rest=rest)  # type: ignore[arg-type]
    assert caught.value.field == "rest"
    assert await _purgeable_months(engine) == before
