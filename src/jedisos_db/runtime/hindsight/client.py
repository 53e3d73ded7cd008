"""JediSOS's way into Hindsight: its REST API over ``httpx``, never SQL (design §2-3, [JS-B001]; claims
``S2-rest-api-only``, ``S2-retain-route``, ``S2-recall-route``, ``S2-entities-route`` in docs/design-claims.md).

Routes are the real server's (``fixtures/hindsight/openapi-<version>.json`` is the contract the
tests hold this module to). The design's ``recall()`` posts to ``…/reflect``; that route is
Hindsight's LLM-written answer, not recall. Recall is ``POST …/memories/recall``.

Behaviour on failure:

- connection errors and 5xx are retried a bounded number of times with exponential backoff;
  read timeouts only for requests that are safe to repeat (everything but ``retain``, which
  would store the memory twice);
- 4xx is never retried: 404 raises :class:`BankNotFoundError`, any other
  :class:`HindsightRequestError` with the status and an excerpt of the server's answer;
- a 2xx body missing a field the client reads raises :class:`HindsightContractError`.

The optional API key goes out as ``Authorization: Bearer <key>`` (what Hindsight's
``ApiKeyTenantExtension`` reads); it is held as a ``SecretStr`` and built into each request's
headers, so it never sits in the ``httpx`` client's defaults, a repr, or a log line.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import quote, unquote

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, wait_exponential

from jedisos_db.runtime.errors import (
    BankNotFoundError,
    ConfigError,
    HindsightContractError,
    HindsightRequestError,
    HindsightUnavailableError,
)

logger = logging.getLogger(__name__)

API_PREFIX = "/v1/default/banks"
BANK_PREFIX = "jedisos-"
_USER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,199}$")


def bank_id_for(user_id: str) -> str:
    """The memory bank of a JediSOS user: ``jedisos-{user_id}`` (claim ``S2-bank-per-user``).

    ``user_id`` must be 1-200 characters of letters, digits and ``._:@-``, starting with a
    letter or digit, so the bank id is one URL path segment and never collides across users.
    """
    if not isinstance(user_id, str) or not _USER_ID.fullmatch(user_id):
        raise ConfigError("user_id", "must be 1-200 characters of letters, digits and ._:@- "
                                     f"starting with a letter or digit; got {user_id!r}")
    return BANK_PREFIX + user_id


# --- what the client reads from Hindsight's answers --------------------------------------------
# Each model names exactly the fields the client reads; the contract test checks every one of
# them exists in the recorded response schema, so a renamed field fails there first.


class _Read(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class Bank(_Read):
    """``BankProfileResponse`` of ``PUT /v1/default/banks/{bank_id}``."""

    bank_id: str
    name: str
    mission: str
    background: str | None = None
    disposition: dict[str, int] = Field(default_factory=dict)


class RetainResult(_Read):
    """``RetainResponse`` of ``POST …/memories``."""

    success: bool
    bank_id: str
    items_count: int
    is_async: bool = Field(alias="async")
    operation_id: str | None = None


class Memory(_Read):
    """One ``RecallResult`` of ``POST …/memories/recall``."""

    id: str
    text: str
    type: str | None = None
    context: str | None = None
    entities: list[str] | None = None
    document_id: str | None = None
    mentioned_at: str | None = None
    tags: list[str] | None = None
    metadata: dict[str, Any] | None = None


class RecallResult(_Read):
    """``RecallResponse``: the memories found, best first."""

    results: list[Memory]


class Reflection(_Read):
    """``ReflectResponse`` of ``POST …/reflect``: an answer written by Hindsight's LLM."""

    text: str
    based_on: dict[str, Any] | None = None


class Entity(_Read):
    """One ``EntityListItem`` of ``GET …/entities``."""

    id: str
    canonical_name: str
    mention_count: int
    first_seen: str | None = None
    last_seen: str | None = None


class MemoryUnit(_Read):
    """One ``MemoryUnitListItem`` of ``GET …/memories/list``."""

    id: str
    text: str | None = None
    fact_type: str | None = None
    context: str | None = None
    document_id: str | None = None
    entities: str | None = None  # Hindsight lists them as one comma-separated string here
    mentioned_at: str | None = None
    tags: list[str] | None = None


class DeleteResult(_Read):
    """``DeleteResponse`` of ``DELETE /v1/default/banks/{bank_id}``."""

    success: bool
    message: str | None = None
    deleted_count: int | None = None


T = TypeVar("T", bound=_Read)


class Page(_Read, Generic[T]):
    """One page of a paginated list (``EntityListResponse``, ``ListMemoryUnitsResponse``)."""

    items: list[T]
    total: int
    limit: int
    offset: int


Budget = Literal["low", "mid", "high"]
Sleep = Callable[[float], Awaitable[None]]
_R = TypeVar("_R", bound=BaseModel)


class _ServerStatus(Exception):
    """A 5xx answer, raised inside the retry loop so tenacity can retry it."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
"""Failures before the request left: always safe to retry."""


def _retryable(exc: BaseException, *, idempotent: bool) -> bool:
    if isinstance(exc, (_ServerStatus, *_NOT_SENT)):
        return True
    return idempotent and isinstance(exc, httpx.TransportError)


class HindsightClient:
    """Async client for one Hindsight server.

    ``async with HindsightClient("http://hindsight:8888") as hs: await hs.recall(bank, "query")``.
    ``max_retries`` extra attempts follow the first, waiting ``backoff``, ``2*backoff``, ...
    (capped at ``backoff_max``) seconds. ``transport`` and ``sleep`` exist for tests.
    """

    def __init__(self, base_url: str, *, api_key: str | SecretStr | None = None, timeout: float = 60.0,
                 connect_timeout: float = 5.0, max_retries: int = 3, backoff: float = 0.25,
                 backoff_max: float = 5.0, transport: httpx.AsyncBaseTransport | None = None,
                 sleep: Sleep | None = None) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError("base_url", f"must be an http:// or https:// URL; got {base_url!r}")
        if max_retries < 0:
            raise ConfigError("max_retries", f"must be >= 0; got {max_retries}")
        if timeout <= 0 or connect_timeout <= 0:
            raise ConfigError("timeout", "must be positive")
        self.base_url = base_url.rstrip("/")
        self.max_retries = max_retries
        self.backoff = backoff
        self.backoff_max = backoff_max
        self._api_key = SecretStr(api_key) if isinstance(api_key, str) else api_key
        self._sleep: Sleep = sleep or asyncio.sleep
        self._http = httpx.AsyncClient(base_url=self.base_url, transport=transport,
                                       timeout=httpx.Timeout(timeout, connect=connect_timeout))

    def __repr__(self) -> str:
        auth = "api_key=<set>" if self._api_key is not None else "no auth"
        return f"HindsightClient({self.base_url!r}, {auth}, max_retries={self.max_retries})"

    async def __aenter__(self) -> HindsightClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # --- the API -------------------------------------------------------------------------------

    async def create_or_update_bank(self, bank_id: str, *, name: str | None = None, mission: str | None = None,
                                    background: str | None = None,
                                    settings: Mapping[str, Any] | None = None) -> Bank:
        """``PUT /v1/default/banks/{bank_id}``: create the bank, or update the fields given."""
        body: dict[str, Any] = {k: v for k, v in
                                {"name": name, "mission": mission, "background": background}.items() if v is not None}
        body.update(settings or {})
        return await self._call("PUT", self._bank_path(bank_id), Bank, json=body)

    async def retain(self, bank_id: str, content: str | Sequence[str], *, context: str | None = None,
                     tags: Sequence[str] | None = None, metadata: Mapping[str, str] | None = None,
                     document_id: str | None = None, run_async: bool = False) -> RetainResult:
        """``POST …/memories``: store one or more texts. Retaining into an unknown bank creates it."""
        texts = [content] if isinstance(content, str) else list(content)
        if not texts or any(not isinstance(t, str) or not t.strip() for t in texts):
            raise ConfigError("content", "must be one or more non-empty strings")
        extra: dict[str, Any] = {k: v for k, v in {
            "context": context, "tags": list(tags) if tags is not None else None,
            "metadata": dict(metadata) if metadata is not None else None, "document_id": document_id,
        }.items() if v is not None}
        body = {"items": [{"content": t, **extra} for t in texts], "async": run_async}
        # Not idempotent: a retry after the request was sent could store the memory twice.
        return await self._call("POST", self._bank_path(bank_id, "memories"), RetainResult, json=body,
                                idempotent=False)

    async def recall(self, bank_id: str, query: str, *, max_tokens: int | None = None, budget: Budget | None = None,
                     types: Sequence[str] | None = None, tags: Sequence[str] | None = None) -> list[Memory]:
        """``POST …/memories/recall`` (not ``…/reflect``, claim ``S2-recall-route``): memories matching ``query``."""
        body = self._query_body(query, max_tokens=max_tokens, budget=budget,
                                types=list(types) if types is not None else None,
                                tags=list(tags) if tags is not None else None)
        found = await self._call("POST", self._bank_path(bank_id, "memories", "recall"), RecallResult, json=body)
        return found.results

    async def reflect(self, bank_id: str, query: str, *, context: str | None = None, max_tokens: int | None = None,
                      budget: Budget | None = None) -> Reflection:
        """``POST …/reflect``: an answer Hindsight's LLM writes from the bank's memories."""
        body = self._query_body(query, context=context, max_tokens=max_tokens, budget=budget)
        return await self._call("POST", self._bank_path(bank_id, "reflect"), Reflection, json=body)

    async def list_entities(self, bank_id: str, *, limit: int = 100, offset: int = 0) -> Page[Entity]:
        """``GET …/entities``: one page."""
        return await self._call("GET", self._bank_path(bank_id, "entities"), Page[Entity],
                                params=self._page_params(limit, offset))

    async def list_memories(self, bank_id: str, *, limit: int = 100, offset: int = 0,
                            fact_type: str | None = None, q: str | None = None) -> Page[MemoryUnit]:
        """``GET …/memories/list``: one page, optionally filtered by fact type or a text query."""
        params = self._page_params(limit, offset)
        params.update({k: v for k, v in {"type": fact_type, "q": q}.items() if v is not None})
        return await self._call("GET", self._bank_path(bank_id, "memories", "list"), Page[MemoryUnit], params=params)

    async def iter_entities(self, bank_id: str, *, page_size: int = 100) -> AsyncIterator[Entity]:
        """Every entity of the bank, fetching page after page."""
        async for entity in self._paginate(self.list_entities, bank_id, page_size):
            yield entity

    async def iter_memories(self, bank_id: str, *, page_size: int = 100) -> AsyncIterator[MemoryUnit]:
        """Every memory unit of the bank, fetching page after page."""
        async for unit in self._paginate(self.list_memories, bank_id, page_size):
            yield unit

    async def delete_bank(self, bank_id: str) -> DeleteResult:
        """``DELETE /v1/default/banks/{bank_id}``: the bank and everything in it."""
        return await self._call("DELETE", self._bank_path(bank_id), DeleteResult)

    # --- plumbing ------------------------------------------------------------------------------

    @staticmethod
    def _bank_path(bank_id: str, *parts: str) -> str:
        if not isinstance(bank_id, str) or not bank_id.strip():
            raise ConfigError("bank_id", "is empty; use bank_id_for(user_id)")
        return "/".join([API_PREFIX, quote(bank_id, safe=""), *parts])

    @staticmethod
    def _query_body(query: str, **optional: Any) -> dict[str, Any]:
        if not isinstance(query, str) or not query.strip():
            raise ConfigError("query", "must be a non-empty string")
        return {"query": query, **{k: v for k, v in optional.items() if v is not None}}

    @staticmethod
    def _page_params(limit: int, offset: int) -> dict[str, Any]:
        if limit < 1:
            raise ConfigError("limit", f"must be >= 1; got {limit}")
        if offset < 0:
            raise ConfigError("offset", f"must be >= 0; got {offset}")
        return {"limit": limit, "offset": offset}

    @staticmethod
    async def _paginate(fetch: Callable[..., Awaitable[Page[T]]], bank_id: str,
                        page_size: int) -> AsyncIterator[T]:
        offset = 0
        while True:
            page = await fetch(bank_id, limit=page_size, offset=offset)
            for item in page.items:
                yield item
            offset += len(page.items)
            # An empty page ends it too: a bank shrinking while we page must not loop forever.
            if not page.items or offset >= page.total:
                return

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self._api_key is not None:
            headers["Authorization"] = f"Bearer {self._api_key.get_secret_value()}"
        return headers

    def _log_retry(self, state: RetryCallState, method: str, path: str) -> None:
        exc = state.outcome.exception() if state.outcome else None
        reason = f"HTTP {exc.response.status_code}" if isinstance(exc, _ServerStatus) else type(exc).__name__
        wait = state.next_action.sleep if state.next_action else 0.0
        logger.warning("Hindsight %s %s: %s; retry %d/%d in %.2f s", method, path, reason,
                       state.attempt_number, self.max_retries, wait)

    async def _send(self, method: str, path: str, params: Mapping[str, Any] | None,
                    json: Any) -> httpx.Response:
        response = await self._http.request(method, path, params=params, json=json, headers=self._headers())
        if response.status_code >= 500:
            raise _ServerStatus(response)
        return response

    async def _call(self, method: str, path: str, model: type[_R], *, params: Mapping[str, Any] | None = None,
                    json: Any = None, idempotent: bool = True) -> _R:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.max_retries + 1),
            wait=wait_exponential(multiplier=self.backoff, max=self.backoff_max),
            retry=retry_if_exception(lambda exc: _retryable(exc, idempotent=idempotent)),
            sleep=self._sleep,
            before_sleep=lambda state: self._log_retry(state, method, path),
            reraise=True,
        )
        attempts = 0
        try:
            async for attempt in retrying:
                with attempt:
                    attempts = attempt.retry_state.attempt_number
                    response = await self._send(method, path, params, json)
        except _ServerStatus as exc:
            raise HindsightUnavailableError(method, path, "server error", attempts=attempts,
                                            status=exc.response.status_code, body=exc.response.text) from None
        except httpx.TransportError as exc:
            raise HindsightUnavailableError(method, path, f"{type(exc).__name__}: {exc or 'no detail'}",
                                            attempts=attempts) from None
        if response.status_code == 404:
            bank = unquote(path.removeprefix(API_PREFIX + "/").split("/", 1)[0])
            raise BankNotFoundError(method, path, 404, response.text, bank_id=bank)
        if response.status_code >= 400:
            raise HindsightRequestError(method, path, response.status_code, response.text)
        try:
            return model.model_validate(response.json())
        except (ValidationError, ValueError) as exc:
            raise HindsightContractError(
                f"Hindsight {method} {path} -> HTTP {response.status_code}, but the body does not carry what "
                f"the client reads ({model.__name__}): {exc}"
            ) from None
