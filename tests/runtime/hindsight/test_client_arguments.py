"""HindsightClient's new calls: what they send, what they refuse before sending, how they end (respx)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
import respx

from jedisos_db.runtime.errors import (
    BankNotFoundError,
    DocumentNotFoundError,
    InvalidInputError,
    OperationTimeoutError,
)
from jedisos_db.runtime.hindsight import client as hc
from jedisos_db.runtime.hindsight.models import EntityRef, RetainItem

from .fakes import BANK, BANK_URL, BASE, Sleeps

RETAINED = {"success": True, "bank_id": BANK, "items_count": 2, "async": False}
RECALLED = {"results": [{"id": "m1", "text": "Ada lives in Seoul", "chunk_id": "c1"}],
            "entities": {"Ada": {"entity_id": "e1", "canonical_name": "Ada",
                                 "observations": [{"text": "Ada lives in Seoul"}]}},
            "chunks": {"c1": {"id": "c1", "text": "Ada lives in Seoul.", "chunk_index": 0}}}
OP = "0b6c4cf4-3c3f-4a52-9d1e-1b8f2f4c7a10"
KST = timezone(timedelta(hours=9))


async def _sent(method: str, url: str, answer: Any, call: Callable[[hc.HindsightClient], Awaitable[Any]]
                ) -> tuple[httpx.Request, Any]:
    with respx.mock:
        route = respx.route(method=method, url__regex=rf"^{url}(\?.*)?$").respond(200, json=answer)
        async with hc.HindsightClient(BASE, max_retries=0) as client:
            result = await call(client)
    return route.calls.last.request, result


async def test_retain_batch_sends_each_items_own_fields() -> None:
    items: list[RetainItem | str] = [
        RetainItem("Ada moved to Seoul.", context="chat", tags=["user:ada"], metadata={"channel": "web"},
                   timestamp=datetime(2024, 1, 15, 19, 30, tzinfo=KST), document_id="d1",
                   entities=[EntityRef("Ada", "PERSON"), "Seoul"], update_mode="append"),
        "Bob plays the cello.",
        RetainItem("A timeless fact.", timestamp="unset"),
    ]
    request, result = await _sent("POST", f"{BANK_URL}/memories", RETAINED,
                                  lambda c: c.retain_batch(BANK, items, document_tags=["import:2024"]))
    assert result.items_count == 2
    assert json.loads(request.content) == {
        "items": [
            {"content": "Ada moved to Seoul.", "context": "chat", "tags": ["user:ada"],
             "metadata": {"channel": "web"}, "timestamp": "2024-01-15T19:30:00+09:00", "document_id": "d1",
             "entities": [{"text": "Ada", "type": "PERSON"}, {"text": "Seoul"}], "update_mode": "append"},
            {"content": "Bob plays the cello."},
            {"content": "A timeless fact.", "timestamp": "unset"},
        ],
        "async": False,
        "document_tags": ["import:2024"],
    }


async def test_retain_shares_its_fields_across_texts_and_sends_the_operation_id() -> None:
    request, _ = await _sent("POST", f"{BANK_URL}/memories", RETAINED, lambda c: c.retain(
        BANK, ["one", "two"], tags=["t"], timestamp="2024-01-15T10:30:00Z", run_async=True, operation_id=OP))
    body = json.loads(request.content)
    assert body["items"] == [{"content": t, "tags": ["t"], "timestamp": "2024-01-15T10:30:00+00:00"}
                             for t in ("one", "two")]
    assert (body["async"], body["operation_id"]) == (True, OP)


async def test_recall_asks_for_neither_entities_nor_chunks_and_recall_full_for_both() -> None:
    request, found = await _sent("POST", f"{BANK_URL}/memories/recall", RECALLED, lambda c: c.recall(
        BANK, "Where?", tags=["user:ada"], tags_match="any_strict", types=["world"], budget="high",
        max_tokens=256, query_timestamp=datetime(2024, 2, 1, tzinfo=UTC)))
    assert [m.text for m in found] == ["Ada lives in Seoul"]
    assert json.loads(request.content) == {
        "query": "Where?", "tags": ["user:ada"], "tags_match": "any_strict", "types": ["world"], "budget": "high",
        "max_tokens": 256, "query_timestamp": "2024-02-01T00:00:00+00:00",
        # Hindsight includes entities unless told not to: recall() would pay for what it throws away.
        "include": {"entities": None, "chunks": None},
    }
    request, full = await _sent("POST", f"{BANK_URL}/memories/recall", RECALLED, lambda c: c.recall_full(
        BANK, "Where?", include_entities=True, include_chunks=True, chunk_max_tokens=1000))
    assert json.loads(request.content)["include"] == {"entities": {}, "chunks": {"max_tokens": 1000}}
    assert full.entities is not None
    assert full.entities["Ada"].observations[0].text == "Ada lives in Seoul"
    assert full.chunks is not None
    assert full.chunks[full.results[0].chunk_id or ""].text == "Ada lives in Seoul."


async def test_list_memories_sends_every_filter_under_hindsights_names() -> None:
    page = {"items": [], "total": 0, "limit": 10, "offset": 20}
    request, _ = await _sent("GET", f"{BANK_URL}/memories/list", page, lambda c: c.list_memories(
        BANK, limit=10, offset=20, fact_type="experience", q="cello", document_id="d1", entity_id="e1",
        tags=["a", "b"], tags_match="all_strict", state="valid", consolidation_state="done",
        time_field="mentioned_at", start_date=datetime(2024, 1, 1, tzinfo=UTC), end_date="2024-02-01T00:00:00Z"))
    params = request.url.params
    assert params.get_list("tags") == ["a", "b"]
    assert {k: params[k] for k in params if k != "tags"} == {
        "limit": "10", "offset": "20", "type": "experience", "q": "cello", "document_id": "d1", "entity_id": "e1",
        "tags_match": "all_strict", "state": "valid", "consolidation_state": "done", "time_field": "mentioned_at",
        "start_date": "2024-01-01T00:00:00+00:00", "end_date": "2024-02-01T00:00:00+00:00"}


async def test_iter_documents_pages_with_its_filters() -> None:
    docs = [{"id": f"d{i}"} for i in range(3)]

    def page(request: httpx.Request) -> httpx.Response:
        assert request.url.params["q"] == "report"
        limit, offset = int(request.url.params["limit"]), int(request.url.params["offset"])
        return httpx.Response(200, json={"items": docs[offset:offset + limit], "total": 3, "limit": limit,
                                         "offset": offset})

    with respx.mock:
        route = respx.get(f"{BANK_URL}/documents").mock(side_effect=page)
        async with hc.HindsightClient(BASE) as client:
            ids = [d.id async for d in client.iter_documents(BANK, page_size=2, q="report")]
    assert ids == ["d0", "d1", "d2"]
    assert route.call_count == 2


@pytest.mark.parametrize(("call", "field"), [
    (lambda c: c.retain(BANK, "x", timestamp=datetime(2024, 1, 1)), "timestamp"),
    (lambda c: c.retain(BANK, "x", timestamp="2024-01-01T10:00:00"), "timestamp"),
    (lambda c: c.retain(BANK, "x", timestamp="yesterday"), "timestamp"),
    (lambda c: c.retain(BANK, "x", tags="user:ada"), "tags"),
    (lambda c: c.retain(BANK, "x", metadata={"n": 1}), "metadata"),
    (lambda c: c.retain(BANK, "x", update_mode="merge"), "update_mode"),
    (lambda c: c.retain(BANK, "x", update_mode="append"), "update_mode"),
    (lambda c: c.retain(BANK, "x", entities=[""]), "entities.text"),
    (lambda c: c.retain(BANK, "x", operation_id=OP), "operation_id"),
    (lambda c: c.retain(BANK, "x", run_async=True, operation_id="retry-1"), "operation_id"),
    (lambda c: c.retain_batch(BANK, ["fine", " "]), "items[1].content"),
    (lambda c: c.retain_batch(BANK, []), "items"),
    (lambda c: c.retain(BANK, "x", document_tags="t"), "document_tags"),
    (lambda c: c.recall(BANK, "q", tags_match="strict"), "tags_match"),
    (lambda c: c.recall(BANK, "q", types=["facts"]), "types[0]"),
    (lambda c: c.recall(BANK, "q", budget="max"), "budget"),
    (lambda c: c.recall(BANK, "q", max_tokens=0), "max_tokens"),
    (lambda c: c.recall(BANK, "q", query_timestamp="2024-01-01T00:00:00"), "query_timestamp"),
    (lambda c: c.recall(BANK, "q", tag=["typo"]), "tag"),
    (lambda c: c.recall_full(BANK, "q", include_chunks=True, chunk_max_tokens=0), "chunk_max_tokens"),
    (lambda c: c.list_memories(BANK, fact_type="opinion"), "fact_type"),
    (lambda c: c.list_memories(BANK, time_field="when"), "time_field"),
    (lambda c: c.list_documents(BANK, time_field="mentioned_at"), "time_field"),  # memories only
    (lambda c: c.update_bank_config(BANK, {}), "updates"),
    (lambda c: c.get_operation(BANK, "op-1"), "operation_id"),
    (lambda c: c.get_document(BANK, ""), "document_id"),
    (lambda c: c.wait_for_operation(BANK, OP, max_wait=-1), "max_wait"),
])
async def test_bad_arguments_name_the_field_before_any_request(call: Callable[[hc.HindsightClient], Awaitable[Any]],
                                                               field: str) -> None:
    async with hc.HindsightClient(BASE) as client, respx.mock(assert_all_called=False) as mock:
        route = mock.route()
        with pytest.raises(InvalidInputError) as failure:
            await call(client)
        assert route.call_count == 0
    assert failure.value.field == field


def test_a_retain_item_is_checked_when_it_is_built() -> None:
    with pytest.raises(InvalidInputError) as failure:
        RetainItem("x", timestamp=datetime(2024, 1, 1))
    assert failure.value.field == "timestamp"
    assert "UTC offset" in failure.value.rule


async def test_wait_for_operation_polls_until_the_operation_finished() -> None:
    sleeps = Sleeps()
    states = ["pending", "processing", "completed"]
    with respx.mock:
        route = respx.get(f"{BANK_URL}/operations/{OP}").mock(side_effect=[
            httpx.Response(200, json={"operation_id": OP, "status": s}) for s in states])
        async with hc.HindsightClient(BASE, sleep=sleeps) as client:
            done = await client.wait_for_operation(BANK, OP, poll_interval=0.5)
    assert (done.status, done.finished) == ("completed", True)
    assert route.call_count == 3
    assert sleeps.delays == [0.5, 0.5]


@pytest.mark.parametrize("state", ["failed", "cancelled", "not_found"])
async def test_wait_for_operation_returns_every_final_state(state: str) -> None:
    with respx.mock:
        respx.get(f"{BANK_URL}/operations/{OP}").respond(200, json={"operation_id": OP, "status": state,
                                                                    "error_message": "boom"})
        async with hc.HindsightClient(BASE, sleep=Sleeps()) as client:
            done = await client.wait_for_operation(BANK, OP)
    assert done.status == state


async def test_wait_for_operation_gives_up_at_its_deadline() -> None:
    sleeps = Sleeps()
    with respx.mock:
        route = respx.get(f"{BANK_URL}/operations/{OP}").respond(200, json={"operation_id": OP, "status": "pending"})
        async with hc.HindsightClient(BASE, sleep=sleeps) as client:
            with pytest.raises(OperationTimeoutError) as failure:
                await client.wait_for_operation(BANK, OP, max_wait=0)
    assert route.call_count == 1
    assert sleeps.delays == []
    assert (failure.value.operation_id, failure.value.state, failure.value.attempts) == (OP, "pending", 1)
    assert "still 'pending'" in str(failure.value)


async def test_404_on_a_document_names_the_document_and_elsewhere_the_bank() -> None:
    with respx.mock:
        respx.delete(f"{BANK_URL}/documents/d%2F1").respond(404, json={"detail": "Document not found"})
        respx.get(f"{BANK_URL}/documents").respond(404, json={"detail": f"Bank '{BANK}' not found"})
        respx.get(f"{BANK_URL}/config").respond(404, json={"detail": f"Bank '{BANK}' not found"})
        async with hc.HindsightClient(BASE) as client:
            with pytest.raises(DocumentNotFoundError) as missing:
                await client.delete_document(BANK, "d/1")
            with pytest.raises(BankNotFoundError) as listed:
                await client.list_documents(BANK)
            with pytest.raises(BankNotFoundError):
                await client.get_bank_config(BANK)
    assert (missing.value.bank_id, missing.value.document_id, missing.value.status) == (BANK, "d/1", 404)
    assert listed.value.bank_id == BANK
