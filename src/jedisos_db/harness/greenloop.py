"""One asyncio loop per Locust process, in a real OS thread, for the asyncio data layer.

Locust runs its users as gevent greenlets and monkey-patches ``threading``, ``socket``, ``selectors``
and ``queue``; the reference data layer (SQLAlchemy + asyncpg, the psycopg async pool of the LangGraph
saver, httpx) is asyncio. Mixing them in one thread would make every library wait a gevent switch or
block the whole process, so :class:`LoopThread` keeps them apart:

- the loop runs in a thread started with the *original* ``_thread.start_new_thread`` (a patched
  ``threading.Thread`` would be a greenlet), on the original epoll selector, so nothing in that
  thread ever waits through gevent's hub;
- a greenlet hands a coroutine over with ``loop.call_soon_threadsafe`` and waits on a gevent
  ``Event`` that a libev ``async`` watcher sets (``watcher.send()`` is the one gevent call that is
  safe from another thread), so other greenlets keep running while it waits; the wait has a
  timeout, after which the coroutine is cancelled;
- work the loop would hand to its default executor (``getaddrinfo`` for a host name, a sync LangGraph
  node) runs in a short-lived native thread with the original ``getaddrinfo``; a patched
  ``ThreadPoolExecutor`` would start greenlets on a hub that thread never runs.

No ``concurrent.futures.Future`` crosses the threads: its condition is a patched lock, and a gevent
lock blocking in the loop thread would stall it. Results pass through a plain object (the GIL orders
the writes) and the watcher.

Without monkey-patching (the unit tests) the originals are simply the modules' own functions.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Callable, Coroutine
from concurrent.futures import Executor
from contextvars import copy_context
from typing import Any, TypeVar, TypeVarTuple

import gevent
import gevent.event
from gevent import monkey

from jedisos_db.runtime.errors import CallTimeoutError, LocalServerError

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

_start_new_thread: Callable[..., int] = monkey.get_original("_thread", "start_new_thread")
_getaddrinfo: Callable[..., Any] = monkey.get_original("socket", "getaddrinfo")
_Selector: type[selectors.BaseSelector] = monkey.get_original("selectors", "DefaultSelector")


class _NativeLoop(asyncio.SelectorEventLoop):
    """A selector loop whose executor work runs in native threads, outside gevent's patches."""

    def run_in_executor(self, executor: Executor | None, func: Callable[[*Ts], T],
                        *args: *Ts) -> asyncio.Future[T]:
        if executor is not None:
            return super().run_in_executor(executor, func, *args)
        future: asyncio.Future[T] = self.create_future()
        context = copy_context()

        def work() -> None:
            try:
                result = context.run(func, *args)
            except BaseException as exc:  # handed to the awaiting coroutine, as an executor would
                self.call_soon_threadsafe(_settle, future, None, exc)
            else:
                self.call_soon_threadsafe(_settle, future, result, None)

        _start_new_thread(work, ())
        return future

    async def getaddrinfo(self, host: Any, port: Any, *, family: int = 0, type: int = 0, proto: int = 0,
                          flags: int = 0) -> list[Any]:
        return await self.run_in_executor(None, _getaddrinfo, host, port, family, type, proto, flags)


def _settle(future: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    if future.cancelled():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)


class _Outcome:
    """What a coroutine ended with, written by the loop thread before it signals the greenlet."""

    __slots__ = ("error", "task", "value")

    def __init__(self) -> None:
        self.task: asyncio.Task[Any] | None = None
        self.value: Any = None
        self.error: BaseException | None = None


class LoopThread:
    """An asyncio loop in a native thread; :meth:`run` executes a coroutine there from a greenlet.

    Create it, call :meth:`run` and :meth:`close` from greenlets of one gevent hub (Locust's).
    """

    def __init__(self, name: str = "jedisos-load-asyncio", start_timeout: float = 10.0) -> None:
        self.loop = _NativeLoop(_Selector())
        self.name = name
        self._closed = False
        self._stopped = gevent.event.Event()
        self._stop_watcher = gevent.get_hub().loop.async_()
        self._stop_watcher.start(self._stopped.set)
        started = gevent.event.Event()
        watcher = gevent.get_hub().loop.async_()
        watcher.start(started.set)
        try:
            _start_new_thread(self._main, (watcher,))
            if not started.wait(start_timeout):
                raise LocalServerError(f"{name}: the asyncio thread did not start within {start_timeout} s")
        finally:
            watcher.close()

    def _main(self, started: Any) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(started.send)
        try:
            self.loop.run_forever()
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        finally:
            self.loop.close()
            self._stop_watcher.send()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run ``coro`` on the loop and return its result; other greenlets run meanwhile.

        Its exception is raised here; after ``timeout`` seconds it is cancelled and
        :class:`CallTimeoutError` raised.
        """
        if self._closed:
            coro.close()
            raise LocalServerError(f"{self.name} is closed")
        outcome = _Outcome()
        done = gevent.event.Event()
        watcher = gevent.get_hub().loop.async_()
        watcher.start(done.set)

        def finished(task: asyncio.Task[Any]) -> None:
            if task.cancelled():
                outcome.error = CallTimeoutError(f"cancelled after {timeout} s")
            elif (exc := task.exception()) is not None:
                outcome.error = exc
            else:
                outcome.value = task.result()
            watcher.send()

        def start() -> None:
            outcome.task = self.loop.create_task(coro)
            outcome.task.add_done_callback(finished)

        try:
            self.loop.call_soon_threadsafe(start)
            if not done.wait(timeout):
                self.loop.call_soon_threadsafe(_cancel, outcome)
                raise CallTimeoutError(f"not done within {timeout} s (cancelled)")
        finally:
            watcher.close()
        if outcome.error is not None:
            raise outcome.error
        return outcome.value  # type: ignore[no-any-return]  # set from the task's result, typed T

    def close(self, timeout: float = 10.0) -> bool:
        """Stop the loop once the callbacks already handed to it have run; True when its thread ended
        within ``timeout`` seconds. Tasks still pending are dropped: finish them with :meth:`run` first."""
        if not self._closed:
            self._closed = True
            self.loop.call_soon_threadsafe(self.loop.stop)
        try:
            return bool(self._stopped.wait(timeout))
        finally:
            if self._stopped.is_set():
                self._stop_watcher.close()


def _cancel(outcome: _Outcome) -> None:
    if outcome.task is not None:
        outcome.task.cancel()


__all__ = ["LoopThread"]
