"""What HindsightClient repeats, how long it waits first, and that every wait is bounded (respx: HTTP only).

The sleep is injected: each test records the waits the client asks for and never waits itself.
"""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
import respx

from jedisos_db.runtime.errors import (
    ConfigError,
    HindsightBusyError,
    HindsightRequestError,
    HindsightUnavailableError,
)
from jedisos_db.runtime.hindsight import client as hc
from jedisos_db.runtime.hindsight.retry import HindsightClientSettings, parse_retry_after

from .fakes import BANK, BANK_URL, BASE, RECALL_URL, RECALLED, RETAIN_URL, RETAINED, Sleeps, make

OP = "0b6c4cf4-3c3f-4a52-9d1e-1b8f2f4c7a10"
QUEUED = {"success": True, "bank_id": BANK, "items_count": 1, "async": True, "operation_id": OP}
CONFIG = {"bank_id": BANK, "config": {"retain_extraction_mode": "verbose"}, "overrides": {}}


def busy(status: int, retry_after: str | None = None) -> httpx.Response:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return httpx.Response(status, headers=headers, json={"detail": "Server is at capacity for 'recall'"})


# --- Retry-After -------------------------------------------------------------------------------


NOW = datetime(2026, 1, 15, 10, 30, 0, tzinfo=UTC)


@pytest.mark.parametrize(("header", "seconds"), [
    ("7", 7.0),
    (" 2 ", 2.0),
    ("0", 0.0),
    ("1.5", 1.5),
    ("Thu, 15 Jan 2026 10:30:12 GMT", 12.0),  # HTTP-date, 12 s after NOW
    ("Thu, 15 Jan 2026 10:30:00 -0000", 0.0),  # naive form of the same clock: now
    ("Thu, 15 Jan 2026 10:29:00 GMT", 0.0),  # already past: go now, never a negative wait
    ("-3", None),
    ("soon", None),
    ("", None),
    (None, None),
])
def test_retry_after_reads_both_forms(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, now=NOW) == seconds


async def test_429_is_retried_after_the_seconds_the_server_asked_for() -> None:
    sleeps = Sleeps()
    with respx.mock:
        route = respx.post(RECALL_URL).mock(side_effect=[busy(429, "3"), busy(429, "1"),
                                                         httpx.Response(200, json=RECALLED)])
        async with make(sleeps) as client:
            found = await client.recall(BANK, "Where does Ada live?")
    assert [m.text for m in found] == ["Ada lives in Seoul"]
    assert route.call_count == 3
    assert sleeps.delays == [3.0, 1.0]  # the server's figures, not the 0.25 s backoff


async def test_503_with_an_http_date_waits_until_that_date() -> None:
    sleeps = Sleeps()
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=20), usegmt=True)
    with respx.mock:
        route = respx.post(RECALL_URL).mock(side_effect=[busy(503, when), httpx.Response(200, json=RECALLED)])
        async with make(sleeps) as client:
            await client.recall(BANK, "q")
    assert route.call_count == 2
    [delay] = sleeps.delays
    # HTTP-dates have whole seconds: the wait is the rest of those 20 s, measured when the answer came.
    assert 18.0 < delay <= 20.0, delay


async def test_a_retry_after_in_the_past_retries_at_once() -> None:
    sleeps = Sleeps()
    with respx.mock:
        respx.post(RECALL_URL).mock(side_effect=[busy(503, "Thu, 01 Jan 2015 00:00:00 GMT"),
                                                 httpx.Response(200, json=RECALLED)])
        async with make(sleeps) as client:
            await client.recall(BANK, "q")
    assert sleeps.delays == [0.0]


async def test_without_a_usable_retry_after_the_backoff_applies() -> None:
    sleeps = Sleeps()
    with respx.mock:
        respx.post(RECALL_URL).mock(side_effect=[busy(503), busy(429, "later, please"),
                                                 httpx.Response(200, json=RECALLED)])
        async with make(sleeps) as client:
            await client.recall(BANK, "q")
    assert sleeps.delays == [0.25, 0.5]


@pytest.mark.parametrize("header", ["120", format_datetime(datetime.now(UTC) + timedelta(hours=1), usegmt=True)])
async def test_a_retry_after_beyond_the_cap_fails_at_once_with_the_servers_figure(header: str) -> None:
    """Neither retrying sooner than asked nor blocking past the cap: the caller gets the figure."""
    sleeps = Sleeps()
    settings = HindsightClientSettings(retry_after_max=30)
    with respx.mock:
        route = respx.post(RECALL_URL).mock(return_value=busy(503, header))
        async with make(sleeps, settings=settings) as client:
            with pytest.raises(HindsightBusyError) as failure:
                await client.recall(BANK, "q")
    assert route.call_count == 1
    assert sleeps.delays == []
    error = failure.value
    assert (error.status, error.attempts) == (503, 1)
    assert error.retry_after is not None
    assert error.retry_after > 30
    assert isinstance(error, HindsightUnavailableError)  # callers catching "unavailable" catch this too


async def test_busy_retries_are_bounded() -> None:
    sleeps = Sleeps()
    with respx.mock:
        route = respx.post(RECALL_URL).mock(return_value=busy(429, "2"))
        async with make(sleeps, max_retries=2) as client:
            with pytest.raises(HindsightBusyError) as failure:
                await client.recall(BANK, "q")
    assert route.call_count == 3
    assert sleeps.delays == [2.0, 2.0]
    assert (failure.value.status, failure.value.attempts, failure.value.retry_after) == (429, 3, 2.0)
    assert "capacity" in failure.value.body


# --- which calls are repeated --------------------------------------------------------------------


IDEMPOTENT: list[tuple[str, str, str, Callable[[hc.HindsightClient], Awaitable[Any]], Any]] = [
    ("recall", "POST", f"{BANK_URL}/memories/recall", lambda c: c.recall(BANK, "q"), RECALLED),
    ("reflect", "POST", f"{BANK_URL}/reflect", lambda c: c.reflect(BANK, "q"), {"text": "Seoul"}),
    ("create_or_update_bank", "PUT", BANK_URL, lambda c: c.create_or_update_bank(BANK, name="Ada"),
     {"bank_id": BANK, "name": "Ada", "mission": ""}),
    ("delete_bank", "DELETE", BANK_URL, lambda c: c.delete_bank(BANK), {"success": True}),
    ("get_bank_config", "GET", f"{BANK_URL}/config", lambda c: c.get_bank_config(BANK), CONFIG),
    ("update_bank_config", "PATCH", f"{BANK_URL}/config",
     lambda c: c.update_bank_config(BANK, {"retain_extraction_mode": "verbose"}), CONFIG),
    ("reset_bank_config", "DELETE", f"{BANK_URL}/config", lambda c: c.reset_bank_config(BANK), CONFIG),
    ("list_memories", "GET", f"{BANK_URL}/memories/list", lambda c: c.list_memories(BANK),
     {"items": [], "total": 0, "limit": 100, "offset": 0}),
    ("list_documents", "GET", f"{BANK_URL}/documents", lambda c: c.list_documents(BANK),
     {"items": [], "total": 0, "limit": 100, "offset": 0}),
    ("delete_document", "DELETE", f"{BANK_URL}/documents/doc-1", lambda c: c.delete_document(BANK, "doc-1"),
     {"success": True, "document_id": "doc-1", "memory_units_deleted": 2, "message": "deleted"}),
    ("get_operation", "GET", f"{BANK_URL}/operations/{OP}", lambda c: c.get_operation(BANK, OP),
     {"operation_id": OP, "status": "completed"}),
    ("async retain with operation_id", "POST", RETAIN_URL,
     lambda c: c.retain(BANK, "Ada lives in Seoul", run_async=True, operation_id=OP), QUEUED),
]


@pytest.mark.parametrize(("name", "method", "url", "call", "answer"), IDEMPOTENT, ids=[i[0] for i in IDEMPOTENT])
async def test_idempotent_calls_are_retried_on_busy_5xx_and_timeouts(
        name: str, method: str, url: str, call: Callable[[hc.HindsightClient], Awaitable[Any]], answer: Any) -> None:
    sleeps = Sleeps()
    with respx.mock:
        route = respx.route(method=method, url__regex=rf"^{url}(\?.*)?$").mock(side_effect=[
            busy(503, "2"), httpx.ReadTimeout("slow"), httpx.Response(502), busy(429, "1"),
            httpx.Response(200, json=answer)])
        async with make(sleeps, max_retries=4) as client:
            await call(client)
    assert route.call_count == 5
    assert sleeps.delays == [2.0, 0.5, 1.0, 1.0]  # Retry-After, backoff, backoff (capped), Retry-After
    bodies = {call.request.content for call in route.calls}
    assert len(bodies) == 1, "a retry must repeat the same request"


@pytest.mark.parametrize("answer", [
    busy(503, "1"), busy(429, "1"), httpx.Response(500), httpx.Response(502), httpx.Response(504),
    httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("connection closed mid-answer"),
], ids=["503", "429", "500", "502", "504", "read-timeout", "closed"])
@pytest.mark.parametrize("run_async", [False, True], ids=["sync", "async-without-id"])
async def test_a_retain_that_may_have_landed_is_never_retried(answer: httpx.Response | Exception,
                                                              run_async: bool) -> None:
    """Sent, outcome unknown: a repeat could store the memory twice, so the caller decides."""
    sleeps = Sleeps()
    with respx.mock:
        route = respx.post(RETAIN_URL).mock(side_effect=[answer, httpx.Response(200, json=RETAINED)])
        async with make(sleeps) as client:
            with pytest.raises(HindsightUnavailableError) as failure:
                await client.retain(BANK, "Ada lives in Seoul", run_async=run_async)
    assert route.call_count == 1
    assert sleeps.delays == []
    assert failure.value.attempts == 1
    if isinstance(answer, httpx.Response):
        assert failure.value.status == answer.status_code
        assert isinstance(failure.value, HindsightBusyError) == (answer.status_code in (429, 503))


async def test_a_retain_that_never_left_is_retried() -> None:
    sleeps = Sleeps()
    with respx.mock:
        route = respx.post(RETAIN_URL).mock(side_effect=[
            httpx.ConnectError("refused"), httpx.ConnectTimeout("no SYN-ACK"), httpx.PoolTimeout("pool full"),
            httpx.Response(200, json=RETAINED)])
        async with make(sleeps) as client:
            assert (await client.retain(BANK, "Ada lives in Seoul")).success
    assert route.call_count == 4
    assert sleeps.delays == [0.25, 0.5, 1.0]


async def test_an_async_retain_with_operation_id_is_retried_with_the_same_id() -> None:
    """Hindsight answers a repeated operation_id with the original operation: the retry adds nothing."""
    sleeps = Sleeps()
    with respx.mock:
        route = respx.post(RETAIN_URL).mock(side_effect=[
            httpx.ReadTimeout("ack lost"), busy(503, "4"), httpx.Response(200, json=QUEUED)])
        async with make(sleeps) as client:
            result = await client.retain(BANK, "Ada lives in Seoul", run_async=True, operation_id=uuid.UUID(OP))
    assert (result.is_async, result.operation_id) == (True, OP)
    assert route.call_count == 3
    assert sleeps.delays == [0.25, 4.0]
    sent = [json.loads(call.request.content) for call in route.calls]
    assert {(body["operation_id"], body["async"]) for body in sent} == {(OP, True)}


async def test_a_409_for_a_reused_operation_id_is_not_retried() -> None:
    sleeps = Sleeps()
    with respx.mock:
        route = respx.post(RETAIN_URL).respond(409, json={"detail": f"operation_id {OP} is already in use"})
        async with make(sleeps) as client:
            with pytest.raises(HindsightRequestError) as failure:
                await client.retain(BANK, "x", run_async=True, operation_id=OP)
    assert route.call_count == 1
    assert failure.value.status == 409
    assert "already in use" in failure.value.body


# --- timeouts ------------------------------------------------------------------------------------


def test_every_wait_has_a_bounded_default() -> None:
    settings = HindsightClientSettings()
    timeout = settings.timeout
    assert None not in (timeout.connect, timeout.read, timeout.write, timeout.pool)
    assert settings.max_retries >= 0
    assert 0 < settings.retry_after_max < float("inf")


async def test_the_client_uses_its_settings_timeouts() -> None:
    settings = HindsightClientSettings(connect_timeout=1.5, read_timeout=7, write_timeout=8, pool_timeout=2)
    async with hc.HindsightClient(BASE, settings=settings, timeout=9) as client:
        # The keyword overrides reading and writing; the rest comes from settings.
        assert client._http.timeout == httpx.Timeout(connect=1.5, read=9, write=9, pool=2)
        assert client.settings.read_timeout == 9


@pytest.mark.parametrize(("values", "field"), [
    ({"read_timeout": 0}, "read_timeout"),
    ({"pool_timeout": -1}, "pool_timeout"),
    ({"retry_after_max": -1}, "retry_after_max"),
    ({"max_retries": -1}, "max_retries"),
    ({"read_timout": 5}, "read_timout"),
])
def test_bad_settings_are_a_config_error_naming_the_field(values: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as failure:
        HindsightClientSettings(**values)
    assert failure.value.field == field


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A loopback port that accepts connections and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


async def test_a_server_that_never_answers_is_cut_off_by_the_read_timeout(silent_server: str) -> None:
    """No mock: the kernel completes the handshake, nothing ever answers; the read timeout ends it."""
    sleeps = Sleeps()
    settings = HindsightClientSettings(read_timeout=0.2, max_retries=1)
    async with hc.HindsightClient(silent_server, settings=settings, sleep=sleeps) as client:
        with pytest.raises(HindsightUnavailableError, match="ReadTimeout") as failure:
            await client.list_documents(BANK)
    assert failure.value.attempts == 2
    assert sleeps.delays == [0.25]
