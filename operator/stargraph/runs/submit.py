"""What a trigger plugin submits its events to: the `RunSubmitter` protocol (`deps["scheduler"]`).

Plugins depend on this, not on the concrete scheduler, so the two are siblings that never import each other: the
scheduler implements it, and a test can hand a plugin anything else that does.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from stargraph.clock import Clock
from stargraph.fires.event import TriggerEvent
from stargraph.metrics import Metrics
from stargraph.runs.manifest import TriggerObject
from stargraph.runs.refs import SubmitResult

__all__ = ["RunSubmitter", "SchedulerStopped"]


class SchedulerStopped(RuntimeError):
    """The scheduler no longer accepts events (shutting down)."""


class RunSubmitter(Protocol):
    @property
    def clock(self) -> Clock: ...

    @property
    def metrics(self) -> Metrics: ...

    def known(self, idempotency_key: str, *, source: str) -> SubmitResult | None:
        """The Run already recorded for this key, without I/O; lets a caller skip building the event."""
        ...

    async def submit(
        self,
        event: TriggerEvent,
        *,
        trigger: TriggerObject | None = None,
        body: str | None = None,
        due: datetime | None = None,
    ) -> SubmitResult:
        """The Run for `event` (created, or the one that exists), owned by `trigger` when one is given, carrying
        `body` for its executor. `due` is when the Run was meant to be created, if not at the event's scheduled fire
        (a cron trigger's jitter delays it); the scheduler's lag counts from it.

        Raises `SchedulerStopped` when shutting down, `PermanentSinkError` when no retry can help, and whatever the
        sink raised once its retries ran out.
        """
        ...

    async def wait_idle(self) -> None:
        """Return once no Run creation is in flight."""
        ...
