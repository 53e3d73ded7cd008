"""HindsightClient behaviour on failure, with auth, and over pages (respx: HTTP only, no database)."""

from __future__ import annotations

import logging

import httpx
import pytest
import respx

from jedisos_db.harness.hindsight.server import free_port
from jedisos_db.runtime.errors import (
    BankNotFoundError,
    ConfigError,
    HindsightContractError,
    HindsightRequestError,
    HindsightUnavailableError,
    InvalidInputError,
)
from jedisos_db.runtime.hindsight import client as hc

from .fakes import BANK, BANK_URL, BASE, RECALL_URL, RECALLED, RETAIN_URL, Sleeps, make

ENTITIES_URL = f"{BANK_URL}/entities"
SECRET = "sk-live-7f3a9c-DO-NOT-LOG"


@pytest.mark.claim("S2-bank-per-user")
def test_bank_id_for_prefixes_the_user() -> None:
    """Design §2-3: one bank per user, ``jedisos-{user_id}``."""
    assert hc.bank_id_for("u1") == "jedisos-u1"
    assert hc.bank_id_for("kim.minsu@corp") == "jedisos-kim.minsu@corp"


@pytest.mark.parametrize("bad", ["", " ", "../admin", "a/b", "-leading-dash", "x" * 201, "sp ace"])
def test_bank_id_for_rejects_ids_that_are_not_one_path_segment(bad: str) -> None:
    with pytest.raises(InvalidInputError) as failure:
        hc.bank_id_for(bad)
    assert failure.value.field == "user_id"


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"base_url": "hindsight:8888"}, "base_url"),
    ({"max_retries": -1}, "max_retries"),
    ({"timeout": 0}, "timeout"),
])
def test_bad_settings_name_the_field(kwargs: dict[str, object], field: str) -> None:
    args = {"base_url": BASE} | kwargs
    with pytest.raises(ConfigError) as failure:
        hc.HindsightClient(**args)  # type: ignore[arg-type]
    assert failure.value.field == field


async def test_bad_arguments_are_refused_before_any_request() -> None:
    async with hc.HindsightClient(BASE) as client, respx.mock(assert_all_called=False) as mock:
        route = mock.route()
        with pytest.raises(InvalidInputError, match="content"):
            await client.retain(BANK, ["fine", "  "])
        with pytest.raises(InvalidInputError, match="query"):
            await client.recall(BANK, "")
        with pytest.raises(InvalidInputError, match="bank_id"):
            await client.recall("", "q")
        with pytest.raises(InvalidInputError, match="limit"):
            await client.list_entities(BANK, limit=0)
        assert route.call_count == 0


async def test_5xx_is_retried_with_exponential_backoff_then_succeeds() -> None:
    sleeps = Sleeps()
    with respx.mock:
        route = respx.post(RECALL_URL).mock(side_effect=[
            httpx.Response(503, text="warming up"), httpx.Response(502), httpx.Response(200, json=RECALLED)])
        async with make(sleeps) as client:
            found = await client.recall(BANK, "Where does Ada live?")
    assert [m.text for m in found] == ["Ada lives in Seoul"]
    assert route.call_count == 3
    assert sleeps.delays == [0.25, 0.5]


async def test_5xx_retries_are_bounded_and_capped() -> None:
    sleeps = Sleeps()
    with respx.mock:
        route = respx.post(RECALL_URL).respond(500, text="boom " * 200)
        async with make(sleeps, max_retries=4) as client:
            with pytest.raises(HindsightUnavailableError) as failure:
                await client.recall(BANK, "q")
    assert route.call_count == 5
    assert sleeps.delays == [0.25, 0.5, 1.0, 1.0]  # doubling, capped at backoff_max
    error = failure.value
    assert (error.status, error.attempts) == (500, 5)
    assert error.body.startswith("boom")
    assert len(error.body) <= 300
    assert "POST /v1/default/banks/jedisos-u1/memories/recall" in str(error)


async def test_connection_errors_are_retried_then_reported() -> None:
    sleeps = Sleeps()
    with respx.mock:
        route = respx.post(RECALL_URL).mock(side_effect=httpx.ConnectError("connection refused"))
        async with make(sleeps, max_retries=2) as client:
            with pytest.raises(HindsightUnavailableError, match="ConnectError") as failure:
                await client.recall(BANK, "q")
    assert route.call_count == 3
    assert failure.value.status is None
    assert failure.value.attempts == 3


async def test_a_real_refused_connection_is_bounded() -> None:
    """No mock: a loopback port nobody listens on."""
    sleeps = Sleeps()
    async with hc.HindsightClient(f"http://127.0.0.1:{free_port()}", sleep=sleeps, max_retries=2) as client:
        with pytest.raises(HindsightUnavailableError, match="after 3 attempt"):
            await client.list_entities(BANK)
    assert len(sleeps.delays) == 2


async def test_read_timeout_is_retried_for_recall_but_not_for_retain() -> None:
    """Retain is not idempotent: repeating a request that may have arrived could store the memory twice."""
    sleeps = Sleeps()
    with respx.mock:
        recall = respx.post(RECALL_URL).mock(
            side_effect=[httpx.ReadTimeout("slow"), httpx.Response(200, json=RECALLED)])
        retain = respx.post(RETAIN_URL).mock(side_effect=httpx.ReadTimeout("slow"))
        async with make(sleeps) as client:
            assert len(await client.recall(BANK, "q")) == 1
            with pytest.raises(HindsightUnavailableError, match="ReadTimeout"):
                await client.retain(BANK, "Ada lives in Seoul")
    assert recall.call_count == 2
    assert retain.call_count == 1


@pytest.mark.parametrize("status", [400, 401, 403, 409, 422])
async def test_4xx_is_never_retried_and_carries_status_and_body(status: int) -> None:
    sleeps = Sleeps()
    with respx.mock:
        route = respx.post(RECALL_URL).respond(status, json={"detail": f"nope {status}"})
        async with make(sleeps) as client:
            with pytest.raises(HindsightRequestError) as failure:
                await client.recall(BANK, "q")
    assert route.call_count == 1
    assert sleeps.delays == []
    assert not isinstance(failure.value, BankNotFoundError)
    assert failure.value.status == status
    assert f"nope {status}" in failure.value.body
    assert f"HTTP {status}" in str(failure.value)


async def test_404_is_bank_not_found() -> None:
    """DESIGN.md (verified): recall on an unknown bank is 404."""
    with respx.mock:
        route = respx.post(RECALL_URL).respond(404, json={"detail": f"Bank '{BANK}' not found"})
        async with make(Sleeps()) as client:
            with pytest.raises(BankNotFoundError) as failure:
                await client.recall(BANK, "q")
    assert route.call_count == 1
    assert failure.value.bank_id == BANK
    assert failure.value.status == 404
    assert "not found" in failure.value.body


async def test_a_2xx_body_without_what_the_client_reads_is_a_contract_error() -> None:
    with respx.mock:
        respx.post(RECALL_URL).respond(200, json={"memories": []})
        async with make(Sleeps()) as client:
            with pytest.raises(HindsightContractError, match="results"):
                await client.recall(BANK, "q")


async def test_auth_header_is_sent_only_when_configured() -> None:
    with respx.mock:
        route = respx.post(RECALL_URL).respond(200, json=RECALLED)
        async with hc.HindsightClient(BASE, api_key=SECRET) as client:
            await client.recall(BANK, "q")
        async with hc.HindsightClient(BASE) as client:
            await client.recall(BANK, "q")
    with_key, without = (call.request for call in route.calls)
    assert with_key.headers["Authorization"] == f"Bearer {SECRET}"
    assert "Authorization" not in without.headers


async def test_the_api_key_never_reaches_repr_errors_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # everything: ours, httpx's and httpcore's
    sleeps = Sleeps()
    with respx.mock:
        respx.post(RECALL_URL).respond(503, text="down")
        respx.get(ENTITIES_URL).respond(403, json={"detail": "Invalid API key"})
        async with make(sleeps, api_key=SECRET, max_retries=2) as client:
            assert SECRET not in repr(client)
            assert "<set>" in repr(client)
            with pytest.raises(HindsightUnavailableError) as unavailable:
                await client.recall(BANK, "q")
            with pytest.raises(HindsightRequestError) as refused:
                await client.list_entities(BANK)
    assert "retry 1/2" in caplog.text  # the retries were logged ...
    assert SECRET not in caplog.text  # ... without the key
    for error in (unavailable.value, refused.value):
        assert SECRET not in str(error)
        assert SECRET not in repr(error)


async def test_iterators_walk_every_page() -> None:
    entities = [{"id": f"e{i}", "canonical_name": f"E{i}", "mention_count": i} for i in range(5)]

    def page(request: httpx.Request) -> httpx.Response:
        limit, offset = int(request.url.params["limit"]), int(request.url.params["offset"])
        return httpx.Response(200, json={"items": entities[offset:offset + limit], "total": 5,
                                         "limit": limit, "offset": offset})

    with respx.mock:
        route = respx.get(ENTITIES_URL).mock(side_effect=page)
        async with make(Sleeps()) as client:
            names = [e.canonical_name async for e in client.iter_entities(BANK, page_size=2)]
    assert names == ["E0", "E1", "E2", "E3", "E4"]
    assert [call.request.url.params["offset"] for call in route.calls] == ["0", "2", "4"]


async def test_iterator_stops_on_an_empty_page_even_if_total_says_more() -> None:
    """A bank shrinking while we page must not loop forever."""
    with respx.mock:
        route = respx.get(ENTITIES_URL).mock(side_effect=[
            httpx.Response(200, json={"items": [{"id": "e0", "canonical_name": "E0", "mention_count": 1}],
                                      "total": 10, "limit": 1, "offset": 0}),
            httpx.Response(200, json={"items": [], "total": 10, "limit": 1, "offset": 1}),
        ])
        async with make(Sleeps()) as client:
            got = [e.id async for e in client.iter_entities(BANK, page_size=1)]
    assert got == ["e0"]
    assert route.call_count == 2


async def test_bank_ids_are_escaped_into_one_path_segment() -> None:
    with respx.mock:
        route = respx.delete(f"{BASE}/v1/default/banks/odd%2Fbank%20id").respond(
            200, json={"success": True, "deleted_count": 0})
        async with make(Sleeps()) as client:
            assert (await client.delete_bank("odd/bank id")).success
    assert route.call_count == 1
