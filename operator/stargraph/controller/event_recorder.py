"""Kubernetes Events, posted in the background: best effort, bounded, never in the way of a Run.

An Event per fire doubles the API writes of a busy operator, so they go through a queue drained by a few workers,
and when the queue is full new Events are dropped (and counted) instead of slowing anything down. An Event the
apiserver could not take (down, overloaded) is posted again with backoff for up to `RETRY_SECONDS`: the Events of
an outage (MissedSchedule above all) are what an operator's user looks for after it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Literal

import structlog

from stargraph.controller.status_writer import yield_to_runs
from stargraph.k8s.client import KubeClient
from stargraph.k8s.events import ObjectRef, record_event

__all__ = ["RETRY_SECONDS", "EventRecorder"]

log = structlog.get_logger("stargraph.controller")

_Item = tuple[ObjectRef, Literal["Normal", "Warning"], str, str]

RETRY_SECONDS = 300.0
_FIRST_DELAY, _MAX_DELAY = 0.5, 10.0


class EventRecorder:
    def __init__(
        self,
        api: KubeClient,
        *,
        workers: int = 4,
        capacity: int = 2000,
        runs_created: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._api = api
        self._runs_created = runs_created
        self._queue: asyncio.Queue[_Item] = asyncio.Queue(maxsize=capacity)
        self._workers_wanted = workers
        self._workers: list[asyncio.Task[None]] = []
        self.dropped = 0

    def normal(self, involved: ObjectRef, reason: str, message: str) -> None:
        self._put((involved, "Normal", reason, message))

    def warning(self, involved: ObjectRef, reason: str, message: str) -> None:
        self._put((involved, "Warning", reason, message))

    def _put(self, item: _Item) -> None:
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            self.dropped += 1

    async def start(self) -> None:
        self._workers = [asyncio.create_task(self._work(), name=f"events-{i}") for i in range(self._workers_wanted)]

    async def stop(self, *, timeout: float = 5.0) -> None:
        if self.dropped:
            log.warning("events dropped because the queue was full", dropped=self.dropped)
        try:
            await asyncio.wait_for(self._queue.join(), timeout)
        except TimeoutError:
            log.warning("events left unposted at shutdown", pending=self._queue.qsize())
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)

    async def _work(self) -> None:
        while True:
            involved, type_, reason, message = await self._queue.get()
            if self._runs_created is not None:
                await yield_to_runs(self._runs_created)
            try:
                await self._post(involved, type_, reason, message)
            finally:
                self._queue.task_done()

    async def _post(self, involved: ObjectRef, type_: Literal["Normal", "Warning"], reason: str, message: str) -> None:
        loop = asyncio.get_running_loop()
        give_up, delay = loop.time() + RETRY_SECONDS, _FIRST_DELAY
        while not await record_event(self._api, involved=involved, type=type_, reason=reason, message=message):
            if loop.time() + delay > give_up:
                log.warning("event not recorded: the apiserver could not take it", reason=reason, name=involved.name)
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, _MAX_DELAY)
