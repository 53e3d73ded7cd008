"""Every HindsightClient feature JediSOS relies on, end to end against the real server (offline).

Each test owns a bank and deletes it. Waits are conditions: an async retain is awaited through
its operation's state, a busy server is produced by holding one request in flight (not by load).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from jedisos_db.runtime.errors import (
    BankNotFoundError,
    DocumentNotFoundError,
    HindsightBusyError,
    HindsightRequestError,
)
from jedisos_db.runtime.hindsight.client import HindsightClient, bank_id_for
from jedisos_db.runtime.hindsight.models import UNSET, EntityRef, Memory, RetainItem
from tests.plugins.hindsight import RunningHindsight

from .fakes import recall_in_flight

pytestmark = pytest.mark.e2e


@pytest.fixture
async def client(hindsight_server: RunningHindsight) -> AsyncIterator[HindsightClient]:
    async with HindsightClient(hindsight_server.base_url, timeout=120) as hs:
        yield hs


@pytest.fixture
async def bank(client: HindsightClient, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A bank of this test's own, deleted afterwards."""
    name = bank_id_for("e2e-" + request.node.name.removeprefix("test_")[:60].replace("[", "-").rstrip("]"))
    yield name
    await client.delete_bank(name)


def texts(memories: list[Memory]) -> list[str]:
    return [m.text for m in memories]


async def test_batch_items_keep_their_own_context_tags_metadata_time_and_entities(client: HindsightClient,
                                                                                  bank: str) -> None:
    retained = await client.retain_batch(bank, [
        RetainItem("Alice moved to Paris.", context="chat", tags=["user:alice"], metadata={"channel": "web"},
                   timestamp=datetime(2023, 4, 1, 10, 0, tzinfo=UTC), document_id="doc-alice",
                   entities=[EntityRef("Alice", "PERSON"), EntityRef("Zephyr Project", "PROJECT")]),
        RetainItem("Bob plays the cello.", context="email", tags=["user:bob"], metadata={"channel": "mail"},
                   timestamp="2021-07-09T08:00:00+02:00", document_id="doc-bob"),
        RetainItem("Water boils at 100 degrees Celsius at sea level.", timestamp=UNSET, document_id="doc-rule"),
    ], document_tags=["import:e2e"])
    assert (retained.success, retained.items_count, retained.is_async) == (True, 3, False)

    units = {u.text: u async for u in client.iter_memories(bank, fact_type="world")}
    alice, bob = units["Alice moved to Paris."], units["Bob plays the cello."]
    assert (alice.context, alice.document_id, alice.metadata) == ("chat", "doc-alice", {"channel": "web"})
    assert (bob.context, bob.document_id, bob.metadata) == ("email", "doc-bob", {"channel": "mail"})
    assert set(alice.tags or []) == {"user:alice", "import:e2e"}  # per-item tags plus the batch's document_tags
    assert set(bob.tags or []) == {"user:bob", "import:e2e"}
    assert (alice.mentioned_at or "").startswith("2023-04-01T10:00")
    assert (bob.mentioned_at or "").startswith("2021-07-09T06:00")  # +02:00 stored as UTC
    timeless = units["Water boils at 100 degrees Celsius at sea level."]
    assert timeless.mentioned_at is None  # "unset": stored with no time at all
    # Given entities are linked on top of the extracted ones: "Zephyr Project" is nowhere in the text.
    assert "Zephyr Project" in (alice.entities or ""), alice.entities
    names = {e.canonical_name async for e in client.iter_entities(bank)}
    assert "Zephyr Project" in names


async def test_tag_scoped_recall_includes_untagged_memories_unless_strict(client: HindsightClient, bank: str) -> None:
    """Hindsight's default ``tags_match="any"`` returns memories with no tag at all next to the tagged ones:
    scoping a recall to one user's tag is not enough to keep shared, untagged memories out."""
    await client.retain(bank, "Alice's locker code is 4417.", tags=["user:alice"])
    await client.retain(bank, "The office locker code is 9921.")  # untagged
    await client.retain(bank, "Bob's locker code is 5550.", tags=["user:bob"])
    query = "What is the locker code?"

    everything = texts(await client.recall(bank, query))
    default = texts(await client.recall(bank, query, tags=["user:alice"]))
    strict = texts(await client.recall(bank, query, tags=["user:alice"], tags_match="any_strict"))

    assert {"Alice's locker code is 4417.", "The office locker code is 9921.",
            "Bob's locker code is 5550."} <= set(everything)
    assert "Alice's locker code is 4417." in default
    assert "The office locker code is 9921." in default, "the untagged memory leaks into tag-scoped recall"
    assert "Bob's locker code is 5550." not in default
    assert "Alice's locker code is 4417." in strict
    assert "The office locker code is 9921." not in strict
    assert "Bob's locker code is 5550." not in strict
    assert all(not t.startswith("Bob") for t in strict)


async def test_recall_full_returns_entities_and_chunks_only_when_asked(client: HindsightClient, bank: str) -> None:
    await client.retain(bank, "Alice works at Acme Corp in Seoul and likes hiking.", document_id="doc-1")
    query = "Where does Alice work?"
    bare = await client.recall_full(bank, query)
    assert bare.results
    assert (bare.entities, bare.chunks) == (None, None)

    full = await client.recall_full(bank, query, include_entities=True, include_chunks=True)
    assert full.entities is not None
    assert "Alice" in full.entities
    assert full.entities["Alice"].canonical_name == "Alice"
    assert full.chunks is not None
    best = full.results[0]
    assert best.chunk_id in full.chunks
    assert "Acme Corp" in full.chunks[best.chunk_id or ""].text
    assert [m.id for m in await client.recall(bank, query)] == [m.id for m in full.results]


async def test_recall_budget_options_shape_the_answer(client: HindsightClient, bank: str) -> None:
    await client.retain(bank, "Alice visited the dentist.", timestamp="2020-03-01T10:00:00Z")
    await client.retain(bank, "Alice visited the museum.", timestamp="2024-03-01T10:00:00Z")
    query = "Alice visited"
    both = await client.recall(bank, query, types=["world"], budget="low")
    assert {"Alice visited the dentist.", "Alice visited the museum."} <= set(texts(both))
    assert {m.type for m in both} == {"world"}
    one = await client.recall(bank, query, types=["world"], max_tokens=5)
    assert len(one) < len(both)
    assert await client.recall(bank, query, types=["experience"]) == []


async def test_query_timestamp_is_the_now_of_relative_questions(client: HindsightClient, bank: str) -> None:
    """"Last week" seen from 2020-03-05 covers the dentist visit of 2020-03-01; seen from 2024, it does not."""
    await client.retain(bank, "Alice visited the dentist.", timestamp="2020-03-01T10:00:00Z")
    await client.retain(bank, "Alice visited the museum.", timestamp="2024-03-01T10:00:00Z")

    async def dentist_score(now: datetime) -> float:
        found = await client.recall(bank, "What did Alice visit last week?", query_timestamp=now)
        [dentist] = [m for m in found if m.text == "Alice visited the dentist."]
        assert dentist.scores is not None
        return dentist.scores.final

    then = await dentist_score(datetime(2020, 3, 5, tzinfo=UTC))
    later = await dentist_score(datetime(2024, 3, 5, tzinfo=UTC))
    assert then > later, (then, later)


async def test_list_memories_filters(client: HindsightClient, bank: str) -> None:
    await client.retain_batch(bank, [
        RetainItem("Carol bakes sourdough bread.", tags=["user:carol"], document_id="doc-bread",
                   timestamp="2022-05-01T09:00:00Z"),
        RetainItem("Dan repairs vintage radios.", tags=["user:dan"], document_id="doc-radio",
                   timestamp="2024-05-01T09:00:00Z"),
    ])
    world = [u.text async for u in client.iter_memories(bank, fact_type="world")]
    assert {"Carol bakes sourdough bread.", "Dan repairs vintage radios."} <= set(world)

    searched = await client.list_memories(bank, q="sourdough")
    assert [u.text for u in searched.items] == ["Carol bakes sourdough bread."]
    by_document = [u.text async for u in client.iter_memories(bank, document_id="doc-radio")]
    assert "Dan repairs vintage radios." in by_document
    assert all("Carol" not in t for t in by_document if t)
    tagged = [u.text async for u in client.iter_memories(bank, tags=["user:carol"], tags_match="any_strict")]
    assert "Carol bakes sourdough bread." in tagged
    assert all("Dan" not in t for t in tagged if t)
    recent = [u.text async for u in client.iter_memories(bank, fact_type="world", time_field="mentioned_at",
                                                          start_date=datetime(2024, 1, 1, tzinfo=UTC))]
    assert "Dan repairs vintage radios." in recent
    assert "Carol bakes sourdough bread." not in recent

    first = await client.list_memories(bank, fact_type="world", limit=1, offset=0)
    second = await client.list_memories(bank, fact_type="world", limit=1, offset=1)
    assert (len(first.items), len(second.items), first.total) == (1, 1, len(world))
    assert first.items[0].id != second.items[0].id


async def test_documents_are_listed_appended_replaced_and_deleted(client: HindsightClient, bank: str) -> None:
    await client.retain(bank, "Part one is about apples.", document_id="notes", tags=["kind:notes"])
    await client.retain(bank, "Part two is about pears.", document_id="notes", update_mode="append",
                        tags=["kind:notes"])
    await client.retain(bank, "A report on quarterly sales.", document_id="report-2024")

    appended = await client.get_document(bank, "notes")
    assert appended.original_text == "Part one is about apples.\nPart two is about pears."
    listed = {d.id: d async for d in client.iter_documents(bank, page_size=1)}
    assert set(listed) == {"notes", "report-2024"}
    assert listed["notes"].tags == ["kind:notes"]
    assert [d.id for d in (await client.list_documents(bank, q="report")).items] == ["report-2024"]
    assert [d.id for d in (await client.list_documents(bank, tags=["kind:notes"])).items] == ["notes"]

    await client.retain(bank, "Only cherries now.", document_id="notes", update_mode="replace")
    assert (await client.get_document(bank, "notes")).original_text == "Only cherries now."

    units_before = {u.id async for u in client.iter_memories(bank, document_id="report-2024")}
    deleted = await client.delete_document(bank, "report-2024")
    assert (deleted.success, deleted.document_id, deleted.memory_units_deleted) == (True, "report-2024",
                                                                                   len(units_before))
    assert [u async for u in client.iter_memories(bank, document_id="report-2024")] == []
    with pytest.raises(DocumentNotFoundError) as gone:
        await client.delete_document(bank, "report-2024")
    assert (gone.value.bank_id, gone.value.document_id) == (bank, "report-2024")
    with pytest.raises(DocumentNotFoundError):
        await client.get_document(bank, "report-2024")


async def test_bank_config_get_patch_reset(client: HindsightClient, bank: str) -> None:
    with pytest.raises(BankNotFoundError):
        await client.get_bank_config(bank)
    await client.retain(bank, "Eve likes chess.")
    before = await client.get_bank_config(bank)
    assert before.bank_id == bank
    assert before.overrides == {}
    other = "verbose" if before.config["retain_extraction_mode"] != "verbose" else "concise"

    patched = await client.update_bank_config(bank, {"retain_extraction_mode": other, "recall_max_tokens": 1024})
    assert patched.overrides == {"retain_extraction_mode": other, "recall_max_tokens": 1024}
    assert (patched.config["retain_extraction_mode"], patched.config["recall_max_tokens"]) == (other, 1024)
    assert (await client.get_bank_config(bank)).overrides == patched.overrides

    with pytest.raises(HindsightRequestError) as refused:
        await client.update_bank_config(bank, {"no_such_setting": 1})
    assert refused.value.status == 400
    assert "no_such_setting" in refused.value.body

    reset = await client.reset_bank_config(bank)
    assert reset.overrides == {}
    assert reset.config["retain_extraction_mode"] == before.config["retain_extraction_mode"]


async def test_async_retain_is_idempotent_by_operation_id(client: HindsightClient, bank: str) -> None:
    """Submitting the same async retain twice (a retry after a lost answer) stores the memory once."""
    operation_id = uuid.uuid4()
    first = await client.retain(bank, "Frank collects fountain pens.", run_async=True, operation_id=operation_id)
    again = await client.retain(bank, "Frank collects fountain pens.", run_async=True, operation_id=operation_id)
    assert (first.is_async, first.operation_id) == (True, str(operation_id))
    assert again.operation_id == first.operation_id

    done = await client.wait_for_operation(bank, operation_id, max_wait=120)
    assert (done.status, done.operation_type) == ("completed", "batch_retain")
    stored = [u.text async for u in client.iter_memories(bank, q="fountain pens")]
    assert stored.count("Frank collects fountain pens.") == 1, stored
    assert (await client.get_operation(bank, uuid.uuid4())).status == "not_found"

    other_bank = bank + "-other"
    with pytest.raises(HindsightRequestError) as conflict:
        await client.retain(other_bank, "Frank collects fountain pens.", run_async=True, operation_id=operation_id)
    assert conflict.value.status == 409
    await client.delete_bank(other_bank)


async def test_a_busy_server_is_retried_after_the_wait_it_asks_for(hindsight_busy_server: RunningHindsight) -> None:
    """Hindsight's admission control answers 503 + ``Retry-After`` when a lane is full. One recall is
    held in flight (its query embedding held back by our TEI endpoint) in a lane of one."""
    busy = hindsight_busy_server
    bank = bank_id_for("e2e-admission")
    async with HindsightClient(busy.base_url, timeout=120) as hs:
        await hs.retain(bank, "Erin keeps bees on her roof.")
        async with recall_in_flight(busy, hs, bank, "Who keeps bees?") as in_flight:
            async with HindsightClient(busy.base_url, timeout=120, max_retries=0) as impatient:
                with pytest.raises(HindsightBusyError) as refused:
                    await impatient.recall(bank, "What is on Erin's roof?")
            assert (refused.value.status, refused.value.retry_after) == (503, 1.0)
            async with HindsightClient(busy.base_url, timeout=120, sleep=in_flight.sleep) as patient:
                found = await patient.recall(bank, "What is on Erin's roof?")
        assert "Erin keeps bees on her roof." in texts(in_flight.holder.result())
        await hs.delete_bank(bank)
    assert in_flight.asked[0] == 1.0  # the server's Retry-After, not the client's 0.25 s backoff
    assert "Erin keeps bees on her roof." in texts(found)
