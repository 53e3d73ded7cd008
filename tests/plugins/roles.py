"""Least-privilege owner roles for tests (design §1, §10).

Roles are cluster-wide, so each session uses its own names (``jedisos_app_<run>`` …) and drops
them at the end, after removing what they own in every database they were set up in.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator

import pytest
from psycopg import sql

from jedisos_db.ops import roles
from jedisos_db.runtime.db.connect import connect
from jedisos_db.runtime.urls import DatabaseURL

RolesFactory = Callable[[DatabaseURL], roles.RolesReport]


@pytest.fixture(scope="session")
def role_names() -> dict[str, str]:
    run = secrets.token_hex(3)
    return {owner: f"{owner}_app_{run}" for owner in roles.OWNERS}


@pytest.fixture(scope="session")
def roles_factory(server_url: DatabaseURL, database_factory: object, role_names: dict[str, str],
                  server_is_private_embedded: bool) -> Iterator[RolesFactory]:
    """``setup(db_url) -> RolesReport``: the three owner roles on that database, with known passwords."""
    passwords = {owner: secrets.token_urlsafe(16) for owner in roles.OWNERS}
    used: list[DatabaseURL] = []

    def setup(url: DatabaseURL) -> roles.RolesReport:
        used.append(url)
        return roles.create_roles(url, names=role_names, passwords=passwords)

    yield setup
    if server_is_private_embedded:
        return  # removed with the server
    idents = sql.SQL(", ").join(sql.Identifier(r) for r in role_names.values())
    for url in used:
        try:
            with connect(url) as conn:
                conn.execute(sql.SQL("DROP OWNED BY {}").format(idents))
        except Exception:
            continue
    with connect(server_url) as conn:
        for role in role_names.values():
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
