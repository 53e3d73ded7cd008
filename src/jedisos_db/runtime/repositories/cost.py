"""LLM cost tracking (design §4-4): one row per LLM call, daily summary, budget checks.

Rows come from LiteLLM's ``success_callback``: :func:`litellm_callback` makes one with the callback
signature ``(kwargs, completion_response, start_time, end_time)`` that writes through the batching
:class:`~jedisos_db.runtime.repositories.writer.EventWriter` (``litellm.success_callback =
[litellm_callback(writer)]``); :meth:`CostRepository.litellm_callback` writes one row at once, in the
caller's transaction when given ``session=``. Budgets are the ``daily_budget_usd``/``monthly_budget_usd``
of ``user_preferences`` (design §4-5), measured in UTC days and months.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import KW_ONLY, dataclass, field
from decimal import Decimal
from typing import Any, Final, cast

from sqlalchemy import Numeric, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from jedisos_db.runtime.db.models import CostRecord, DailyCostSummary, UserPreferences
from jedisos_db.runtime.repositories import validation as v
from jedisos_db.runtime.repositories.base import EventRepository, copy_columns, row_maker
from jedisos_db.runtime.repositories.writer import Durability, EventWriter

_MODEL = v.varchar_limit(CostRecord, "model")
_PROVIDER = v.varchar_limit(CostRecord, "provider")
_SESSION_ID = v.varchar_limit(CostRecord, "session_id")
_USER_ID = v.varchar_limit(CostRecord, "user_id")
_KEY = v.varchar_limit(CostRecord, "idempotency_key")
_COST = cast("Numeric[Decimal]", CostRecord.__table__.c.cost_usd.type)
COST_PRECISION: Final = int(_COST.precision or 10)
COST_SCALE: Final = int(_COST.scale or 6)
"""``DECIMAL(10,6)`` as the model declares it."""

COPY_COLUMNS: Final = copy_columns(CostRecord)
"""Column order of :attr:`CostEvent.row` and of the ``COPY`` that writes it (derived from the model)."""
_ROW: Final = row_maker(CostRecord)


@dataclass(frozen=True, slots=True)
class CostEvent:
    """One LLM call, validated on construction. ``total_tokens`` defaults to input + output.

    ``model`` and ``provider`` may be positional; everything else is keyword-only.
    """

    model: str
    provider: str
    _: KW_ONLY
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int | None = None
    cost_usd: Decimal | float | int | str
    source: str
    session_id: str | None = None
    user_id: str | None = None
    latency_ms: int | None = None
    status: str = "success"
    timestamp: dt.datetime | None = None
    idempotency_key: str | None = None
    """Names the call: writing it again with the same key (a retry) writes nothing (revision 010)."""
    row: tuple[Any, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        input_tokens = v.integer("input_tokens", self.input_tokens)
        output_tokens = v.integer("output_tokens", self.output_tokens)
        total = self.total_tokens
        if total is None:
            total = v.integer("total_tokens", input_tokens + output_tokens)  # type: ignore[operator]
            object.__setattr__(self, "total_tokens", total)
        cost = v.decimal("cost_usd", self.cost_usd, precision=COST_PRECISION, scale=COST_SCALE)
        object.__setattr__(self, "cost_usd", cost)
        object.__setattr__(self, "row", _ROW({
            "timestamp": v.timestamp("timestamp", self.timestamp),
            "model": v.text("model", self.model, _MODEL, required=True),
            "provider": v.text("provider", self.provider, _PROVIDER, required=True),
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "total_tokens": v.integer("total_tokens", total),
            "cost_usd": cost,
            "source": v.choice("source", self.source, v.COST_SOURCES, required=True),
            "session_id": v.text("session_id", self.session_id, _SESSION_ID),
            "user_id": v.text("user_id", self.user_id, _USER_ID),
            "latency_ms": v.integer("latency_ms", self.latency_ms, required=False),
            "status": v.choice("status", self.status, v.COST_STATUSES, required=True),
            "idempotency_key": v.text("idempotency_key", self.idempotency_key, _KEY),
        }))

    @classmethod
    def coerce(cls, item: CostEvent | Mapping[str, Any], index: int | None = None) -> CostEvent:
        return v.coerce(cls, item, index)


_FIELDS: Final = frozenset(f for f in CostEvent.__dataclass_fields__ if f not in ("row", "_"))
_REQUIRED: Final = frozenset({"model", "provider", "cost_usd", "source"})
_MAX_COST: Final = Decimal(10) ** (COST_PRECISION - COST_SCALE)
_QUANTUM: Final = Decimal(1).scaleb(-COST_SCALE)


def fast_columns(items: list[Any]) -> tuple[list[Any], ...] | None:
    """The column lists (in :data:`COPY_COLUMNS` order) of a list of plain dicts, checked column by column;
    None when the per-row path must decide."""
    if not items or not all(type(item) is dict for item in items):
        return None
    keys = set().union(*items)
    if keys - _FIELDS or not all(d.keys() >= _REQUIRED for d in items):
        return None
    ts = [d.get("timestamp") for d in items]
    model = [d["model"] for d in items]
    provider = [d["provider"] for d in items]
    input_tokens = [d.get("input_tokens", 0) for d in items]
    output_tokens = [d.get("output_tokens", 0) for d in items]
    total = [d.get("total_tokens") for d in items]
    cost = [d["cost_usd"] for d in items]
    source = [d["source"] for d in items]
    session_id = [d.get("session_id") for d in items]
    user_id = [d.get("user_id") for d in items]
    latency = [d.get("latency_ms") for d in items]
    status = [d.get("status", "success") for d in items]
    key = [d.get("idempotency_key") for d in items]
    if not (v.column_integer(input_tokens) and v.column_integer(output_tokens)):
        return None
    total = [i + o if t is None else t for t, i, o in zip(total, input_tokens, output_tokens, strict=True)]
    ok = (
        v.column_timestamps(ts)
        and v.column_text(model, _MODEL, required=True)
        and v.column_text(provider, _PROVIDER, required=True)
        and v.column_integer(total)
        # Decimals only on the fast path (floats and strings take the per-row conversion).
        and v.column_types(cost, {Decimal})
        and all(c.is_finite() for c in cost)
        and min(cost) >= 0
        and v.column_choice(source, v.COST_SOURCES, required=True)
        and v.column_text(session_id, _SESSION_ID)
        and v.column_text(user_id, _USER_ID)
        and v.column_integer(latency, required=False)
        and v.column_choice(status, v.COST_STATUSES, required=True)
        and v.column_text(key, _KEY)
    )
    if not ok:
        return None
    cost = [c.quantize(_QUANTUM) for c in cost]
    if max(cost) >= _MAX_COST:
        return None
    columns = {"timestamp": ts, "model": model, "provider": provider, "input_tokens": input_tokens,
               "output_tokens": output_tokens, "total_tokens": total, "cost_usd": cost, "source": source,
               "session_id": session_id, "user_id": user_id, "latency_ms": latency, "status": status,
               "idempotency_key": key}
    return _ROW(columns)


@dataclass(frozen=True)
class BudgetStatus:
    """Spend against the user's budgets; a ``None`` budget means unlimited (design §4-5)."""

    user_id: str
    daily_spent_usd: Decimal
    monthly_spent_usd: Decimal
    daily_budget_usd: Decimal | None
    monthly_budget_usd: Decimal | None

    @property
    def daily_exceeded(self) -> bool:
        return self.daily_budget_usd is not None and self.daily_spent_usd >= self.daily_budget_usd

    @property
    def monthly_exceeded(self) -> bool:
        return self.monthly_budget_usd is not None and self.monthly_spent_usd >= self.monthly_budget_usd

    @property
    def allowed(self) -> bool:
        """True while neither budget is used up."""
        return not (self.daily_exceeded or self.monthly_exceeded)


def _get(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def cost_event_from_litellm(kwargs: Mapping[str, Any], completion_response: Any, start_time: Any,
                            end_time: Any, *, source: str = "agent") -> CostEvent:
    """The :class:`CostEvent` a LiteLLM success callback describes.

    ``user_id``, ``session_id`` and ``source`` are read from the call's ``metadata``
    (``litellm.completion(..., metadata={...})``), falling back to ``source``.
    """
    litellm_params = kwargs.get("litellm_params") or {}
    metadata = litellm_params.get("metadata") or kwargs.get("metadata") or {}
    model = kwargs.get("model") or _get(completion_response, "model")
    provider = litellm_params.get("custom_llm_provider")
    if not provider and isinstance(model, str) and "/" in model:
        provider, model = model.split("/", 1)
    usage = _get(completion_response, "usage")
    input_tokens = _get(usage, "prompt_tokens") or 0
    output_tokens = _get(usage, "completion_tokens") or 0
    total_tokens = _get(usage, "total_tokens")
    cost = kwargs.get("response_cost")
    latency_ms = None
    if isinstance(start_time, dt.datetime) and isinstance(end_time, dt.datetime):
        latency_ms = max(0, round((end_time - start_time).total_seconds() * 1000))
    stamp = end_time if isinstance(end_time, dt.datetime) and end_time.tzinfo is not None else None
    return CostEvent(
        # Missing values stay None so validation names them ("provider: is required").
        model=cast(str, model),
        provider=cast(str, provider),
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=total_tokens,
        cost_usd=0 if cost is None else cost,
        source=metadata.get("source", source),
        session_id=metadata.get("session_id"),
        user_id=metadata.get("user_id") or kwargs.get("user"),
        latency_ms=latency_ms,
        status="success",
        timestamp=stamp,
    )


LiteLLMCallback = Callable[[Mapping[str, Any], Any, Any, Any], Awaitable[None]]


def litellm_callback(writer: EventWriter[CostEvent], *, durability: Durability = "commit",
                     source: str = "agent") -> LiteLLMCallback:
    """A LiteLLM ``success_callback`` recording each call's cost through ``writer`` (one ``COPY`` per batch
    of calls); ``durability`` as :meth:`EventWriter.record` (``"enqueue"`` never delays the LLM call's
    caller, and a crash may lose what is still queued)."""

    async def callback(kwargs: Mapping[str, Any], completion_response: Any, start_time: Any, end_time: Any) -> None:
        event = cost_event_from_litellm(kwargs, completion_response, start_time, end_time, source=source)
        await writer.record(event, durability=durability)

    return callback


class CostRepository(EventRepository[CostRecord, CostEvent]):
    """Writes ``jedisos.cost_tracking`` (:meth:`record`, :meth:`record_many`, the LiteLLM callback);
    reads ``daily_cost_summary`` and budgets."""

    model = CostRecord
    noun = "call"
    event = CostEvent
    fast_columns = staticmethod(fast_columns)

    async def litellm_callback(self, kwargs: Mapping[str, Any], completion_response: Any, start_time: Any,
                               end_time: Any, *, session: AsyncSession | None = None) -> int:
        """A LiteLLM ``success_callback``: ``litellm.success_callback = [repo.litellm_callback]``."""
        return await self.record(cost_event_from_litellm(kwargs, completion_response, start_time, end_time),
                                 session=session)

    async def daily_summary(self, *, user_id: str | None = None, since: dt.date | None = None,
                            until: dt.date | None = None, session: AsyncSession | None = None,
                            ) -> list[DailyCostSummary]:
        """Rows of ``daily_cost_summary`` (UTC days ``since``..``until`` inclusive), oldest first."""
        stmt = select(DailyCostSummary)
        if user_id is not None:
            stmt = stmt.where(DailyCostSummary.user_id == v.text("user_id", user_id, _USER_ID))
        if since is not None:
            stmt = stmt.where(DailyCostSummary.date >= since)
        if until is not None:
            stmt = stmt.where(DailyCostSummary.date <= until)
        stmt = stmt.order_by(DailyCostSummary.date, DailyCostSummary.source, DailyCostSummary.model)
        async with self._transaction(session) as s:
            return list((await s.execute(stmt)).scalars())

    async def check_budget(self, user_id: str, *, at: dt.datetime | None = None,
                           session: AsyncSession | None = None) -> BudgetStatus:
        """Today's and this month's spend (UTC) against the user's budgets."""
        v.text("user_id", user_id, _USER_ID, required=True)
        v.timestamp("at", at)
        budgets = select(UserPreferences.daily_budget_usd, UserPreferences.monthly_budget_usd).where(
            UserPreferences.user_id == user_id
        )
        async with self._transaction(session) as s:
            upto = at or (await s.execute(select(func.now()))).scalar_one()
            utc = upto.astimezone(dt.UTC)
            day_start = utc.replace(hour=0, minute=0, second=0, microsecond=0)
            month_start = day_start.replace(day=1)
            # Both sums in one pass over this month's rows (idx_cost_user, then the time filter).
            spend = select(
                func.coalesce(func.sum(CostRecord.cost_usd).filter(CostRecord.timestamp >= day_start), 0),
                func.coalesce(func.sum(CostRecord.cost_usd), 0),
            ).where(CostRecord.user_id == user_id, CostRecord.timestamp >= month_start,
                    CostRecord.timestamp <= upto)
            day, month = (await s.execute(spend)).one()
            limits = (await s.execute(budgets)).one_or_none()
        return BudgetStatus(
            user_id=user_id,
            daily_spent_usd=Decimal(day),
            monthly_spent_usd=Decimal(month),
            daily_budget_usd=limits[0] if limits else None,
            monthly_budget_usd=limits[1] if limits else None,
        )
