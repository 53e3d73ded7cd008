"""Fixtures over the jedisos tables: ``clean`` (the module engine, tables emptied) and ``cipher``."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from jedisos_db.harness.designs import Design
from jedisos_db.runtime import partitions
from jedisos_db.runtime.db.models import Base
from jedisos_db.runtime.owners import SCHEMA
from jedisos_db.runtime.secrets import SecretCipher


@pytest.fixture
async def clean(engine: AsyncEngine) -> AsyncEngine:
    """The module's engine, with every jedisos table emptied first."""
    tables = ", ".join(f"{SCHEMA}.{t.name}" for t in Base.metadata.sorted_tables if not t.info.get("is_view"))
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    return engine


@pytest.fixture
def cipher() -> SecretCipher:
    """A cipher with one fresh Fernet key."""
    return SecretCipher([Fernet.generate_key()])


async def make_room(engine: AsyncEngine, design: Design, *, first: dt.datetime, last: dt.datetime) -> None:
    """On a design that partitions its tables by month, create the months from ``first`` to ``last`` that rows
    about to be written need: such a design refuses a row whose month has no partition, by intent (no DEFAULT
    partition, runtime/partitions.py), and builds only the months its retention window holds. Nothing to do
    on a design without partitions."""
    if design.schema.partitioned:
        await partitions.ensure_partitions(engine, first=first, last=last)


async def count(engine: AsyncEngine, table: str) -> int:
    """Rows in ``jedisos.<table>``."""
    async with engine.connect() as conn:
        return int((await conn.execute(text(f"SELECT count(*) FROM {SCHEMA}.{table}"))).scalar_one())


async def server_clock_passes(engine: AsyncEngine, moment: dt.datetime) -> None:
    """Return once the server's clock reads later than ``moment``, so that the next transaction's ``now()``
    is later too: tests of ``updated_at`` wait for that condition instead of sleeping (at most 30 s)."""
    async with asyncio.timeout(30), engine.connect() as conn:
        while not (await conn.execute(text("SELECT clock_timestamp() > :moment"), {"moment": moment})).scalar_one():
            pass
