"""Backfill as pure functions: which fires of a CronTrigger's schedule a Backfill covers, and what is wrong with one.

No Kubernetes here: the operator's Backfill controller, `stargraph backfill` (before it creates anything) and an
admission webhook all call `plan_backfill` with the objects they read, and get the same answer.

The range is closed: a fire exactly at `from` or exactly at `to` is backfilled. Fires after the Backfill's creation
are not: they are the trigger's own to fire (a Backfill applied with `to` in the future covers the range up to its
creation). Fires are computed in the trigger's time zone, daylight saving time included, exactly as live fires are
(`stargraph.triggers.cron_schedule`), so a backfilled fire has the live fire's idempotency key and Run name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from stargraph.api.v1alpha1 import MAX_BACKFILL_RUNS, BackfillSpec, CronTriggerSpec
from stargraph.models import FieldError
from stargraph.triggers.cron_schedule import CronSchedule, ScheduleError, trigger_schedule

__all__ = [
    "BACKFILL_KIND",
    "COUNT_LIMIT",
    "BackfillPlan",
    "backfill_slots",
    "plan_backfill",
    "spec_errors",
]

BACKFILL_KIND = "CronTrigger"
"""The only kind whose fires can be backfilled: the others have no schedule."""

COUNT_LIMIT = 100_000
"""How far a range beyond `maxRuns` is counted to say how many fires it holds; beyond this it is "more than"."""


@dataclass(frozen=True, slots=True)
class BackfillPlan:
    slots: list[datetime] = field(default_factory=list)
    """The fires to backfill, oldest first, in UTC; empty when there are errors."""
    errors: list[FieldError] = field(default_factory=list)


def backfill_slots(schedule: CronSchedule, *, start: datetime, end: datetime, limit: int) -> list[datetime]:
    """The fires in the closed range [`start`, `end`], oldest first, at most `limit` of them."""
    # Fires are whole seconds (cronsim's resolution): every fire at or after `start` comes after the second before it.
    after = start.replace(microsecond=0) - timedelta(seconds=0 if start.microsecond else 1)
    fires: list[datetime] = []
    for fire in schedule.fires_after(after):
        if fire > end or len(fires) >= limit:
            break
        fires.append(fire)
    return fires


def _count(schedule: CronSchedule, *, start: datetime, end: datetime) -> str:
    found = len(backfill_slots(schedule, start=start, end=end, limit=COUNT_LIMIT + 1))
    return f"more than {COUNT_LIMIT}" if found > COUNT_LIMIT else str(found)


def spec_errors(spec: BackfillSpec) -> list[FieldError]:
    """What is wrong with `spec` on its own, without reading the trigger (an admission check, the CLI's first one)."""
    errors: list[FieldError] = []
    if spec.to < spec.from_:
        errors.append(
            FieldError(
                "spec.to",
                reason="InvalidRange",
                message=f"{spec.to.isoformat()} is before from ({spec.from_.isoformat()}); the range would be empty",
            )
        )
    if spec.trigger_ref.kind != BACKFILL_KIND:
        errors.append(
            FieldError(
                "spec.triggerRef.kind",
                reason="UnsupportedTriggerKind",
                message=f"{spec.trigger_ref.kind} has no schedule to backfill; only a {BACKFILL_KIND} can be "
                "backfilled",
            )
        )
    return errors


def plan_backfill(spec: BackfillSpec, *, trigger: CronTriggerSpec | None, created: datetime) -> BackfillPlan:
    """The fires `spec` backfills, or every error found (each naming its field).

    `trigger` is the spec of the CronTrigger `spec.triggerRef` names, None when there is no such object; `created`
    is when the Backfill was created (or now, before it is).
    """
    errors = spec_errors(spec)
    if errors:
        return BackfillPlan(errors=errors)
    if trigger is None:
        return BackfillPlan(
            errors=[
                FieldError(
                    "spec.triggerRef.name",
                    reason="TriggerNotFound",
                    message=f"no {BACKFILL_KIND} named {spec.trigger_ref.name!r} in this namespace; the backfill "
                    "starts when one is created",
                )
            ]
        )
    try:
        schedule = trigger_schedule(trigger)
    except ScheduleError as exc:
        return BackfillPlan(
            errors=[
                FieldError(
                    "spec.triggerRef.name",
                    reason="InvalidTrigger",
                    message=f"{BACKFILL_KIND} {spec.trigger_ref.name!r} cannot be backfilled: spec.{exc}",
                )
            ]
        )
    end = min(spec.to, created)
    slots = backfill_slots(schedule, start=spec.from_, end=end, limit=spec.max_runs + 1)
    if len(slots) > spec.max_runs:
        held = _count(schedule, start=spec.from_, end=end)
        return BackfillPlan(
            errors=[
                FieldError(
                    "spec.maxRuns",
                    reason="TooManySlots",
                    message=f"the range holds {held} fires of {trigger.schedule!r} ({trigger.time_zone}), more than "
                    f"maxRuns ({spec.max_runs}); narrow the range, or raise maxRuns (at most {MAX_BACKFILL_RUNS})",
                )
            ]
        )
    return BackfillPlan(slots=slots)
