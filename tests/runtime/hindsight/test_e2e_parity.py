"""Side by side with the official ``hindsight-client`` 1.1.x against the same real server (offline).

The same writes go through each client into a bank of its own; then each client reads both
banks and the four views must agree, operation by operation, wherever both clients can act. The
differences found are asserted in ``test_where_the_clients_differ`` and listed in
``docs/hindsight-client-parity.md``.
"""

from __future__ import annotations

import random
import uuid
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from jedisos_db.runtime.errors import BankNotFoundError, DocumentNotFoundError, InvalidInputError
from jedisos_db.runtime.hindsight.client import HindsightClient, bank_id_for
from jedisos_db.runtime.hindsight.models import EntityRef, RetainItem
from tests.plugins.hindsight import RunningHindsight

from .fakes import recall_in_flight

# Declared in the test extra; an environment installed before it was added skips with the reason.
pytest.importorskip("hindsight_client", reason="hindsight-client is not installed: pip install -e '.[test]'")
import aiohttp
from hindsight_client import Hindsight
from hindsight_client_api.exceptions import ApiException, NotFoundException

pytestmark = pytest.mark.e2e

ALICE = "Alice moved to Paris and works on the Zephyr project."
OFFICE = "The office locker code is 9921."
BOB = "Bob plays the cello in the city orchestra."
CAROL = "Carol's locker code is 4417."
QUERY = "Where does Alice live, and what is the locker code?"
CONFIG: dict[str, Any] = {"retain_extraction_mode": "verbose", "recall_max_tokens": 1024}


@dataclass
class Pair:
    ours: HindsightClient
    theirs: Hindsight
    ours_bank: str
    theirs_bank: str

    async def views(self, read_ours: Callable[[str], Awaitable[Any]],
                    read_theirs: Callable[[str], Awaitable[Any]]) -> list[Any]:
        """The same reading, by both clients, of both banks: four values that must be equal."""
        return [await read(bank) for read in (read_ours, read_theirs) for bank in (self.ours_bank, self.theirs_bank)]

    async def recalled_views(self, read_ours: Callable[[str], Awaitable[Any]],
                             read_theirs: Callable[[str], Awaitable[Any]], *, reads: int = 3) -> list[Any]:
        """:meth:`views` of a recall or reflect, where parity is judged bank by bank: both clients must read the
        same from the same bank. Across the two banks Hindsight itself may differ (seen in CI: at
        ``budget="low"`` its retrieval arms are bounded in time, and the memories cut at the token limit can
        differ between two banks of the same content), so a bank-to-bank difference is not the clients'.
        Read again (at most ``reads`` times) while a bank's two readings disagree; one that persists fails."""
        views = await self.views(read_ours, read_theirs)
        for _ in range(reads - 1):
            if same_per_bank(views):
                break
            views = await self.views(read_ours, read_theirs)
        return views


def same_per_bank(views: list[Any]) -> bool:
    """:meth:`Pair.views` holds (ours, ours bank), (ours, theirs bank), (theirs, ours bank), (theirs, theirs bank)."""
    return bool(views[0] == views[2] and views[1] == views[3])


@pytest.fixture(scope="module")
async def pair(hindsight_server: RunningHindsight) -> AsyncIterator[Pair]:
    """Both clients, and the same memories written by each into its own bank."""
    ours_bank, theirs_bank = bank_id_for("parity-ours"), bank_id_for("parity-official")
    theirs = Hindsight(base_url=hindsight_server.base_url, timeout=120)
    async with HindsightClient(hindsight_server.base_url, timeout=120) as ours:
        # Every item has a time and a document: Hindsight's mock LLM writes the event date into a
        # fact, and a generated document id would differ between the banks.
        await ours.retain(ours_bank, ALICE, timestamp=datetime(2023, 4, 1, 10, tzinfo=UTC), context="chat",
                          tags=["user:alice"], metadata={"channel": "web"}, document_id="doc-alice",
                          entities=[EntityRef("Zephyr", "PROJECT")])
        await theirs.aretain(theirs_bank, ALICE, timestamp=datetime(2023, 4, 1, 10, tzinfo=UTC), context="chat",
                             tags=["user:alice"], metadata={"channel": "web"}, document_id="doc-alice",
                             entities=[{"text": "Zephyr", "type": "PROJECT"}])
        await ours.retain(ours_bank, OFFICE, timestamp="2024-01-02T09:00:00Z", document_id="doc-office")  # untagged
        await theirs.aretain(theirs_bank, OFFICE, timestamp="2024-01-02T09:00:00Z", document_id="doc-office")
        await ours.retain_batch(ours_bank, [
            RetainItem(BOB, context="email", tags=["user:bob"], timestamp="2021-07-09T08:00:00+02:00",
                       document_id="doc-bob", metadata={"channel": "mail"}),
            RetainItem(CAROL, tags=["user:carol"], timestamp="2024-02-03T09:00:00Z", document_id="doc-carol"),
        ], document_tags=["import:parity"])
        await theirs.aretain_batch(theirs_bank, [
            {"content": BOB, "context": "email", "tags": ["user:bob"], "timestamp": "2021-07-09T08:00:00+02:00",
             "document_id": "doc-bob", "metadata": {"channel": "mail"}},
            {"content": CAROL, "tags": ["user:carol"], "timestamp": "2024-02-03T09:00:00Z", "document_id": "doc-carol"},
        ], document_tags=["import:parity"])
        try:
            yield Pair(ours, theirs, ours_bank, theirs_bank)
        finally:
            await ours.delete_bank(ours_bank)
            await theirs.adelete_bank(theirs_bank)
            await theirs.aclose()  # type: ignore[no-untyped-call]  # hindsight-client leaves aclose unannotated


def _unit(text: str | None, context: str | None, tags: list[str] | None, mentioned_at: str | None,
          metadata: dict[str, Any] | None) -> tuple[Any, ...]:
    return text, context or "", tuple(sorted(tags or [])), mentioned_at, tuple(sorted((metadata or {}).items()))


async def test_listed_memories_agree(pair: Pair) -> None:
    async def ours(bank: str) -> set[tuple[Any, ...]]:
        return {_unit(u.text, u.context, u.tags, u.mentioned_at, u.metadata)
                async for u in pair.ours.iter_memories(bank, fact_type="world")}

    async def theirs(bank: str) -> set[tuple[Any, ...]]:
        page = await pair.theirs.alist_memories(bank, type="world", limit=500)
        return {_unit(u.text, u.context, u.tags, u.mentioned_at, u.metadata) for u in page.items}

    views = await pair.views(ours, theirs)
    assert all(view == views[0] for view in views), views
    alice = next(u for u in views[0] if u[0] == ALICE)
    assert (alice[1], alice[2], alice[4]) == ("chat", ("user:alice",), (("channel", "web"),))
    assert (alice[3] or "").startswith("2023-04-01T10:00:00")
    bob = next(u for u in views[0] if u[0] == BOB)
    assert bob[2] == ("import:parity", "user:bob")  # document_tags reached the batch items in both


async def test_filtered_lists_agree(pair: Pair) -> None:
    async def ours(bank: str) -> list[str | None]:
        page = await pair.ours.list_memories(bank, fact_type="world", q="locker", tags=["user:carol"],
                                             tags_match="any_strict", time_field="mentioned_at",
                                             start_date="2024-01-01T00:00:00Z")
        return sorted((u.text for u in page.items), key=str)

    async def theirs(bank: str) -> list[str | None]:
        page = await pair.theirs.alist_memories(bank, type="world", search_query="locker", tags=["user:carol"],
                                                tags_match="any_strict", time_field="mentioned_at",
                                                start_date="2024-01-01T00:00:00Z")
        return sorted((u.text for u in page.items), key=str)

    views = await pair.views(ours, theirs)
    assert views == [[CAROL]] * 4


@pytest.mark.parametrize("tags_match", [None, "any", "any_strict", "all_strict", "exact"])
async def test_tag_scoped_recall_agrees(pair: Pair, tags_match: str | None) -> None:
    options: dict[str, Any] = {"tags": ["user:alice"], "budget": "low", "max_tokens": 2048, "types": ["world"]}
    if tags_match is not None:
        options["tags_match"] = tags_match

    async def ours(bank: str) -> list[str]:
        return [m.text for m in await pair.ours.recall(bank, QUERY, **options)]

    async def theirs(bank: str) -> list[str]:
        return [m.text for m in (await pair.theirs.arecall(bank, QUERY, **options)).results]

    views = await pair.recalled_views(ours, theirs)
    assert same_per_bank(views), views
    assert (OFFICE in views[0]) == (tags_match in (None, "any")), views[0]  # untagged only with "any"


async def test_recall_with_entities_and_chunks_agrees(pair: Pair) -> None:
    when = datetime(2023, 4, 8, tzinfo=UTC)

    async def ours(bank: str) -> tuple[Any, ...]:
        found = await pair.ours.recall_full(bank, QUERY, include_entities=True, include_chunks=True,
                                            query_timestamp=when, types=["world"])
        # Sorted: memories of equal score come back in either order, from either client.
        return (sorted(m.text for m in found.results), sorted(found.entities or {}),
                sorted(c.text for c in (found.chunks or {}).values()))

    async def theirs(bank: str) -> tuple[Any, ...]:
        found = await pair.theirs.arecall(bank, QUERY, include_entities=True, include_chunks=True,
                                          query_timestamp=when.isoformat(), types=["world"])
        return (sorted(m.text for m in found.results), sorted(found.entities or {}),
                sorted(c.text for c in (found.chunks or {}).values()))

    views = await pair.recalled_views(ours, theirs)
    assert same_per_bank(views), views
    assert {"Alice", "Zephyr"} <= set(views[0][1])
    assert ALICE in views[0][2]

    # Neither asks for entities or chunks by default.
    plain = await pair.theirs.arecall(pair.theirs_bank, QUERY, types=["world"])
    assert (plain.entities, plain.chunks) == (None, None)
    # Same bank, as a set: memories of equal score come back in either order (see Pair.recalled_views).
    mine = await pair.ours.recall(pair.theirs_bank, QUERY, types=["world"])
    assert sorted(m.text for m in plain.results) == sorted(m.text for m in mine)


async def test_reflect_agrees(pair: Pair) -> None:
    async def ours(bank: str) -> str:
        return (await pair.ours.reflect(bank, "Where does Alice live?")).text

    async def theirs(bank: str) -> str:
        return (await pair.theirs.areflect(bank, "Where does Alice live?")).text

    views = await pair.recalled_views(ours, theirs)
    assert same_per_bank(views), views


async def test_bank_profile_and_entities_agree(pair: Pair) -> None:
    ours_bank, theirs_bank = bank_id_for("parity-profile-ours"), bank_id_for("parity-profile-official")
    ours = await pair.ours.create_or_update_bank(ours_bank, name="Parity", mission="remember the user")
    theirs = await pair.theirs.acreate_bank(theirs_bank, name="Parity", mission="remember the user")
    assert (ours.name, ours.mission, ours.disposition) == (theirs.name, theirs.mission,
                                                           theirs.disposition.to_dict())
    # Hindsight keeps the (deprecated) mission as the bank's reflect_mission config override, so a
    # reset_bank_config drops it too; both clients read it the same way.
    for bank in (ours_bank, theirs_bank):
        read_ours = (await pair.ours.get_bank_config(bank)).overrides
        read_theirs = (await pair.theirs.aget_bank_config(bank))["overrides"]
        assert read_ours == read_theirs == {"reflect_mission": "remember the user"}
        await pair.ours.delete_bank(bank)
    async def names_ours(bank: str) -> list[tuple[str, int]]:
        return sorted([(e.canonical_name, e.mention_count) async for e in pair.ours.iter_entities(bank)])

    async def names_theirs(bank: str) -> list[tuple[str, int]]:
        page = await pair.theirs.entities.list_entities(bank, limit=500)
        return sorted((e.canonical_name, e.mention_count) for e in page.items)

    views = await pair.views(names_ours, names_theirs)
    assert all(view == views[0] for view in views), views
    assert {"Alice", "Zephyr", "Bob", "Carol"} <= {name for name, _ in views[0]}


async def test_bank_config_agrees(pair: Pair) -> None:
    ours = await pair.ours.update_bank_config(pair.ours_bank, CONFIG)
    theirs = await pair.theirs.aupdate_bank_config(pair.theirs_bank, **CONFIG)
    assert ours.overrides == theirs["overrides"] == CONFIG
    read = await pair.views(lambda b: _overrides(pair.ours.get_bank_config(b)),
                            lambda b: _dict_overrides(pair.theirs.aget_bank_config(b)))
    assert read == [CONFIG] * 4
    ours_reset = await pair.ours.reset_bank_config(pair.ours_bank)
    theirs_reset = await pair.theirs.areset_bank_config(pair.theirs_bank)
    assert ours_reset.overrides == theirs_reset["overrides"] == {}
    assert ours_reset.config == theirs_reset["config"]


async def _overrides(read: Awaitable[Any]) -> Any:
    return (await read).overrides


async def _dict_overrides(read: Awaitable[dict[str, Any]]) -> Any:
    return (await read)["overrides"]


async def test_documents_agree(pair: Pair) -> None:
    async def ours(bank: str) -> list[tuple[Any, ...]]:
        return sorted([(d.id, tuple(sorted(d.tags or [])), d.memory_unit_count)
                       async for d in pair.ours.iter_documents(bank)])

    async def theirs(bank: str) -> list[tuple[Any, ...]]:
        page = await pair.theirs.documents.list_documents(bank)
        return sorted((d.id, tuple(sorted(d.tags or [])), d.memory_unit_count) for d in page.items)

    views = await pair.views(ours, theirs)
    assert all(view == views[0] for view in views), views
    assert [d[0] for d in views[0]] == ["doc-alice", "doc-bob", "doc-carol", "doc-office"]

    details = await pair.views(lambda b: _text(pair.ours.get_document(b, "doc-bob")),
                               lambda b: _text(pair.theirs.documents.get_document(b, "doc-bob")))
    assert details == [BOB] * 4


async def _text(read: Awaitable[Any]) -> Any:
    return (await read).original_text


async def test_async_retain_by_operation_id_and_deletion_agree(pair: Pair) -> None:
    ours_op, theirs_op = uuid.uuid4(), str(uuid.uuid4())
    fact = "Frank collects fountain pens."
    ours = [await pair.ours.retain(pair.ours_bank, fact, run_async=True, operation_id=ours_op,
                                   timestamp="2024-03-01T00:00:00Z", document_id="doc-frank") for _ in range(2)]
    theirs = [await pair.theirs.aretain(pair.theirs_bank, fact, retain_async=True, operation_id=theirs_op,
                                        timestamp="2024-03-01T00:00:00Z", document_id="doc-frank") for _ in range(2)]
    assert [r.operation_id for r in ours] == [str(ours_op)] * 2
    assert [r.operation_id for r in theirs] == [theirs_op] * 2

    done = await pair.ours.wait_for_operation(pair.ours_bank, ours_op)
    await pair.ours.wait_for_operation(pair.theirs_bank, theirs_op)
    status = await pair.theirs.operations.get_operation_status(pair.ours_bank, str(ours_op))
    assert (status.status, status.operation_type) == (done.status, done.operation_type) == ("completed",
                                                                                           "batch_retain")
    deleted_ours = await pair.ours.delete_document(pair.ours_bank, "doc-frank")
    deleted_theirs = await pair.theirs.documents.delete_document(pair.theirs_bank, "doc-frank")
    assert deleted_ours.memory_units_deleted == deleted_theirs.memory_units_deleted > 0
    with pytest.raises(DocumentNotFoundError):
        await pair.ours.delete_document(pair.ours_bank, "doc-frank")
    with pytest.raises(NotFoundException):
        await pair.theirs.documents.delete_document(pair.theirs_bank, "doc-frank")


async def test_where_the_clients_differ(pair: Pair) -> None:
    """What running both side by side showed (docs/hindsight-client-parity.md, "Differences")."""
    unknown = bank_id_for("parity-unknown")
    # 1. A naive timestamp: the official client sends it and Hindsight reads it as UTC; ours refuses it.
    naive = datetime(2024, 1, 1, 18, 0)  # a KST evening, say, without its offset
    with pytest.raises(InvalidInputError, match="timestamp"):
        await pair.ours.retain(unknown, "Ivy lands in Seoul.", timestamp=naive)
    await pair.theirs.aretain(unknown, "Ivy lands in Seoul.", timestamp=naive, document_id="doc-ivy")
    [stored] = [u async for u in pair.ours.iter_memories(unknown, q="Ivy lands")]
    assert (stored.mentioned_at or "").startswith("2024-01-01T18:00:00"), stored.mentioned_at
    assert (stored.mentioned_at or "").endswith("+00:00")  # read as UTC: 9 hours off for a KST caller
    # 2. operation_id on a synchronous retain: the official client warns and drops it; ours refuses it.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dropped = await pair.theirs.aretain(unknown, "Gina sails.", operation_id=str(uuid.uuid4()),
                                            timestamp="2024-01-01T00:00:00Z")
    assert dropped.operation_id is None
    assert any("operation_id is ignored" in str(w.message) for w in caught)
    with pytest.raises(InvalidInputError, match="operation_id"):
        await pair.ours.retain(unknown, "Gina sails.", operation_id=uuid.uuid4())
    await pair.ours.delete_bank(unknown)
    # 3. An unknown bank: two different exception types from the official client, one typed error from ours.
    with pytest.raises(NotFoundException):
        await pair.theirs.alist_memories(unknown)
    with pytest.raises(aiohttp.ClientResponseError) as config_404:
        await pair.theirs.aget_bank_config(unknown)
    assert config_404.value.status == 404
    for read in (pair.ours.list_memories(unknown), pair.ours.get_bank_config(unknown)):
        with pytest.raises(BankNotFoundError):
            await read


class _Draws(random.Random):
    """The official client's jitter source (injectable by design): records each bound, draws the lowest."""

    def __init__(self) -> None:
        super().__init__(0)
        self.bounds: list[tuple[float, float]] = []

    def uniform(self, a: float, b: float) -> float:
        self.bounds.append((a, b))
        return a


async def test_a_busy_server_official_may_retry_before_retry_after_ours_waits(
        hindsight_busy_server: RunningHindsight) -> None:
    """Hindsight answers ``Retry-After: 1``. The official client draws its wait from [0, 1] (full jitter),
    so it may come straight back (here: it does, twice, and fails); ours waits the whole second."""
    busy = hindsight_busy_server
    bank = bank_id_for("parity-admission")
    theirs = Hindsight(base_url=busy.base_url, timeout=120, max_attempts=3)
    draws = _Draws()
    theirs._retry_rng = draws
    async with HindsightClient(busy.base_url, timeout=120) as ours:
        await ours.retain(bank, "Hana grows chillies on her balcony.", timestamp="2024-01-01T00:00:00Z")
        async with recall_in_flight(busy, ours, bank, "Who grows chillies?") as in_flight:
            with pytest.raises(ApiException) as refused:
                await theirs.arecall(bank, "What grows on Hana's balcony?")
            assert refused.value.status == 503
            assert draws.bounds == [(0, 1.0), (0, 1.0)]  # two immediate retries, before the Retry-After
            async with HindsightClient(busy.base_url, timeout=120, sleep=in_flight.sleep) as patient:
                found = await patient.recall(bank, "What grows on Hana's balcony?")
        await ours.delete_bank(bank)
    await theirs.aclose()  # type: ignore[no-untyped-call]  # hindsight-client leaves aclose unannotated
    assert in_flight.asked[0] == 1.0
    assert "Hana grows chillies on her balcony." in [m.text for m in found]
