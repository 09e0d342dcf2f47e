"""The gate reports pass through: status writes, Events and history pruning wait while Runs and their Jobs are made.

In a burst of fires the apiserver's capacity should go to the Runs and Jobs first: a trigger's status patch costs
the apiserver more than the Job it reports on (its schema holds a whole JobTemplateSpec). So reports wait until
creation has been quiet for `quiet` seconds. Idle for a moment is not enough: inside a burst the scheduler is idle
between its last Run and the watch event that makes that Run's Job, and the reports that slipped into such gaps
took a third of the apiserver's CPU while Jobs were still being made (`python -m bench jobs_vs_cronjobs`).

Creation that never pauses (a steady stream of webhook deliveries) must not starve the reports, so a hold lasts
at most `bound` seconds: after that every report goes ahead, side by side with the creations, until the gate has
been left alone for `quiet` seconds and the next hold may begin.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from typing import Protocol

__all__ = ["BurstGate", "Stage"]


class Stage(Protocol):
    """Something that creates objects in bursts: the scheduler (Runs), `RunJobs` (Jobs)."""

    async def wait_idle(self) -> None: ...

    @property
    def idle_since(self) -> float | None:
        """When it last became idle (the event loop's clock); None while busy."""
        ...


class BurstGate:
    def __init__(self, stages: Callable[[], Sequence[Stage]], *, quiet: float = 1.0, bound: float = 5.0) -> None:
        self._stages = stages
        self._quiet = quiet
        self._bound = bound
        self._held_since: float | None = None
        self._waiting = 0
        self._left_at = float("-inf")

    async def wait(self) -> None:
        """Return once creation has been quiet for `quiet` seconds, or the current hold has lasted `bound`."""
        loop = asyncio.get_running_loop()
        if not self._waiting and loop.time() - self._left_at > self._quiet:
            self._held_since = None  # nobody has been held for a while: a new burst gets a new hold
        self._waiting += 1
        try:
            await self._until_open(loop)
        finally:
            self._waiting -= 1
            self._left_at = loop.time()

    async def _until_open(self, loop: asyncio.AbstractEventLoop) -> None:
        while True:
            now = loop.time()
            quiet_for = self._quiet_for(now)
            if quiet_for is not None and quiet_for >= self._quiet:
                self._held_since = None
                return
            if self._held_since is None:
                self._held_since = now
            left = self._held_since + self._bound - now
            if left <= 0:
                return
            if quiet_for is None:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(left):
                        for stage in self._stages():
                            await stage.wait_idle()
            else:
                await asyncio.sleep(min(self._quiet - quiet_for, left))

    def _quiet_for(self, now: float) -> float | None:
        """How long every stage has been idle; None while one is busy."""
        since = [stage.idle_since for stage in self._stages()]
        if any(moment is None for moment in since):
            return None
        return now - max((moment for moment in since if moment is not None), default=float("-inf"))
