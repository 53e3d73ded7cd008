"""When the Hindsight client tries a request again, and how long it waits first.

The rule (what is safe to repeat):

- a request that never left (connection refused, connect timeout, no free pooled connection)
  is retried whatever it is: the server cannot have acted on it;
- an **idempotent** call (every GET, recall, reflect, and the PUT/PATCH/DELETE routes the
  client uses, which set state rather than add to it) is also retried after it was sent: on a
  read timeout or a broken connection, on 5xx, and on 429;
- a **retain** (``POST …/memories``) that was sent is never retried: it adds memories, and a
  timeout or 5xx does not say whether it did. Even Hindsight's own 503 may follow a partial write
  (a synchronous retain commits each strategy group in turn and answers 503 when the store sheds
  a later one). The exception is an async retain carrying the caller's ``operation_id``: the server
  keys the submission by that id and answers a repeat with the original operation, adding nothing.

Waits: ``Retry-After`` (delta-seconds or HTTP-date) when the answer carries one, otherwise
exponential backoff. A server asking for more than ``retry_after_max`` seconds is not retried:
the caller gets :class:`~jedisos_db.runtime.errors.HindsightBusyError` with the wait
the server asked for, rather than a client that retries sooner than asked or blocks longer than
it allows.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from tenacity import RetryCallState
from tenacity.wait import wait_base

from jedisos_db.runtime.config import MAX_WAIT_S
from jedisos_db.runtime.errors import ConfigError


class HindsightClientSettings(BaseModel):
    """How long each wait of :class:`~jedisos_db.runtime.hindsight.client.HindsightClient` may last,
    and how often it tries again. Every field has a default; a bad value (a wait not above 0, or over a
    day, ``config.MAX_WAIT_S``) is a ``ConfigError`` naming it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    connect_timeout: float = Field(default=5.0, gt=0, le=MAX_WAIT_S)
    """Seconds to open a TCP connection."""
    read_timeout: float = Field(default=60.0, gt=0, le=MAX_WAIT_S)
    """Seconds between two bytes of the answer (a synchronous retain runs the LLM before answering)."""
    write_timeout: float = Field(default=60.0, gt=0, le=MAX_WAIT_S)
    """Seconds to send the request."""
    pool_timeout: float = Field(default=10.0, gt=0, le=MAX_WAIT_S)
    """Seconds to wait for a free connection of the client's own pool."""
    max_retries: int = Field(default=3, ge=0)
    """Attempts after the first."""
    backoff: float = Field(default=0.25, ge=0)
    """First wait without ``Retry-After``; doubles per retry."""
    backoff_max: float = Field(default=5.0, ge=0, le=MAX_WAIT_S)
    """Longest wait without ``Retry-After``."""
    retry_after_max: float = Field(default=30.0, ge=0, le=MAX_WAIT_S)
    """Longest ``Retry-After`` the client honours; beyond it the call fails at once with the server's figure."""

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            problem = exc.errors()[0]
            raise ConfigError(".".join(str(p) for p in problem["loc"]) or "settings", problem["msg"]) from None

    @property
    def timeout(self) -> httpx.Timeout:
        return httpx.Timeout(connect=self.connect_timeout, read=self.read_timeout, write=self.write_timeout,
                             pool=self.pool_timeout)


_DELTA_SECONDS = re.compile(r"^\d+(\.\d+)?$")


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds (``"120"``) or an HTTP-date
    (``"Wed, 21 Oct 2015 07:28:00 GMT"``, counted from ``now``). A date already past is 0; a
    missing or unreadable value is None (the caller falls back to its own backoff)."""
    if value is None:
        return None
    value = value.strip()
    if _DELTA_SECONDS.fullmatch(value):
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000" parses naive; an HTTP-date is always GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class _StatusAnswer(Exception):
    """A 5xx or 429 answer, raised inside the retry loop so tenacity can decide on it; it never leaves
    the client, which turns it into a typed error of :mod:`jedisos_db.runtime.errors`."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response
        self.retry_after = parse_retry_after(response.headers.get("Retry-After"))

    @property
    def busy(self) -> bool:
        """The server said it is at capacity: come back later, nothing is broken."""
        return self.response.status_code in (429, 503)


NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
"""Failures before the request left: always safe to retry."""


def should_retry(exc: BaseException, *, idempotent: bool, retry_after_max: float) -> bool:
    if isinstance(exc, NOT_SENT):
        return True
    if not idempotent:
        return False
    if isinstance(exc, _StatusAnswer):
        return exc.retry_after is None or exc.retry_after <= retry_after_max
    return isinstance(exc, httpx.TransportError)


class WaitRetryAfter(wait_base):
    """``Retry-After`` of the last answer when it has one, else ``fallback`` (exponential backoff)."""

    def __init__(self, fallback: Callable[[RetryCallState], float]) -> None:
        self.fallback = fallback

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        if isinstance(exc, _StatusAnswer) and exc.retry_after is not None:
            return exc.retry_after
        return self.fallback(retry_state)
