"""The cron trigger: one asyncio task per CronSpec, sleeping until its next fire and emitting one event per fire.

A task computes the next nominal fire from the previous one (never from "now"), so a slow Run creation delays a
fire but never drops it. Applying a new spec replaces the task and starts counting from the moment of the change:
a slot that fell between the old and the new schedule is not fired. A fire found later than the spec's
`starting_deadline_seconds` (the process was stalled or suspended) is skipped and counted as missed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import structlog

from stargraph.clock import Clock, SystemClock
from stargraph.http import Route
from stargraph.metrics import Metrics
from stargraph.scheduler import Scheduler
from stargraph.triggers.cron_schedule import CronSchedule
from stargraph.triggers.events import TriggerEvent
from stargraph.triggers.keys import cron_idempotency_key
from stargraph.triggers.specs import CronSpec

__all__ = ["CronTriggerPlugin", "cron_event"]

log = structlog.get_logger("stargraph.triggers.cron")


def cron_event(spec: CronSpec, fire: datetime) -> TriggerEvent:
    return TriggerEvent(
        trigger_id=spec.trigger_id,
        scheduled_fire=fire,
        idempotency_key=cron_idempotency_key(spec.trigger_id, fire),
        payload=spec.payload,
    )


class CronTriggerPlugin:
    """Built-in trigger for cron schedules; `apply` and `remove` change the set of specs while it runs."""

    def __init__(self) -> None:
        self._scheduler: Scheduler | None = None
        self._clock: Clock = SystemClock()
        self._metrics = Metrics()
        self._specs: dict[str, tuple[CronSpec, CronSchedule]] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._started = False

    def init(self, deps: Mapping[str, Any]) -> None:
        self._scheduler = deps["scheduler"]
        self._clock = deps.get("clock") or self._scheduler.clock
        self._metrics = deps.get("metrics") or self._scheduler.metrics
        for spec in deps.get("cron_specs", ()):
            self._store(spec)

    async def start(self) -> None:
        self._started = True
        for trigger_id in self._specs:
            self._launch(trigger_id)

    async def stop(self) -> None:
        self._started = False
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def routes(self) -> Sequence[Route]:
        return ()

    def apply(self, spec: CronSpec) -> CronSchedule:
        """Add or replace a spec (raises `ScheduleError` naming the field); running specs restart from now."""
        schedule = self._store(spec)
        self._cancel(spec.trigger_id)
        if self._started:
            self._launch(spec.trigger_id)
        return schedule

    def remove(self, trigger_id: str) -> None:
        self._specs.pop(trigger_id, None)
        self._cancel(trigger_id)

    def next_fire(self, trigger_id: str) -> datetime | None:
        entry = self._specs.get(trigger_id)
        if entry is None or entry[0].suspend:
            return None
        return entry[1].next_after(self._clock.now())

    @property
    def active(self) -> int:
        return len(self._tasks)

    def _store(self, spec: CronSpec) -> CronSchedule:
        schedule = CronSchedule.parse(spec.schedule, spec.time_zone)
        self._specs[spec.trigger_id] = (spec, schedule)
        return schedule

    def _cancel(self, trigger_id: str) -> None:
        task = self._tasks.pop(trigger_id, None)
        if task is not None:
            task.cancel()

    def _launch(self, trigger_id: str) -> None:
        spec, schedule = self._specs[trigger_id]
        if spec.suspend:
            return
        self._tasks[trigger_id] = asyncio.create_task(self._run(spec, schedule), name=f"cron {trigger_id}")

    async def _run(self, spec: CronSpec, schedule: CronSchedule) -> None:
        assert self._scheduler is not None, "init() must run before start()"
        for fire in schedule.fires_after(self._clock.now()):
            await self._clock.sleep_until(fire)
            late = (self._clock.now() - fire).total_seconds()
            if spec.starting_deadline_seconds is not None and late > spec.starting_deadline_seconds:
                self._metrics.missed.inc()
                log.warning(
                    "cron fire missed its starting deadline",
                    trigger_id=spec.trigger_id,
                    fire=fire.isoformat(),
                    late_s=late,
                )
                continue
            try:
                await self._scheduler.submit(cron_event(spec, fire))
            except Exception as exc:
                # Retries are the scheduler's job; the task must outlive any one fire's failure.
                log.error(
                    "cron fire could not be turned into a Run",
                    trigger_id=spec.trigger_id,
                    fire=fire.isoformat(),
                    error=repr(exc),
                )
