"""Time as a dependency: triggers read `now()` and sleep through a `Clock`, so tests never wait for real."""

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
        # Not an event wait: the loop only guards against waking early after a wall-clock step.
        while (remaining := (when - self.now()).total_seconds()) > 0:  # noqa: ASYNC110
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

    def jump(self, when: datetime) -> None:
        """Move time without waking anyone, as if the process had been frozen; the next `advance_to` wakes them late."""
        self._now = max(self._now, when.astimezone(UTC))

    def set(self, when: datetime) -> None:
        """Step the clock to `when`, backwards too, waking nobody: a wall-clock step such as an NTP correction.

        Sleepers keep their deadlines, as `SystemClock` sleepers do, and wake once `advance_to` reaches them again.
        """
        self._now = when.astimezone(UTC)

    async def advance_to(self, when: datetime) -> None:
        """Move time forward to `when`, waking each sleeper at its own deadline and letting it run before the next."""
        await _settle()  # tasks created just before this call get to register their first sleep
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
    # Enough loop turns for a woken task to hand its event through the scheduler's queue and worker, get the Run
    # back, compute its next deadline and go back to sleep; each turn costs microseconds.
    for _ in range(100):
        await asyncio.sleep(0)
