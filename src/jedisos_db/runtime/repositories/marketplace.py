"""Marketplace cache (design §4-7): registry metadata upserted locally, linked to installed tools.

Upserts refresh the registry fields and ``last_synced`` but never the local state
(``installed_version``, ``installed_tool_id``): a registry sync must not forget what is installed.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from jedisos_db.runtime.db.models import MarketplacePackage
from jedisos_db.runtime.errors import DuplicateError, InvalidInputError
from jedisos_db.runtime.repositories import validation as v
from jedisos_db.runtime.repositories.base import Repository


def _limit(column: str) -> int:
    return v.varchar_limit(MarketplacePackage, column)


REGISTRY_FIELDS: Final[Mapping[str, Callable[[Any], Any]]] = {
    "package_name": lambda x: v.text("package_name", x, _limit("package_name"), required=True),
    "package_type": lambda x: v.choice("package_type", x, v.PACKAGE_TYPES, required=True),
    "latest_version": lambda x: v.text("latest_version", x, _limit("latest_version")),
    "description": lambda x: v.text("description", x, None),
    "author": lambda x: v.text("author", x, _limit("author")),
    "license": lambda x: v.text("license", x, _limit("license")),
    "tags": lambda x: v.string_list("tags", x if x is not None else []),
    "download_count": lambda x: v.integer("download_count", x if x is not None else 0),
    # DECIMAL(3,2): a 0..5 star rating.
    "rating": lambda x: _rating(x),
}

CONSTRAINTS: Final = {
    "marketplace_packages_package_name_key": "package_name",
    "marketplace_packages_installed_tool_id_fkey": "installed_tool_id",
}


def _rating(value: Any) -> Any:
    number = v.decimal("rating", value, precision=3, scale=2, required=False)
    if number is not None and number > 5:
        raise InvalidInputError("rating", f"must be between 0 and 5; got {number}")
    return number


def registry_values(data: Mapping[str, Any]) -> dict[str, Any]:
    """The columns of one registry entry; the whole entry is kept as ``registry_data``."""
    if not isinstance(data, Mapping):
        raise InvalidInputError("registry", f"must be a mapping, got {type(data).__name__}")
    values = {name: check(data.get(name)) for name, check in REGISTRY_FIELDS.items()}
    v.json_document("registry_data", dict(data), kind=dict, required=True)
    values["registry_data"] = dict(data)
    return values


class MarketplaceRepository(Repository[MarketplacePackage]):
    """``jedisos.marketplace_packages``."""

    model = MarketplacePackage
    noun = "package"
    constraints = CONSTRAINTS

    async def upsert(self, data: Mapping[str, Any], *, session: AsyncSession | None = None) -> MarketplacePackage:
        """Insert or refresh one registry entry (keyed by ``package_name``)."""
        return (await self._upsert([registry_values(data)], session))[0]

    async def upsert_many(self, entries: Iterable[Mapping[str, Any]], *,
                          session: AsyncSession | None = None) -> list[MarketplacePackage]:
        """Upsert all entries in one transaction; any invalid entry (named by index) writes nothing."""
        rows = []
        for i, data in enumerate(entries):
            try:
                rows.append(registry_values(data))
            except InvalidInputError as exc:
                raise exc.at(i) from None
        names = [r["package_name"] for r in rows]
        # ON CONFLICT cannot update one row twice in a statement; say which name instead.
        if len(set(names)) != len(names):
            dup = next(n for n in names if names.count(n) > 1)
            raise DuplicateError("package_name", f"{dup!r} appears twice in one sync")
        return await self._upsert(rows, session)

    async def _upsert(self, rows: list[dict[str, Any]], session: AsyncSession | None) -> list[MarketplacePackage]:
        if not rows:
            return []
        new = insert(MarketplacePackage).values(rows)
        refreshed = {name: new.excluded[name] for name in (*REGISTRY_FIELDS, "registry_data")
                     if name != "package_name"}
        stmt = (new.on_conflict_do_update(index_elements=[MarketplacePackage.package_name],
                                          set_={**refreshed, "last_synced": func.now()})
                .returning(MarketplacePackage).execution_options(populate_existing=True))
        async with self._transaction(session) as s:
            return list((await s.execute(stmt)).scalars())

    async def get(self, package_name: str, *, session: AsyncSession | None = None) -> MarketplacePackage:
        return await self._get(package_name, by="package_name", session=session)

    async def search(self, *, package_type: str | None = None, installed: bool | None = None,
                     session: AsyncSession | None = None) -> list[MarketplacePackage]:
        stmt = select(MarketplacePackage).order_by(MarketplacePackage.package_name)
        if package_type is not None:
            stmt = stmt.where(MarketplacePackage.package_type == v.choice("package_type", package_type,
                                                                           v.PACKAGE_TYPES))
        if installed is not None:
            column = MarketplacePackage.installed_version
            stmt = stmt.where(column.is_not(None) if v.flag("installed", installed) else column.is_(None))
        async with self._transaction(session) as s:
            return list((await s.execute(stmt)).scalars())

    async def link(self, package_name: str, tool_id: uuid.UUID, installed_version: str, *,
                   session: AsyncSession | None = None) -> MarketplacePackage:
        """Record that ``package_name`` is installed as tool ``tool_id`` at ``installed_version``."""
        tool = v.uuid_value("installed_tool_id", tool_id, required=True)
        version = v.text("installed_version", installed_version, _limit("installed_version"), required=True)
        return await self._update(package_name, {"installed_tool_id": tool, "installed_version": version},
                                  by="package_name", session=session)

    async def unlink(self, package_name: str, *, session: AsyncSession | None = None) -> MarketplacePackage:
        return await self._update(package_name, {"installed_tool_id": None, "installed_version": None},
                                  by="package_name", session=session)
