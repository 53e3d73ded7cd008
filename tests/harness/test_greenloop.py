"""The asyncio loop in a native thread that Locust's greenlets hand the data layer's coroutines to.

Here without gevent's monkey-patching (the originals are then the modules' own functions); the Locust
smoke runs (tests/harness/test_locust_smoke.py) exercise it under the patching, in a subprocess.
"""

from __future__ import annotations

import asyncio
import inspect
import socket
import threading
from collections.abc import Iterator
from typing import Any

import gevent
import pytest

from jedisos_db.harness.greenloop import LoopThread
from jedisos_db.runtime.errors import CallTimeoutError, LocalServerError

WAIT = 30.0


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    lt = LoopThread()
    yield lt
    assert lt.close(WAIT), "the loop thread did not end"


async def _ident() -> int:
    return threading.get_ident()


def test_a_coroutine_runs_on_its_own_thread_and_returns(loop_thread: LoopThread) -> None:
    assert loop_thread.run(_ident(), WAIT) != threading.get_ident()


def test_other_greenlets_run_while_one_waits(loop_thread: LoopThread) -> None:
    """The coroutine finishes only when another greenlet releases it: a blocking wait would time out."""
    released = asyncio.Event()

    async def wait_for_release() -> str:
        await released.wait()
        return "released"

    releaser = gevent.spawn(loop_thread.loop.call_soon_threadsafe, released.set)
    assert loop_thread.run(wait_for_release(), WAIT) == "released"
    assert releaser.dead


def test_the_coroutines_exception_reaches_the_greenlet(loop_thread: LoopThread) -> None:
    async def fail() -> None:
        raise LookupError("no such row")

    with pytest.raises(LookupError, match="no such row"):
        loop_thread.run(fail(), WAIT)


def test_a_timeout_cancels_the_coroutine(loop_thread: LoopThread) -> None:
    cancelled = asyncio.Event()

    async def forever() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with pytest.raises(CallTimeoutError, match=r"not done within 0\.05 s"):
        loop_thread.run(forever(), 0.05)

    async def saw_cancel() -> bool:
        await asyncio.wait_for(cancelled.wait(), WAIT)
        return cancelled.is_set()

    assert loop_thread.run(saw_cancel(), WAIT)


def test_executor_work_runs_in_another_native_thread(loop_thread: LoopThread) -> None:
    """run_in_executor (LangGraph's sync nodes) and getaddrinfo use short-lived native threads."""

    async def probe() -> tuple[int, int, list[Any]]:
        loop = asyncio.get_running_loop()
        worker = await loop.run_in_executor(None, threading.get_ident)
        found = await loop.getaddrinfo("localhost", 5432, type=socket.SOCK_STREAM)
        return threading.get_ident(), worker, found

    loop_ident, worker_ident, found = loop_thread.run(probe(), WAIT)
    assert worker_ident not in (loop_ident, threading.get_ident())
    assert found


def test_a_closed_loop_refuses_work() -> None:
    lt = LoopThread()
    assert lt.close(WAIT)
    coro = _ident()
    with pytest.raises(LocalServerError, match="is closed"):
        lt.run(coro, WAIT)
    assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED  # closed, never left un-awaited
