"""What the Hindsight client tests share: a sleep that only records, a client built on it, and a
recall held in flight on the busy server (so the next one is refused with 503 + Retry-After)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from jedisos_db.harness.hindsight.embeddings import EmbeddingHold
from jedisos_db.runtime.hindsight import client as hc
from jedisos_db.runtime.hindsight.models import Memory
from tests.plugins.hindsight import RunningHindsight

BASE = "http://hindsight.test"
BANK = hc.bank_id_for("u1")
BANK_URL = f"{BASE}/v1/default/banks/{BANK}"
RECALL_URL = f"{BANK_URL}/memories/recall"
RETAIN_URL = f"{BANK_URL}/memories"
RECALLED = {"results": [{"id": "m1", "text": "Ada lives in Seoul"}]}
RETAINED = {"success": True, "bank_id": BANK, "items_count": 1, "async": False}


class Sleeps:
    """Records the waits the client asks for, without waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def make(sleeps: Sleeps, **kwargs: Any) -> hc.HindsightClient:
    """A client on :data:`BASE` whose backoff is 0.25 s doubling to 1 s, and whose waits are recorded."""
    return hc.HindsightClient(BASE, sleep=sleeps, backoff=0.25, backoff_max=1.0, **kwargs)


@dataclass
class InFlight:
    """A recall held in flight; :meth:`sleep` is a retrying client's sleep that ends when the lane is free."""

    hold: EmbeddingHold
    holder: asyncio.Task[list[Memory]]
    asked: list[float] = field(default_factory=list)

    async def sleep(self, seconds: float) -> None:
        self.asked.append(seconds)
        self.hold.release()
        await self.holder  # the held recall answered: its admission permit is back


@asynccontextmanager
async def recall_in_flight(busy: RunningHindsight, client: hc.HindsightClient, bank: str,
                           query: str) -> AsyncIterator[InFlight]:
    """Start ``recall(bank, query)`` and return once Hindsight is embedding its query, held back by our
    TEI endpoint: the busy server's one recall permit is taken until the hold is released."""
    embeddings = busy.server.embeddings
    assert embeddings is not None
    with embeddings.hold(timeout=60) as hold:
        holder = asyncio.create_task(client.recall(bank, query))
        assert await asyncio.to_thread(hold.wait_for, lambda held: query in held), "the recall never embedded"
        yield InFlight(hold, holder)
    await holder
