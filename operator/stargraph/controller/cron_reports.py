"""The cron plugin's `CronObserver`: each fire's outcome turned into status fields and Kubernetes Events.

`fired` moves `lastScheduleTime` (only ever to a fire whose Run exists), `skipped` and `failed` say why a fire has
no Run, `missed` counts fires that will never get one. Status goes through the coalescing `StatusWriter`.
"""

from __future__ import annotations

from datetime import datetime

from stargraph.controller.cron_state import CronTriggers, fmt
from stargraph.controller.event_recorder import EventRecorder
from stargraph.controller.kinds import CRON
from stargraph.controller.status_writer import StatusWriter
from stargraph.fires.keys import format_fire_time
from stargraph.runs import PermanentSinkError, SubmitResult
from stargraph.triggers.cron import CronTriggerPlugin
from stargraph.triggers.specs import CronSpec

__all__ = ["CronReports"]

PLURAL = CRON.plural


class CronReports:
    def __init__(
        self, *, plugin: CronTriggerPlugin, status: StatusWriter, events: EventRecorder, triggers: CronTriggers
    ) -> None:
        self._plugin = plugin
        self._status = status
        self._events = events
        self._triggers = triggers

    def fired(self, spec: CronSpec, fire: datetime, result: SubmitResult) -> None:
        trigger = self._triggers.get((spec.namespace, spec.name))
        if trigger is None:
            return
        if trigger.last_schedule_time is None or fire > trigger.last_schedule_time:
            trigger.last_schedule_time = fire
        self._write(
            spec,
            lastScheduleTime=fmt(trigger.last_schedule_time),
            lastRunName=result.run.name,
            nextScheduleTime=fmt(self._plugin.next_fire(spec.trigger_id)),
        )
        if result.created:
            self._events.normal(trigger.ref, "Fired", f"created Run {result.run.name} for {format_fire_time(fire)}")

    def skipped(self, spec: CronSpec, fire: datetime) -> None:
        trigger = self._triggers.get((spec.namespace, spec.name))
        if trigger is None:
            return
        self._write(spec, nextScheduleTime=fmt(self._plugin.next_fire(spec.trigger_id)))
        self._events.normal(
            trigger.ref,
            "Skipped",
            f"concurrencyPolicy Forbid: the fire at {format_fire_time(fire)} was skipped, Run(s) "
            f"{', '.join(trigger.active) or 'of this trigger'} still active",
        )

    def missed(self, spec: CronSpec, *, count: int, latest: datetime) -> None:
        trigger = self._triggers.get((spec.namespace, spec.name))
        if trigger is None:
            return
        trigger.missed += count
        if trigger.last_missed is None or latest > trigger.last_missed:
            trigger.last_missed = latest
        # One patch carries both: a count persisted without its marker would be counted again after a restart.
        self._write(spec, missedSchedules=trigger.missed, lastMissedScheduleTime=fmt(trigger.last_missed))
        deadline = spec.starting_deadline_seconds
        why = f"startingDeadlineSeconds={deadline}" if deadline is not None else f"catchUp={spec.catch_up}"
        self._events.warning(trigger.ref, "MissedSchedule", f"{count} fire(s) not created ({why})")

    def failed(self, spec: CronSpec, fire: datetime, error: Exception) -> None:
        trigger = self._triggers.get((spec.namespace, spec.name))
        if trigger is not None:
            conflict = isinstance(error, PermanentSinkError) and error.reason == "run_name_conflict"
            self._events.warning(
                trigger.ref,
                "RunNameConflict" if conflict else "RunNotCreated",
                f"the fire at {format_fire_time(fire)} has no Run: {error}",
            )

    def _write(self, spec: CronSpec, **status: object) -> None:
        self._status.update(plural=PLURAL, namespace=spec.namespace, name=spec.name, status=status)
