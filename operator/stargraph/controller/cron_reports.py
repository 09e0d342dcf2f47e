"""The cron plugin's `CronObserver`: each fire's outcome turned into status fields and Kubernetes Events.

`fired` moves `lastScheduleTime` (only ever to a fire whose Run exists), `skipped` and `failed` say why a fire has
no Run, `missed` counts fires that will never get one. Every outcome is also an entry of the fire ledger
(`status.recentFires`, `fire_ledger`), carried by the same status patch. Status goes through the coalescing
`StatusWriter`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from stargraph.api.v1alpha1 import FireOutcome
from stargraph.clock import Clock
from stargraph.controller.cron_state import CronTriggers, CronTriggerState, fmt
from stargraph.controller.event_recorder import EventRecorder
from stargraph.controller.fire_ledger import fire_record
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
        self,
        *,
        plugin: CronTriggerPlugin,
        status: StatusWriter,
        events: EventRecorder,
        triggers: CronTriggers,
        clock: Clock,
    ) -> None:
        self._plugin = plugin
        self._clock = clock
        self._status = status
        self._events = events
        self._triggers = triggers

    def fired(self, spec: CronSpec, fire: datetime, result: SubmitResult) -> None:
        trigger = self._triggers.get((spec.namespace, spec.name))
        if trigger is None:
            return
        if trigger.last_schedule_time is None or fire > trigger.last_schedule_time:
            trigger.last_schedule_time = fire
        outcome = FireOutcome.CREATED if result.created else FireOutcome.ALREADY_EXISTED
        self._write(
            spec,
            recentFires=self._record(trigger, fire, outcome, run_name=result.run.name),
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
        active = f"Run(s) {', '.join(trigger.active) or 'of this trigger'} still active"
        self._write(
            spec,
            recentFires=self._record(
                trigger, fire, FireOutcome.SKIPPED, reason="ConcurrencyPolicy", message=f"Forbid: {active}"
            ),
            nextScheduleTime=fmt(self._plugin.next_fire(spec.trigger_id)),
        )
        self._events.normal(
            trigger.ref,
            "Skipped",
            f"concurrencyPolicy Forbid: the fire at {format_fire_time(fire)} was skipped, {active}",
        )

    def missed(self, spec: CronSpec, *, count: int, latest: datetime) -> None:
        trigger = self._triggers.get((spec.namespace, spec.name))
        if trigger is None:
            return
        trigger.missed += count
        if trigger.last_missed is None or latest > trigger.last_missed:
            trigger.last_missed = latest
        deadline = spec.starting_deadline_seconds
        why = f"startingDeadlineSeconds={deadline}" if deadline is not None else f"catchUp={spec.catch_up}"
        # The newest fire counted is past the deadline, or else it was crowded out by what catchUp keeps.
        if deadline is not None and (self._clock.now() - latest).total_seconds() > deadline:
            reason, rule = "StartingDeadlineExceeded", f"startingDeadlineSeconds={deadline}"
        else:
            reason, rule = "CatchUp", f"catchUp={spec.catch_up}"
        # One patch carries both: a count persisted without its marker would be counted again after a restart.
        self._write(
            spec,
            recentFires=self._record(
                trigger,
                latest,
                FireOutcome.MISSED,
                count=count,
                reason=reason,
                message=f"{count} fire(s) up to this one not created ({rule})",
            ),
            missedSchedules=trigger.missed,
            lastMissedScheduleTime=fmt(trigger.last_missed),
        )
        self._events.warning(trigger.ref, "MissedSchedule", f"{count} fire(s) not created ({why})")

    def failed(self, spec: CronSpec, fire: datetime, error: Exception) -> None:
        trigger = self._triggers.get((spec.namespace, spec.name))
        if trigger is None:
            return
        conflict = isinstance(error, PermanentSinkError) and error.reason == "run_name_conflict"
        reason = "RunNameConflict" if conflict else "RunNotCreated"
        self._write(
            spec, recentFires=self._record(trigger, fire, FireOutcome.FAILED, reason=reason, message=str(error))
        )
        self._events.warning(trigger.ref, reason, f"the fire at {format_fire_time(fire)} has no Run: {error}")

    def _record(
        self,
        trigger: CronTriggerState,
        fire: datetime,
        outcome: FireOutcome,
        *,
        run_name: str | None = None,
        count: int | None = None,
        reason: str | None = None,
        message: str | None = None,
    ) -> list[dict[str, Any]]:
        """Add the outcome to the trigger's ledger; the new `status.recentFires`."""
        record = fire_record(
            outcome, fire, now=self._clock.now(), run_name=run_name, count=count, reason=reason, message=message
        )
        trigger.ledger.add(fire, record)
        return trigger.ledger.status()

    def _write(self, spec: CronSpec, **status: object) -> None:
        self._status.update(plural=PLURAL, namespace=spec.namespace, name=spec.name, status=status)
