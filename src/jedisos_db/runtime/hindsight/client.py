"""JediSOS's way into Hindsight: its REST API over ``httpx``, never SQL (design §2-3, [JS-B001]; claims
``S2-rest-api-only``, ``S2-retain-route``, ``S2-recall-route``, ``S2-entities-route`` in docs/design-claims.md).

Routes are the real server's (``fixtures/hindsight/openapi-<version>.json`` is the contract the
tests hold this module to). The design's ``recall()`` posts to ``…/reflect``; that route is
Hindsight's LLM-written answer, not recall. Recall is ``POST …/memories/recall``.
``docs/hindsight-client-parity.md`` maps each method to the official ``hindsight-client``'s.

Behaviour on failure:

- what is retried, and how long the client waits, is :mod:`jedisos_db.runtime.hindsight.retry`'s
  rule: requests that never left always; idempotent calls also after 5xx, 429 and timeouts,
  honouring ``Retry-After``; a sent retain never, unless it is async with an ``operation_id``;
- every wait is bounded (:class:`HindsightClientSettings`: connect, read, write and pool
  timeouts, retries, the longest ``Retry-After`` honoured); a server that cannot be reached or
  keeps failing raises :class:`HindsightUnavailableError`, one at capacity (429/503) its
  subclass :class:`HindsightBusyError` with the wait it asked for;
- 4xx is never retried: 404 raises :class:`BankNotFoundError` (or :class:`DocumentNotFoundError`
  on a document route), any other :class:`HindsightRequestError` with the status and an excerpt
  of the server's answer;
- a 2xx body missing a field the client reads raises :class:`HindsightContractError`.

The optional API key goes out as ``Authorization: Bearer <key>`` (what Hindsight's
``ApiKeyTenantExtension`` reads); it is held as a ``SecretStr`` and built into each request's
headers, so it never sits in the ``httpx`` client's defaults, a repr, or a log line.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar, Unpack
from urllib.parse import quote, unquote

import httpx
from pydantic import BaseModel, SecretStr, ValidationError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, wait_exponential

from jedisos_db.runtime.errors import (
    BankNotFoundError,
    ConfigError,
    DocumentNotFoundError,
    HindsightBusyError,
    HindsightContractError,
    HindsightRequestError,
    HindsightUnavailableError,
    InvalidInputError,
    OperationTimeoutError,
)
from jedisos_db.runtime.hindsight.models import (
    Bank,
    BankConfig,
    Budget,
    DeleteResult,
    Document,
    DocumentDeleteResult,
    DocumentDetail,
    DocumentFilters,
    DocumentTimeField,
    Entity,
    EntityRef,
    Memory,
    MemoryFilters,
    MemoryUnit,
    Operation,
    Page,
    RecallOptions,
    RecallResult,
    Reflection,
    RetainItem,
    RetainResult,
    UpdateMode,
    checked,
    operation_uuid,
    positive,
    strings,
    text,
)
from jedisos_db.runtime.hindsight.retry import (
    HindsightClientSettings,
    WaitRetryAfter,
    _StatusAnswer,
    should_retry,
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
        raise InvalidInputError("user_id", "must be 1-200 characters of letters, digits and ._:@- "
                                     f"starting with a letter or digit; got {user_id!r}")
    return BANK_PREFIX + user_id


Sleep = Callable[[float], Awaitable[None]]
_R = TypeVar("_R", bound=BaseModel)
_T = TypeVar("_T", bound=BaseModel)

# The constructor's legacy keyword -> the setting it overrides (``timeout`` covers reading and writing).
_OVERRIDES = {"timeout": ("read_timeout", "write_timeout"), "connect_timeout": ("connect_timeout",),
              "max_retries": ("max_retries",), "backoff": ("backoff",), "backoff_max": ("backoff_max",)}


class HindsightClient:
    """Async client for one Hindsight server.

    ``async with HindsightClient("http://hindsight:8888") as hs: await hs.recall(bank, "query")``.
    ``settings`` bounds every wait (:class:`HindsightClientSettings`); the keywords ``timeout``
    (read and write), ``connect_timeout``, ``max_retries``, ``backoff`` and ``backoff_max``
    override single settings. ``transport`` and ``sleep`` exist for tests.
    """

    def __init__(self, base_url: str, *, api_key: str | SecretStr | None = None,
                 settings: HindsightClientSettings | None = None, timeout: float | None = None,
                 connect_timeout: float | None = None, max_retries: int | None = None, backoff: float | None = None,
                 backoff_max: float | None = None, transport: httpx.AsyncBaseTransport | None = None,
                 sleep: Sleep | None = None) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError("base_url", f"must be an http:// or https:// URL; got {base_url!r}")
        given = {"timeout": timeout, "connect_timeout": connect_timeout, "max_retries": max_retries,
                 "backoff": backoff, "backoff_max": backoff_max}
        self.settings = _with_overrides(settings or HindsightClientSettings(), given)
        self.base_url = base_url.rstrip("/")
        self._api_key = SecretStr(api_key) if isinstance(api_key, str) else api_key
        self._sleep: Sleep = sleep or asyncio.sleep
        self._http = httpx.AsyncClient(base_url=self.base_url, transport=transport, timeout=self.settings.timeout)

    @property
    def max_retries(self) -> int:
        return self.settings.max_retries

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

    # --- banks ---------------------------------------------------------------------------------

    async def create_or_update_bank(self, bank_id: str, *, name: str | None = None, mission: str | None = None,
                                    background: str | None = None,
                                    settings: Mapping[str, Any] | None = None) -> Bank:
        """``PUT /v1/default/banks/{bank_id}``: create the bank, or update the fields given."""
        body: dict[str, Any] = {k: v for k, v in
                                {"name": name, "mission": mission, "background": background}.items() if v is not None}
        body.update(settings or {})
        return await self._call("PUT", self._bank_path(bank_id), Bank, json=body)

    async def delete_bank(self, bank_id: str) -> DeleteResult:
        """``DELETE /v1/default/banks/{bank_id}``: the bank and everything in it (an unknown bank: 0 deleted)."""
        return await self._call("DELETE", self._bank_path(bank_id), DeleteResult)

    async def get_bank_config(self, bank_id: str) -> BankConfig:
        """``GET …/config``: the bank's resolved settings (global, then tenant, then bank) and its own overrides."""
        return await self._call("GET", self._bank_path(bank_id, "config"), BankConfig)

    async def update_bank_config(self, bank_id: str, updates: Mapping[str, Any]) -> BankConfig:
        """``PATCH …/config``: set these overrides (Python names such as ``retain_extraction_mode``, or
        ``HINDSIGHT_API_…`` names). Hindsight refuses unknown or non-overridable keys with 400.

        Retried like a read: setting the same overrides twice leaves the same state.
        """
        if not isinstance(updates, Mapping) or not updates:
            raise InvalidInputError("updates", "must be a non-empty mapping of setting names to values")
        for key in updates:
            text(key, "updates")
        return await self._call("PATCH", self._bank_path(bank_id, "config"), BankConfig,
                                json={"updates": dict(updates)})

    async def reset_bank_config(self, bank_id: str) -> BankConfig:
        """``DELETE …/config``: drop every bank-level override; the bank follows the server's settings again."""
        return await self._call("DELETE", self._bank_path(bank_id, "config"), BankConfig)

    # --- retain --------------------------------------------------------------------------------

    async def retain(self, bank_id: str, content: str | Sequence[str], *, context: str | None = None,
                     tags: Sequence[str] | None = None, metadata: Mapping[str, str] | None = None,
                     document_id: str | None = None, timestamp: datetime | str | None = None,
                     entities: Sequence[EntityRef | str] | None = None, update_mode: UpdateMode | None = None,
                     document_tags: Sequence[str] | None = None, run_async: bool = False,
                     operation_id: str | uuid.UUID | None = None) -> RetainResult:
        """``POST …/memories``: store one or more texts sharing the same fields (see :class:`RetainItem`).
        Retaining into an unknown bank creates it. See :meth:`retain_batch` for items with fields of
        their own, for ``document_tags``, ``run_async`` and ``operation_id``."""
        texts = [content] if isinstance(content, str) else list(content)
        items = [RetainItem(t, context=context, tags=tags, metadata=metadata, timestamp=timestamp,
                            document_id=document_id, entities=entities, update_mode=update_mode) for t in texts]
        return await self.retain_batch(bank_id, items, document_tags=document_tags, run_async=run_async,
                                       operation_id=operation_id)

    async def retain_batch(self, bank_id: str, items: Sequence[RetainItem | str], *,
                           document_tags: Sequence[str] | None = None, run_async: bool = False,
                           operation_id: str | uuid.UUID | None = None) -> RetainResult:
        """``POST …/memories``: store several memories in one request, each with its own context,
        tags, metadata, time, document and entities (:class:`RetainItem`; a plain string is content only).

        ``document_tags`` are added to every item's tags (Hindsight marks the field deprecated in
        favour of per-item tags). ``run_async=True`` returns as soon as Hindsight queued the work:
        read ``RetainResult.operation_id`` with :meth:`get_operation` / :meth:`wait_for_operation`.

        Retries. A retain that reached the server is not repeated on a timeout, 5xx or 429, since
        it may already have stored the memories (and a repeat would store them twice). It is,
        when ``run_async=True`` and ``operation_id`` is given: Hindsight records the async
        submission under that id, and a repeat with the same id in the same bank answers with the
        original operation and queues nothing. The id is the identity, not the content: reuse it
        only to repeat this very request (Hindsight does not compare the items; the same id in
        another bank is a 409). A synchronous retain ignores ``operation_id``, so passing one
        without ``run_async`` is refused here rather than silently unsafe.
        """
        body: dict[str, Any] = {"items": _item_bodies(items), "async": bool(run_async)}
        if document_tags is not None:
            body["document_tags"] = strings(document_tags, "document_tags")
        if operation_id is not None:
            if not run_async:
                raise InvalidInputError("operation_id", "only an async retain (run_async=True) is keyed by "
                                        "operation_id; Hindsight ignores it on a synchronous retain")
            body["operation_id"] = operation_uuid(operation_id)
        return await self._call("POST", self._bank_path(bank_id, "memories"), RetainResult, json=body,
                                idempotent="operation_id" in body)

    async def get_operation(self, bank_id: str, operation_id: str | uuid.UUID) -> Operation:
        """``GET …/operations/{operation_id}``: an async operation's state. An id Hindsight does not
        know (never submitted, or pruned after its retention window) has state ``not_found``."""
        return await self._call("GET", self._bank_path(bank_id, "operations", operation_uuid(operation_id)),
                                Operation)

    async def wait_for_operation(self, bank_id: str, operation_id: str | uuid.UUID, *, max_wait: float = 120.0,
                                 poll_interval: float = 0.5) -> Operation:
        """Poll :meth:`get_operation` until the operation finished (completed, failed, cancelled or
        not_found) and return it; :class:`OperationTimeoutError` when ``max_wait`` seconds pass first."""
        if max_wait < 0:
            raise InvalidInputError("max_wait", f"must be >= 0 seconds; got {max_wait}")
        if poll_interval <= 0:
            raise InvalidInputError("poll_interval", f"must be > 0 seconds; got {poll_interval}")
        started = time.monotonic()
        polls = 0
        while True:
            operation = await self.get_operation(bank_id, operation_id)
            polls += 1
            waited = time.monotonic() - started
            if operation.finished:
                return operation
            if waited >= max_wait:
                raise OperationTimeoutError("GET", self._bank_path(bank_id, "operations", operation.operation_id),
                                            attempts=polls, operation_id=operation.operation_id,
                                            state=operation.status, waited=waited)
            await self._sleep(min(poll_interval, max_wait - waited))

    # --- recall and reflect --------------------------------------------------------------------

    async def recall(self, bank_id: str, query: str, **options: Unpack[RecallOptions]) -> list[Memory]:
        """``POST …/memories/recall`` (not ``…/reflect`` as design §2-3 has it): memories matching
        ``query``, best first. Options: :class:`RecallOptions` (``tags`` with ``tags_match``: the
        default ``any`` also returns untagged memories, ``any_strict`` does not). Entities and chunks
        are not fetched; :meth:`recall_full` returns them."""
        return (await self.recall_full(bank_id, query, **options)).results

    async def recall_full(self, bank_id: str, query: str, *, include_entities: bool = False,
                          include_chunks: bool = False, entity_max_tokens: int | None = None,
                          chunk_max_tokens: int | None = None, **options: Unpack[RecallOptions]) -> RecallResult:
        """Recall, with the entities the memories mention (``include_entities``) and the raw chunks
        they were extracted from (``include_chunks``), each within its own token budget."""
        include: dict[str, Any] = {"entities": None, "chunks": None}  # null turns each off (entities default on)
        if include_entities:
            include["entities"] = _limit("entity_max_tokens", entity_max_tokens)
        if include_chunks:
            include["chunks"] = _limit("chunk_max_tokens", chunk_max_tokens)
        body = {**self._query_body(query, options), "include": include}
        return await self._call("POST", self._bank_path(bank_id, "memories", "recall"), RecallResult, json=body)

    async def reflect(self, bank_id: str, query: str, *, context: str | None = None, max_tokens: int | None = None,
                      budget: Budget | None = None) -> Reflection:
        """``POST …/reflect``: an answer Hindsight's LLM writes from the bank's memories."""
        body = self._query_body(query, {"max_tokens": max_tokens, "budget": budget})
        if context is not None:
            body["context"] = text(context, "context")
        return await self._call("POST", self._bank_path(bank_id, "reflect"), Reflection, json=body)

    # --- listing -------------------------------------------------------------------------------

    async def list_entities(self, bank_id: str, *, limit: int = 100, offset: int = 0) -> Page[Entity]:
        """``GET …/entities``: one page."""
        return await self._call("GET", self._bank_path(bank_id, "entities"), Page[Entity],
                                params=self._page_params(limit, offset))

    async def list_memories(self, bank_id: str, *, limit: int = 100, offset: int = 0,
                            **filters: Unpack[MemoryFilters]) -> Page[MemoryUnit]:
        """``GET …/memories/list``: one page, filtered by fact type, a text search ``q`` (a scan:
        for browsing, not for the hot path), document, entity, tags, state or a time window."""
        params = {**self._page_params(limit, offset), **checked(filters)}
        return await self._call("GET", self._bank_path(bank_id, "memories", "list"), Page[MemoryUnit], params=params)

    async def list_documents(self, bank_id: str, *, limit: int = 100, offset: int = 0,
                             **filters: Unpack[DocumentFilters]) -> Page[Document]:
        """``GET …/documents``: one page of the bank's documents, filtered by ``q`` (id or text), tags
        (Hindsight's default here is ``any_strict``) or a time window."""
        params = {**self._page_params(limit, offset), **checked(filters, time_fields=DocumentTimeField)}
        return await self._call("GET", self._bank_path(bank_id, "documents"), Page[Document], params=params)

    async def iter_entities(self, bank_id: str, *, page_size: int = 100) -> AsyncIterator[Entity]:
        """Every entity of the bank, fetching page after page."""
        async for entity in self._paginate(functools.partial(self.list_entities, bank_id), page_size):
            yield entity

    async def iter_memories(self, bank_id: str, *, page_size: int = 100,
                            **filters: Unpack[MemoryFilters]) -> AsyncIterator[MemoryUnit]:
        """Every memory unit of the bank matching ``filters``, fetching page after page."""
        async for unit in self._paginate(functools.partial(self.list_memories, bank_id, **filters), page_size):
            yield unit

    async def iter_documents(self, bank_id: str, *, page_size: int = 100,
                             **filters: Unpack[DocumentFilters]) -> AsyncIterator[Document]:
        """Every document of the bank matching ``filters``, fetching page after page."""
        async for document in self._paginate(functools.partial(self.list_documents, bank_id, **filters), page_size):
            yield document

    # --- documents -----------------------------------------------------------------------------

    async def get_document(self, bank_id: str, document_id: str) -> DocumentDetail:
        """``GET …/documents/{document_id}``: the stored text and how many memories came from it."""
        return await self._call("GET", self._document_path(bank_id, document_id), DocumentDetail)

    async def delete_document(self, bank_id: str, document_id: str) -> DocumentDeleteResult:
        """``DELETE …/documents/{document_id}``: the document and every memory extracted from it.

        Retried like a read (deleting twice leaves the same state); so a
        :class:`DocumentNotFoundError` from a call that was retried may mean an earlier attempt
        deleted it.
        """
        return await self._call("DELETE", self._document_path(bank_id, document_id), DocumentDeleteResult)

    # --- plumbing ------------------------------------------------------------------------------

    @staticmethod
    def _bank_path(bank_id: str, *parts: str) -> str:
        if not isinstance(bank_id, str) or not bank_id.strip():
            raise InvalidInputError("bank_id", "is empty; use bank_id_for(user_id)")
        return "/".join([API_PREFIX, quote(bank_id, safe=""), *parts])

    @classmethod
    def _document_path(cls, bank_id: str, document_id: str) -> str:
        return cls._bank_path(bank_id, "documents", quote(text(document_id, "document_id"), safe=""))

    @staticmethod
    def _query_body(query: str, options: Mapping[str, Any]) -> dict[str, Any]:
        return {"query": text(query, "query"), **checked(options)}

    @staticmethod
    def _page_params(limit: int, offset: int) -> dict[str, Any]:
        if limit < 1:
            raise InvalidInputError("limit", f"must be >= 1; got {limit}")
        if offset < 0:
            raise InvalidInputError("offset", f"must be >= 0; got {offset}")
        return {"limit": limit, "offset": offset}

    @staticmethod
    async def _paginate(fetch: Callable[..., Awaitable[Page[_T]]], page_size: int) -> AsyncIterator[_T]:
        offset = 0
        while True:
            page = await fetch(limit=page_size, offset=offset)
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
        reason = f"HTTP {exc.response.status_code}" if isinstance(exc, _StatusAnswer) else type(exc).__name__
        if isinstance(exc, _StatusAnswer) and exc.retry_after is not None:
            reason += f" (Retry-After {exc.retry_after:g} s)"
        wait = state.next_action.sleep if state.next_action else 0.0
        logger.warning("Hindsight %s %s: %s; retry %d/%d in %.2f s", method, path, reason,
                       state.attempt_number, self.max_retries, wait)

    async def _send(self, method: str, path: str, params: Mapping[str, Any] | None,
                    json: Any) -> httpx.Response:
        response = await self._http.request(method, path, params=params, json=json, headers=self._headers())
        if response.status_code >= 500 or response.status_code == 429:
            raise _StatusAnswer(response)
        return response

    async def _call(self, method: str, path: str, model: type[_R], *, params: Mapping[str, Any] | None = None,
                    json: Any = None, idempotent: bool = True) -> _R:
        settings = self.settings
        retrying = AsyncRetrying(
            stop=stop_after_attempt(settings.max_retries + 1),
            wait=WaitRetryAfter(wait_exponential(multiplier=settings.backoff, max=settings.backoff_max)),
            retry=retry_if_exception(functools.partial(should_retry, idempotent=idempotent,
                                                       retry_after_max=settings.retry_after_max)),
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
        except _StatusAnswer as exc:
            status, body = exc.response.status_code, exc.response.text
            if exc.busy:
                raise HindsightBusyError(method, path, attempts=attempts, status=status, body=body,
                                         retry_after=exc.retry_after) from None
            raise HindsightUnavailableError(method, path, "server error", attempts=attempts, status=status,
                                            body=body) from None
        except httpx.TransportError as exc:
            raise HindsightUnavailableError(method, path, f"{type(exc).__name__}: {exc or 'no detail'}",
                                            attempts=attempts) from None
        if response.status_code == 404:
            raise _not_found(method, path, response)
        if response.status_code >= 400:
            raise HindsightRequestError(method, path, response.status_code, response.text)
        try:
            return model.model_validate(response.json())
        except (ValidationError, ValueError) as exc:
            raise HindsightContractError(
                f"Hindsight {method} {path} -> HTTP {response.status_code}, but the body does not carry what "
                f"the client reads ({model.__name__}): {exc}"
            ) from None


def _with_overrides(settings: HindsightClientSettings, given: Mapping[str, Any]) -> HindsightClientSettings:
    """``settings`` with the constructor's keywords applied; a bad value names the keyword the caller used."""
    values = settings.model_dump()
    for keyword, value in given.items():
        if value is not None:
            values.update(dict.fromkeys(_OVERRIDES[keyword], value))
    try:
        return HindsightClientSettings(**values)
    except ConfigError as exc:
        keyword = next((k for k, fields in _OVERRIDES.items() if exc.field in fields and given[k] is not None),
                       exc.field)
        raise ConfigError(keyword, exc.rule) from None


def _item_bodies(items: Sequence[RetainItem | str]) -> list[dict[str, Any]]:
    if isinstance(items, str) or not isinstance(items, Sequence) or not items:
        raise InvalidInputError("items", "must be a non-empty list of RetainItem or strings")
    bodies = []
    for index, item in enumerate(items):
        try:
            bodies.append((item if isinstance(item, RetainItem) else RetainItem(item)).body())
        except InvalidInputError as exc:
            raise InvalidInputError(f"items[{index}].{exc.field}", exc.rule) from None
    return bodies


def _limit(name: str, max_tokens: int | None) -> dict[str, int]:
    """An ``include`` option: Hindsight's default token budget, or the caller's."""
    return {} if max_tokens is None else {"max_tokens": positive(max_tokens, name)}


def _not_found(method: str, path: str, response: httpx.Response) -> HindsightRequestError:
    """404 on a document's own route names the document (an unknown bank has no documents either); elsewhere
    the bank, which is what Hindsight's other 404s are about."""
    segments = [unquote(s) for s in path.removeprefix(API_PREFIX + "/").split("/")]
    if len(segments) >= 3 and segments[1] == "documents":
        return DocumentNotFoundError(method, path, 404, response.text, bank_id=segments[0], document_id=segments[2])
    return BankNotFoundError(method, path, 404, response.text, bank_id=segments[0])
