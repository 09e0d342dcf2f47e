"""A fixed pool of asyncio tasks draining one queue (the shape the scheduler, the status writer and the Event
recorder share), and the idle flag of a stage that creates things.

A bounded number of workers bounds the concurrent API calls each of them makes; the queue absorbs bursts. A
handler that raises is logged and the worker goes on with the next item: one bad item must not silently shrink
the pool. `stop()` lets what is queued finish (up to a timeout) before the workers are cancelled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import structlog

__all__ = ["Idle", "WorkerPool"]

log = structlog.get_logger("stargraph.workers")

T = TypeVar("T")


class Idle:
    """Whether a stage has work in flight and, when it has none, since when (the event loop's clock)."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self._event.set()
        self._since = float("-inf")

    def busy(self) -> None:
        self._event.clear()

    def done(self) -> None:
        """Nothing is in flight any more."""
        if not self._event.is_set():
            self._since = asyncio.get_running_loop().time()
            self._event.set()

    @property
    def since(self) -> float | None:
        """When the stage last became idle; None while it is busy."""
        return self._since if self._event.is_set() else None

    async def wait(self) -> None:
        await self._event.wait()


class WorkerPool(Generic[T]):
    def __init__(self, handle: Callable[[T], Awaitable[None]], *, workers: int, name: str, capacity: int = 0) -> None:
        """`handle` is awaited once per item; `capacity` bounds the queue (0: unbounded)."""
        self._handle = handle
        self._size = workers
        self._name = name
        self._queue: asyncio.Queue[T] = asyncio.Queue(maxsize=capacity)
        self._workers: list[asyncio.Task[None]] = []

    @property
    def started(self) -> bool:
        return bool(self._workers)

    @property
    def queued(self) -> int:
        """Items waiting for a worker."""
        return self._queue.qsize()

    def put(self, item: T) -> bool:
        """Queue `item`; False (and nothing queued) when the queue is at its capacity."""
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            return False
        return True

    async def start(self) -> None:
        if not self._workers:
            self._workers = [asyncio.create_task(self._work(), name=f"{self._name}-{i}") for i in range(self._size)]

    async def stop(self, *, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the queued items to be handled, then stop the workers.

        Returns whether everything queued was handled.
        """
        drained = True
        try:
            await asyncio.wait_for(self._queue.join(), timeout)
        except TimeoutError:
            drained = False
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []
        return drained

    async def _work(self) -> None:
        while True:
            item = await self._queue.get()
            try:
                await self._handle(item)
            except Exception:
                log.exception("worker failed on an item; going on with the next", pool=self._name)
            finally:
                self._queue.task_done()
