"""Who owns what in the one database: the schema names, the start-up order, the migration lock.

Design §1: one PostgreSQL 18 + pgvector database, three schemas, three owners (claims
``S1-single-instance`` and ``S1-schema-per-owner`` in docs/design-claims.md). Every module that
needs one of these names imports it from here.
"""

from __future__ import annotations

from typing import Final, Literal

JEDISOS_SCHEMA: Final = "jedisos"
"""The one schema this project owns (Alembic revisions 001-006 of the design, then our fixes)."""
HINDSIGHT_SCHEMA: Final = "hindsight"
"""Owned by the Hindsight memory server (its own Alembic); reached only through its REST API."""
LANGGRAPH_SCHEMA: Final = "langgraph"
"""Owned by langgraph-checkpoint-postgres (``setup()``); reached only through the LangGraph API."""
SCHEMA: Final = JEDISOS_SCHEMA

Owner = Literal["hindsight", "langgraph", "jedisos"]
OWNERS: Final[tuple[Owner, ...]] = ("hindsight", "langgraph", "jedisos")
"""Design §1's start-up order (claim ``S1-migration-order``): Hindsight, LangGraph's setup(), jedisos Alembic."""
SCHEMA_OF: Final[dict[Owner, str]] = {
    "hindsight": HINDSIGHT_SCHEMA,
    "langgraph": LANGGRAPH_SCHEMA,
    "jedisos": JEDISOS_SCHEMA,
}

VERSION_TABLE: Final = "schema_migrations"
"""The seed's name for Alembic's version table; it lives in ``jedisos``, never in ``public``."""

MIGRATION_LOCK_KEY: Final = 0x6A656469736F73  # "jedisos"
"""One advisory-lock key for every schema change this project makes; bootstrap and Alembic share it
so `up` and `db upgrade` serialise. Any constant works as long as all processes agree on it."""

STARTUP_LOCK_KEY: Final = MIGRATION_LOCK_KEY + 1
"""The session-level lock one whole `up` run holds (every owner's step, LangGraph's setup() included).
A key of its own: the steps take :data:`MIGRATION_LOCK_KEY` in their own connections, which a session
lock on that same key, held by the orchestrating connection, would block forever."""
