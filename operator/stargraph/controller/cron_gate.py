"""The cron plugin's `CronGate`: concurrency policy, judged on the Run index's active Runs of the trigger.

Forbid skips a fire while a Run of the trigger is unfinished; Replace deletes those Runs (and says so in an Event)
before the fire's Run is created. Allow never asks.
"""

from __future__ import annotations

import contextlib
from datetime import datetime

from stargraph.controller.cron_state import CronTriggers
from stargraph.controller.event_recorder import EventRecorder
from stargraph.k8s.client import KubeClient
from stargraph.k8s.errors import NotFound
from stargraph.runs import RunIndex
from stargraph.runs.kube_sink import runs_path
from stargraph.triggers.specs import CronSpec

__all__ = ["ConcurrencyGate"]


class ConcurrencyGate:
    def __init__(self, *, api: KubeClient, index: RunIndex, events: EventRecorder, triggers: CronTriggers) -> None:
        self._api = api
        self._index = index
        self._events = events
        self._triggers = triggers

    async def admit(self, spec: CronSpec, fire: datetime) -> bool:
        active = [run for run in self._index.runs_of((spec.namespace, "crontrigger", spec.name)) if run.active]
        if not active:
            return True
        if spec.concurrency_policy == "Forbid":
            return False
        for run in active:
            with contextlib.suppress(NotFound):
                await self._api.delete(runs_path(run.ref.namespace, run.ref.name), propagation_policy="Background")
        trigger = self._triggers.get((spec.namespace, spec.name))
        if trigger is not None:
            names = ", ".join(run.ref.name for run in active)
            self._events.normal(trigger.ref, "Replaced", f"concurrencyPolicy Replace: deleted active Run(s) {names}")
        return True
