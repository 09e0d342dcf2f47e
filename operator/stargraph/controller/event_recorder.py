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
from stargraph.workers import WorkerPool

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
        self._pool: WorkerPool[_Item] = WorkerPool(self._handle, workers=workers, name="events", capacity=capacity)
        self.dropped = 0

    def normal(self, involved: ObjectRef, reason: str, message: str) -> None:
        self._put((involved, "Normal", reason, message))

    def warning(self, involved: ObjectRef, reason: str, message: str) -> None:
        self._put((involved, "Warning", reason, message))

    def _put(self, item: _Item) -> None:
        if not self._pool.put(item):
            self.dropped += 1

    async def start(self) -> None:
        await self._pool.start()

    async def stop(self, *, timeout: float = 5.0) -> None:
        if self.dropped:
            log.warning("events dropped because the queue was full", dropped=self.dropped)
        if not await self._pool.stop(timeout=timeout):
            log.warning("events left unposted at shutdown", pending=self._pool.queued)

    async def _handle(self, item: _Item) -> None:
        if self._runs_created is not None:
            await yield_to_runs(self._runs_created)
        await self._post(*item)

    async def _post(self, involved: ObjectRef, type_: Literal["Normal", "Warning"], reason: str, message: str) -> None:
        loop = asyncio.get_running_loop()
        give_up, delay = loop.time() + RETRY_SECONDS, _FIRST_DELAY
        while not await record_event(self._api, involved=involved, type=type_, reason=reason, message=message):
            if loop.time() + delay > give_up:
                log.warning("event not recorded: the apiserver could not take it", reason=reason, name=involved.name)
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, _MAX_DELAY)
