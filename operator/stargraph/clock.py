"""Time as a dependency: triggers read `now()` and sleep until an instant through a `Clock`, so tests need no waiting."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from datetime import UTC, datetime
from typing import Protocol

__all__ = ["Clock", "ManualClock", "SystemClock"]


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, UTC-aware."""
        ...

    async def sleep_until(self, when: datetime) -> None:
        """Return once `now() >= when`."""
        ...


class SystemClock:
    """Wall-clock time. Sleeps in one piece and re-checks on waking, so a clock step cannot make it fire early."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep_until(self, when: datetime) -> None:
        while (remaining := (when - self.now()).total_seconds()) > 0:
            await asyncio.sleep(remaining)


class ManualClock:
    """A clock that moves only when told to; sleepers wake in deadline order as `advance()` passes them."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        self._now = start.astimezone(UTC)
        self._sleepers: list[tuple[datetime, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def now(self) -> datetime:
        return self._now

    async def sleep_until(self, when: datetime) -> None:
        if when <= self._now:
            await asyncio.sleep(0)
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (when, next(self._order), waiter))
        await waiter

    @property
    def sleepers(self) -> int:
        return sum(1 for _, _, waiter in self._sleepers if not waiter.done())

    async def advance_to(self, when: datetime) -> None:
        """Move time forward to `when`, waking each sleeper at its own deadline and letting it run before the next."""
        while self._sleepers and self._sleepers[0][0] <= when:
            deadline, _, waiter = heapq.heappop(self._sleepers)
            if waiter.done():
                continue
            self._now = max(self._now, deadline)
            waiter.set_result(None)
            await _settle()
        self._now = max(self._now, when.astimezone(UTC))
        await _settle()


async def _settle() -> None:
    # Several loop turns let a woken task emit, re-compute its next deadline and go back to sleep.
    for _ in range(5):
        await asyncio.sleep(0)
