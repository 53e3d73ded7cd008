"""What every repository shares: a session factory and the translation of constraint violations."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from jedisos_db.runtime.db.models import Base
from jedisos_db.runtime.repositories.validation import (
    DuplicateError,
    InvalidInputError,
    MissingReferenceError,
    NotFoundError,
)

M = TypeVar("M", bound=Base)

UNIQUE_VIOLATION = "23505"
FOREIGN_KEY_VIOLATION = "23503"


class Repository:
    """Base: holds the engine and a session factory whose objects stay readable after commit."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)

    async def _get(self, model: type[M], key: Any, what: str) -> M:
        """The row of ``model`` with primary key ``key``; :class:`NotFoundError` naming ``what`` otherwise."""
        async with self._sessions() as session:
            row = await session.get(model, key)
        if row is None:
            raise NotFoundError(f"{model.__tablename__}: no {what} with id {key}")
        return row

    @asynccontextmanager
    async def _transaction(self, constraints: Mapping[str, str] | None = None) -> AsyncIterator[AsyncSession]:
        """One transaction; constraint violations come out as typed errors naming the field."""
        try:
            async with self._sessions.begin() as session:
                yield session
        except IntegrityError as exc:
            raise translate(exc, constraints or {}) from None


def _driver_error(exc: DBAPIError) -> BaseException | None:
    return exc.orig.__cause__ if exc.orig is not None and exc.orig.__cause__ is not None else exc.orig


def translate(exc: IntegrityError, constraints: Mapping[str, str]) -> InvalidInputError:
    """Map a unique or foreign-key violation to :class:`DuplicateError` / :class:`MissingReferenceError`."""
    cause = _driver_error(exc)
    sqlstate = getattr(cause, "sqlstate", None)
    constraint = getattr(cause, "constraint_name", None) or "?"
    field = constraints.get(constraint, constraint)
    detail = (getattr(cause, "detail", None) or "").strip()
    if sqlstate == UNIQUE_VIOLATION:
        return DuplicateError(field, f"already exists ({detail or constraint})")
    if sqlstate == FOREIGN_KEY_VIOLATION:
        return MissingReferenceError(field, f"refers to a row that does not exist ({detail or constraint})")
    return InvalidInputError(field, f"violates {constraint}: {detail or cause}")
