"""The batching event writer: per-event calls, ``COPY`` underneath (audit and cost events, issue 12).

``await writer.record(event)`` validates the event at once (an invalid one raises
:class:`InvalidInputError` to its caller and is never queued), then queues its row. A background
flusher writes the queue with the repository's ``COPY`` path (:meth:`EventRepository.write_rows`) in
batches of at most ``max_batch`` rows: as soon as it is free when a caller waits for a commit (group
commit: what arrives during one flush goes out in the next), otherwise when a batch is full or its first
row has waited ``max_delay`` seconds. Batches go out one at a time, in order; each is one statement,
all or nothing.

Durability is chosen per call:

- ``"commit"``: ``record`` returns once the batch holding the event is committed, or raises the typed
  error that batch failed with (:class:`DatabaseUnavailableError` for a connection fault, retryable),
  and only its own batch's callers see that error. A returned event survives any crash of the process
  or the server (as far as the server's own ``fsync``/``synchronous_commit`` settings promise). After an
  error, or a cancelled or timed-out wait, the event may or may not be written (the commit can be lost
  in flight): give it an ``idempotency_key`` and record it again to write it once.
- ``"enqueue"``: ``record`` (and the non-blocking :meth:`EventWriter.submit`) returns once the event is
  queued. **A crash of the process loses every queued event not yet committed**: at most
  ``max_pending`` events, in steady state about one batch (``max_batch`` events or ``max_delay``
  seconds of them, plus the batch in flight). A batch the database refuses (connection lost, server
  down) is dropped: its events are counted in :attr:`EventWriter.lost` and logged, and the next
  :meth:`~EventWriter.flush` or :meth:`~EventWriter.aclose` raises that batch's error. A server crash
  loses nothing committed; what it loses is the batch in flight, as above.

Memory is bounded: at most ``max_pending`` events are queued or in flight. Beyond that, ``record``
waits up to ``enqueue_timeout`` seconds for room, then raises :class:`BackpressureError` (nothing is
queued); ``submit`` raises it at once. Every wait has a timeout: room (``enqueue_timeout``), a commit
(``commit_timeout``), a flush or drain (``commit_timeout``); the COPY itself is bounded by the pool's
checkout timeout and the server's ``statement_timeout``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Generic, Literal, Self

from jedisos_db.runtime.errors import BackpressureError, DatabaseUnavailableError, InvalidInputError, LocalServerError
from jedisos_db.runtime.repositories.base import EventRepository, EventT, Row

log = logging.getLogger(__name__)

Durability = Literal["enqueue", "commit"]
DURABILITIES: tuple[Durability, ...] = ("enqueue", "commit")


@dataclass(slots=True)
class _Batch:
    """Rows written together; ``waiters`` are the commit-mode callers whose events are among them."""

    born: float
    rows: list[Row] = field(default_factory=list)
    waiters: list[asyncio.Future[None]] = field(default_factory=list)
    done: asyncio.Future[None] | None = None
    """Made when a flush waits for this batch: resolves (never fails) once the batch is written or dropped."""


class EventWriter(Generic[EventT]):
    """Per-event writes of one event table through a background ``COPY`` flusher (see the module doc).

    ``async with EventWriter(repo) as writer: await writer.record(event)``; leaving the block drains the
    queue. Counters: :attr:`written` (rows committed), :attr:`lost` (rows of failed batches).
    """

    def __init__(self, repository: EventRepository[Any, EventT], *, max_batch: int = 500, max_delay: float = 0.05,
                 max_pending: int = 10_000, enqueue_timeout: float = 5.0, commit_timeout: float = 60.0) -> None:
        if not 1 <= max_batch <= max_pending:
            raise InvalidInputError("max_batch", f"must be between 1 and max_pending ({max_pending}); got {max_batch}")
        for name, value in (("max_delay", max_delay), ("enqueue_timeout", enqueue_timeout),
                            ("commit_timeout", commit_timeout)):
            if not 0 <= value <= 3600:
                raise InvalidInputError(name, f"must be between 0 and 3600 seconds; got {value}")
        self._repository = repository
        self._event = repository.event
        self.max_batch = max_batch
        self.max_delay = max_delay
        self.max_pending = max_pending
        self.enqueue_timeout = enqueue_timeout
        self.commit_timeout = commit_timeout
        self._batches: collections.deque[_Batch] = collections.deque()
        self._pending = 0
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        self._closing = False
        self._urgent_through: _Batch | None = None
        self._inflight: _Batch | None = None
        self._failure: BaseException | None = None
        self.written = 0
        """Rows committed so far."""
        self.lost = 0
        """Rows of batches that failed (their commit-mode callers got the error; enqueue-mode ones only this)."""

    @property
    def pending(self) -> int:
        """Events queued or in flight, not yet committed."""
        return self._pending

    async def __aenter__(self) -> Self:
        self._start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    def _start(self) -> None:
        if self._closing:
            raise LocalServerError("the event writer is closed")
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._run(), name="jedisos-event-writer")

    def _row(self, event: EventT | Mapping[str, Any]) -> Row:
        return event.row if type(event) is self._event else self._event.coerce(event).row

    def _append(self, row: Row) -> _Batch:
        batches = self._batches
        if not batches or len(batches[-1].rows) >= self.max_batch:
            batches.append(_Batch(asyncio.get_running_loop().time()))
            self._wake.set()
        batch = batches[-1]
        batch.rows.append(row)
        self._pending += 1
        if len(batch.rows) >= self.max_batch:
            self._wake.set()
        return batch

    def submit(self, event: EventT | Mapping[str, Any]) -> None:
        """Queue ``event`` without waiting (enqueue durability); :class:`BackpressureError` when the queue is full."""
        row = self._row(event)
        self._start()
        if self._pending >= self.max_pending:
            raise BackpressureError(f"{self._pending} events are waiting to be written (max_pending="
                                    f"{self.max_pending}); the event was not queued")
        self._append(row)

    async def record(self, event: EventT | Mapping[str, Any], *, durability: Durability = "commit") -> None:
        """Queue ``event``; with ``durability="commit"`` return once it is committed (see the module doc)."""
        if durability not in DURABILITIES:
            raise InvalidInputError("durability", f"must be one of {', '.join(DURABILITIES)}; got {durability!r}")
        row = self._row(event)
        self._start()
        if self._pending >= self.max_pending:
            await self._wait_for_room()
        batch = self._append(row)
        if durability == "enqueue":
            return
        waiter = asyncio.get_running_loop().create_future()
        batch.waiters.append(waiter)
        self._wake.set()
        # shield: a caller giving up must not cancel the future the flusher resolves for the whole batch.
        try:
            await asyncio.wait_for(asyncio.shield(waiter), self.commit_timeout)
        except TimeoutError:
            raise DatabaseUnavailableError(f"event not confirmed within {self.commit_timeout} s; it may still be "
                                           "written (retry it with the same idempotency_key)") from None

    async def _wait_for_room(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.enqueue_timeout
        while self._pending >= self.max_pending:
            self._room.clear()
            try:
                await asyncio.wait_for(self._room.wait(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                raise BackpressureError(f"{self._pending} events still waiting to be written after "
                                        f"{self.enqueue_timeout} s (max_pending={self.max_pending}); "
                                        "the event was not queued") from None
            if self._closing:
                raise LocalServerError("the event writer is closed")

    async def flush(self) -> None:
        """Write everything queued so far; raises the error of a batch of enqueued events that failed since
        the last flush (commit-mode callers got theirs already)."""
        last = self._batches[-1] if self._batches else self._inflight
        if last is not None:
            if last.done is None:
                last.done = asyncio.get_running_loop().create_future()
            if self._batches:
                self._start()
                self._urgent_through = last
                self._wake.set()
            try:
                await asyncio.wait_for(asyncio.shield(last.done), self.commit_timeout)
            except TimeoutError:
                raise DatabaseUnavailableError(f"{self._pending} events not written within "
                                               f"{self.commit_timeout} s") from None
        failure, self._failure = self._failure, None
        if failure is not None:
            raise failure

    async def aclose(self) -> None:
        """Drain the queue, then stop the flusher; raises like :meth:`flush`. Later calls do nothing."""
        if self._closing:
            return
        try:
            await self.flush()
        finally:
            self._closing = True
            self._room.set()
            self._wake.set()
            if self._flusher is not None:
                flusher, self._flusher = self._flusher, None
                try:
                    await asyncio.wait_for(flusher, self.commit_timeout)
                except TimeoutError:  # wait_for cancelled it: what it still held is lost, and counted
                    self.lost += self._pending
                    raise DatabaseUnavailableError(f"{self._pending} events not written within "
                                                   f"{self.commit_timeout} s; the writer stopped") from None

    def _urgent(self, batch: _Batch) -> bool:
        return (len(batch.rows) >= self.max_batch or len(self._batches) > 1 or bool(batch.waiters)
                or self._urgent_through is not None or self._closing)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._batches:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = self._batches[0]
            if not self._urgent(batch):
                left = batch.born + self.max_delay - loop.time()
                if left > 0:
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), left)
                    continue
            self._batches.popleft()
            if self._urgent_through is batch:
                self._urgent_through = None
            await self._write(batch)

    async def _write(self, batch: _Batch) -> None:
        error: Exception | None = None
        self._inflight = batch
        try:
            await self._repository.write_rows(batch.rows)
        except Exception as exc:  # handed to the batch's callers; the flusher goes on with the next batch
            error = exc
        finally:
            self._inflight = None
        n = len(batch.rows)
        self._pending -= n
        if self._pending < self.max_pending:
            self._room.set()
        if error is None:
            self.written += n
        else:
            self.lost += n
            log.warning("event writer: a batch of %d %s rows was not written: %s", n,
                        self._repository.model.__tablename__, error)
            if n > len(batch.waiters):  # enqueue-mode events were in it: nobody else hears of the loss
                self._failure = self._failure or error
        for waiter in batch.waiters:
            if waiter.done():  # its caller gave up waiting
                continue
            if error is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(error)
                waiter.exception()  # retrieved: a caller that stopped waiting leaves no "never retrieved" log
        if batch.done is not None and not batch.done.done():
            batch.done.set_result(None)
