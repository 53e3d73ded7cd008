"""Column shapes the Alembic revisions repeat.

Revisions import these rather than the ORM models: a revision must keep building what it built
on the day it was written, whatever the models become later. Change nothing here that an
existing revision uses; add a new helper instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

TZ = pg.TIMESTAMP(timezone=True)

COMMITS_PART_WAY = "upgrade_commits_part_way"
"""A revision module sets ``upgrade_commits_part_way = True`` when its upgrade commits inside the run (an
autocommit block, for CREATE INDEX CONCURRENTLY): ``migrations.upgrade`` then commits before and after it, so a
run that fails elsewhere leaves the schema at a revision its version table names. A downgrade never commits
part-way (dropping an index is no reason to: the DROP COLUMN beside it locks the table anyway)."""

AUTOCOMMIT_BLOCKS = "jedisos_autocommit_blocks"
"""The Alembic config attribute env.py sets: False when the caller owns the transaction, which must not be
committed, so a revision builds its index in that transaction instead of ``CONCURRENTLY``."""


def uuid_pk() -> sa.Column[Any]:
    """``id UUID PRIMARY KEY DEFAULT gen_random_uuid()``."""
    return sa.Column("id", pg.UUID(as_uuid=True), primary_key=True,
                     server_default=sa.text("gen_random_uuid()"))


def bigserial_pk() -> sa.Column[Any]:
    """``id BIGSERIAL PRIMARY KEY``."""
    return sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True)


def jsonb(name: str, default: str | None, *, nullable: bool = True) -> sa.Column[Any]:
    """A JSONB column; ``default`` is the JSON literal of the DDL (``'[]'``, ``'{}'``) or None."""
    server_default = sa.text(f"'{default}'::jsonb") if default is not None else None
    return sa.Column(name, pg.JSONB(), nullable=nullable, server_default=server_default)


def stamp(name: str, *, nullable: bool = False) -> sa.Column[Any]:
    """``TIMESTAMPTZ NOT NULL DEFAULT NOW()``."""
    return sa.Column(name, TZ, nullable=nullable, server_default=sa.text("now()"))


def text_default(value: str) -> sa.TextClause:
    """A quoted string default, as ``DEFAULT 'value'`` in the DDL."""
    escaped = value.replace("'", "''")
    return sa.text(f"'{escaped}'")


@contextmanager
def bounded_lock_wait(timeout: str) -> Iterator[None]:
    """``lock_timeout`` for the enclosed statements of one revision only (every revision runs in one
    transaction): DDL behind a long transaction fails instead of queueing every writer behind it."""
    from alembic import op

    bind = op.get_bind()
    before = bind.execute(sa.text("SELECT current_setting('lock_timeout')")).scalar_one()
    bind.execute(sa.text("SELECT set_config('lock_timeout', :v, true)"), {"v": timeout})
    yield
    bind.execute(sa.text("SELECT set_config('lock_timeout', :v, true)"), {"v": before})
