"""User preferences (design §4-5): documented defaults, budgets, allowed/blocked tools, bank id.

Defaults are the DDL's (``claude-sonnet-5-20260203``, temperature 0.7, 8192 tokens, blocked
``shell_exec`` and ``file_delete``); the bank id defaults to ``jedisos-{user_id}`` as design §2-2
names Hindsight banks. ``updated_at`` is stamped on every change.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, Final

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from jedisos_db.runtime.db.models import UserPreferences
from jedisos_db.runtime.errors import InvalidInputError
from jedisos_db.runtime.repositories import validation as v
from jedisos_db.runtime.repositories.base import Repository


def _limit(column: str) -> int:
    return v.varchar_limit(UserPreferences, column)


def _channels(value: Any) -> dict[str, bool]:
    v.json_document("notification_channels", value, kind=dict, required=True)
    for name, on in value.items():
        v.choice("notification_channels", name, v.NOTIFICATION_CHANNELS, required=True)
        v.flag(f"notification_channels[{name}]", on)
    return dict(value)


def _money(field: str) -> Callable[[Any], Decimal | None]:
    return lambda x: v.decimal(field, x, precision=10, scale=2, required=False)


FIELDS: Final[Mapping[str, Callable[[Any], Any]]] = {
    "primary_model": lambda x: v.text("primary_model", x, _limit("primary_model"), required=True),
    "fallback_models": lambda x: v.string_list("fallback_models", x, item_limit=_limit("primary_model")),
    "temperature": lambda x: _temperature(x),
    "max_tokens": lambda x: v.integer("max_tokens", x, low=1),
    "daily_budget_usd": _money("daily_budget_usd"),
    "monthly_budget_usd": _money("monthly_budget_usd"),
    "auto_approve_skills": lambda x: v.flag("auto_approve_skills", x),
    "allowed_tools": lambda x: v.string_list("allowed_tools", x),
    "blocked_tools": lambda x: v.string_list("blocked_tools", x),
    "notification_channels": _channels,
    "identity_file": lambda x: v.text("identity_file", x, _limit("identity_file")),
    "bank_id": lambda x: v.text("bank_id", x, _limit("bank_id")),
}
"""Columns callers may set, each with its check."""


def _temperature(value: Any) -> Decimal | None:
    # DECIMAL(3,2) would take up to 9.99; LLM APIs accept 0..2.
    number = v.decimal("temperature", value, precision=3, scale=2)
    if number is not None and number > 2:
        raise InvalidInputError("temperature", f"must be between 0 and 2; got {number}")
    return number


def _checked(changes: Mapping[str, Any]) -> dict[str, Any]:
    v.known_fields("changes", changes, list(FIELDS))
    values = {}
    for name, value in changes.items():
        values[name] = FIELDS[name](value)
    return values


class PreferencesRepository(Repository[UserPreferences]):
    """``jedisos.user_preferences``, one row per user."""

    model = UserPreferences
    noun = "preferences"
    constraints = {"user_preferences_user_id_key": "user_id"}

    async def get(self, user_id: str, *, session: AsyncSession | None = None) -> UserPreferences | None:
        return await self._find(user_id, by="user_id", session=session)

    async def get_or_create(self, user_id: str, *, session: AsyncSession | None = None,
                            **initial: Any) -> UserPreferences:
        """The user's row, created with the documented defaults (plus ``initial``) if missing."""
        return await self._get_or_create(user_id, initial, lock=False, session=session)

    async def _get_or_create(self, user_id: str, initial: Mapping[str, Any], *, lock: bool,
                             session: AsyncSession | None) -> UserPreferences:
        v.text("user_id", user_id, _limit("user_id"), required=True)
        values = _checked(initial)
        if "bank_id" not in values:
            values["bank_id"] = v.text("bank_id", f"jedisos-{user_id}", _limit("bank_id"))
        stmt = (insert(UserPreferences).values(user_id=user_id, **values)
                .on_conflict_do_nothing(index_elements=[UserPreferences.user_id]))
        async with self._transaction(session) as s:
            await s.execute(stmt)
            return await self._get(user_id, by="user_id", lock=lock, session=s)

    async def update(self, user_id: str, *, session: AsyncSession | None = None, **changes: Any) -> UserPreferences:
        """Change any of :data:`FIELDS`; stamps ``updated_at``."""
        if not changes:
            raise InvalidInputError("changes", "nothing to update")
        return await self._update(user_id, _checked(changes), by="user_id", session=session)

    async def set_budgets(self, user_id: str, *, daily_usd: Any = None, monthly_usd: Any = None,
                          session: AsyncSession | None = None) -> UserPreferences:
        """Set both budgets (``None`` = unlimited)."""
        return await self.update(user_id, daily_budget_usd=daily_usd, monthly_budget_usd=monthly_usd,
                                 session=session)

    async def block_tool(self, user_id: str, tool: str, *, session: AsyncSession | None = None) -> UserPreferences:
        """Add ``tool`` to ``blocked_tools`` and drop it from ``allowed_tools``."""
        return await self._move_tool(user_id, tool, to="blocked_tools", away="allowed_tools", session=session)

    async def allow_tool(self, user_id: str, tool: str, *, session: AsyncSession | None = None) -> UserPreferences:
        """Add ``tool`` to ``allowed_tools`` and drop it from ``blocked_tools``."""
        return await self._move_tool(user_id, tool, to="allowed_tools", away="blocked_tools", session=session)

    async def _move_tool(self, user_id: str, tool: str, *, to: str, away: str,
                         session: AsyncSession | None) -> UserPreferences:
        # One transaction with the row locked from read to write: two concurrent calls on the same
        # user would otherwise both read the old lists and the later write would drop the earlier one.
        async with self._transaction(session) as s:
            prefs = await self._get_or_create(user_id, {}, lock=True, session=s)
            added = [*(getattr(prefs, to) or [])]
            if tool not in added:
                added.append(tool)
            dropped = [t for t in (getattr(prefs, away) or []) if t != tool]
            return await self.update(user_id, session=s, **{to: added, away: dropped})

    async def is_tool_allowed(self, user_id: str, tool: str, *, session: AsyncSession | None = None) -> bool:
        """Blocked wins; an empty ``allowed_tools`` allows everything else (design §4-5)."""
        prefs = await self.get_or_create(user_id, session=session)
        if tool in (prefs.blocked_tools or []):
            return False
        allowed = prefs.allowed_tools or []
        return not allowed or tool in allowed

    async def delete(self, user_id: str, *, session: AsyncSession | None = None) -> bool:
        return await self._delete(user_id, by="user_id", session=session)
