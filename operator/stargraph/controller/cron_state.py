"""What the cron controller's parts share about each CronTrigger they fire: the registry, keyed by (namespace, name).

The reconciler fills it (and empties it when a trigger goes or this replica stops leading); the gate, the reports
and the Run history read it. Nothing here talks to the API.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from stargraph.api.v1alpha1 import CronTriggerSpec
from stargraph.controller.fire_ledger import FireLedger
from stargraph.fires.keys import format_fire_time
from stargraph.k8s.events import ObjectRef

__all__ = ["CronTriggerState", "CronTriggers", "TriggerName", "fmt"]

TriggerName = tuple[str, str]
"""(namespace, name) of a CronTrigger."""


@dataclass
class CronTriggerState:
    uid: str
    generation: int
    spec: CronTriggerSpec
    ref: ObjectRef
    last_schedule_time: datetime | None
    missed: int
    last_missed: datetime | None
    active: list[str] = field(default_factory=list)
    last_successful: datetime | None = None
    """`status.lastSuccessfulTime`: only ever moves forward (history limits may prune the Run it came from)."""
    ledger: FireLedger = field(default_factory=FireLedger)
    """`status.recentFires`."""

    @property
    def history_limits(self) -> tuple[int, int]:
        return self.spec.successful_runs_history_limit, self.spec.failed_runs_history_limit


CronTriggers = dict[TriggerName, CronTriggerState]


def fmt(when: datetime | None) -> str | None:
    return format_fire_time(when) if when else None
