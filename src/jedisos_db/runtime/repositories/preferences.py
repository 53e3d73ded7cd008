"""User preferences (design §4-5): documented defaults, budgets, allowed/blocked tools, bank id.

Defaults are the DDL's (``claude-sonnet-5-20260203``, temperature 0.7, 8192 tokens, blocked
``shell_exec`` and ``file_delete``); the bank id defaults to ``jedisos-{user_id}`` as design §2-2
names Hindsight banks. ``updated_at`` is stamped on every change.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, Final

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert

from jedisos_db.runtime.db.models import UserPreferences
from jedisos_db.runtime.repositories import validation as v
from jedisos_db.runtime.repositories.base import Repository


def _limit(column: str) -> int:
    return v.varchar_limit(UserPreferences, column)


def _channels(value: Any) -> dict[str, bool]:
    v.json_document("notification_channels", value, kind=dict, required=True)
    for name, on in value.items():
        v.choice("notification_channels", name, (*v.CHANNELS, "email"), required=True)
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
        raise v.InvalidInputError("temperature", f"must be between 0 and 2; got {number}")
    return number


def _checked(changes: Mapping[str, Any]) -> dict[str, Any]:
    v.known_fields("changes", changes, list(FIELDS))
    values = {}
    for name, value in changes.items():
        values[name] = FIELDS[name](value)
    return values


class PreferencesRepository(Repository):
    """``jedisos.user_preferences``, one row per user."""

    async def get(self, user_id: str) -> UserPreferences | None:
        async with self._sessions() as session:
            return (await session.execute(select(UserPreferences).where(UserPreferences.user_id == user_id))
                    ).scalar_one_or_none()

    async def get_or_create(self, user_id: str, **initial: Any) -> UserPreferences:
        """The user's row, created with the documented defaults (plus ``initial``) if missing."""
        v.text("user_id", user_id, _limit("user_id"), required=True)
        values = _checked(initial)
        if "bank_id" not in values:
            values["bank_id"] = v.text("bank_id", f"jedisos-{user_id}", _limit("bank_id"))
        stmt = (insert(UserPreferences).values(user_id=user_id, **values)
                .on_conflict_do_nothing(index_elements=[UserPreferences.user_id]))
        async with self._transaction({"user_preferences_user_id_key": "user_id"}) as session:
            await session.execute(stmt)
            return (await session.execute(select(UserPreferences).where(UserPreferences.user_id == user_id))
                    ).scalar_one()

    async def update(self, user_id: str, **changes: Any) -> UserPreferences:
        """Change any of :data:`FIELDS`; stamps ``updated_at``."""
        if not changes:
            raise v.InvalidInputError("changes", "nothing to update")
        values = _checked(changes)
        stmt = (update(UserPreferences).where(UserPreferences.user_id == user_id)
                .values(**values, updated_at=func.now()).returning(UserPreferences))
        async with self._transaction() as session:
            row = (await session.execute(stmt)).scalar_one_or_none()
        if row is None:
            raise v.NotFoundError(f"user_preferences: no row for user {user_id!r}")
        return row

    async def set_budgets(self, user_id: str, *, daily_usd: Any = None, monthly_usd: Any = None) -> UserPreferences:
        """Set both budgets (``None`` = unlimited)."""
        return await self.update(user_id, daily_budget_usd=daily_usd, monthly_budget_usd=monthly_usd)

    async def block_tool(self, user_id: str, tool: str) -> UserPreferences:
        """Add ``tool`` to ``blocked_tools`` and drop it from ``allowed_tools``."""
        prefs = await self.get_or_create(user_id)
        blocked = [*(prefs.blocked_tools or [])]
        if tool not in blocked:
            blocked.append(tool)
        allowed = [t for t in (prefs.allowed_tools or []) if t != tool]
        return await self.update(user_id, blocked_tools=blocked, allowed_tools=allowed)

    async def allow_tool(self, user_id: str, tool: str) -> UserPreferences:
        """Add ``tool`` to ``allowed_tools`` and drop it from ``blocked_tools``."""
        prefs = await self.get_or_create(user_id)
        allowed = [*(prefs.allowed_tools or [])]
        if tool not in allowed:
            allowed.append(tool)
        blocked = [t for t in (prefs.blocked_tools or []) if t != tool]
        return await self.update(user_id, blocked_tools=blocked, allowed_tools=allowed)

    async def is_tool_allowed(self, user_id: str, tool: str) -> bool:
        """Blocked wins; an empty ``allowed_tools`` allows everything else (design §4-5)."""
        prefs = await self.get_or_create(user_id)
        if tool in (prefs.blocked_tools or []):
            return False
        allowed = prefs.allowed_tools or []
        return not allowed or tool in allowed

    async def delete(self, user_id: str) -> bool:
        async with self._transaction() as session:
            gone = (await session.execute(delete(UserPreferences).where(UserPreferences.user_id == user_id)
                                          .returning(UserPreferences.id))).scalar_one_or_none()
        return gone is not None
