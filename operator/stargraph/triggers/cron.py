"""The cron trigger: one asyncio task per CronSpec, sleeping until its next fire and emitting one event per fire.

A task computes the next nominal fire from the previous one (never from "now"), so a slow Run creation delays a
fire but never drops it. Applying a changed spec replaces the task and starts counting from the moment of the
change: a slot that fell between the old and the new schedule is not fired. Applying a spec with `catch_up=True`
(the first time a process sees a trigger, e.g. after a restart or a leader change) first creates the fires missed
since `resume_from`, as `plan_catch_up` decides. A fire found later than `starting_deadline_seconds` is skipped and
reported as missed.

Two optional collaborators come through `deps`: a `CronGate` asked before each fire of a spec whose concurrency
policy is not Allow, and a `CronObserver` told about every outcome (the operator turns those into status and
Kubernetes Events). Both default to no-ops, so the plugin runs on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

import structlog

from stargraph.clock import Clock, SystemClock
from stargraph.http import Route
from stargraph.metrics import Metrics
from stargraph.scheduler import Scheduler, SubmitResult
from stargraph.triggers.cron_schedule import CronSchedule, plan_catch_up
from stargraph.triggers.events import TriggerEvent
from stargraph.triggers.keys import cron_idempotency_key
from stargraph.triggers.specs import CronSpec

__all__ = ["CronGate", "CronObserver", "CronTriggerPlugin", "cron_event"]

log = structlog.get_logger("stargraph.triggers.cron")


class CronGate(Protocol):
    async def admit(self, spec: CronSpec, fire: datetime) -> bool:
        """Whether the fire may create its Run now (concurrency policy); may act first, e.g. delete for Replace."""
        ...


class CronObserver(Protocol):
    def fired(self, spec: CronSpec, fire: datetime, result: SubmitResult) -> None: ...
    def skipped(self, spec: CronSpec, fire: datetime) -> None: ...
    def missed(self, spec: CronSpec, count: int) -> None: ...
    def failed(self, spec: CronSpec, fire: datetime, error: Exception) -> None: ...


class _AdmitAll:
    async def admit(self, spec: CronSpec, fire: datetime) -> bool:
        return True


class _Silent:
    def fired(self, spec: CronSpec, fire: datetime, result: SubmitResult) -> None: ...
    def skipped(self, spec: CronSpec, fire: datetime) -> None: ...
    def missed(self, spec: CronSpec, count: int) -> None: ...
    def failed(self, spec: CronSpec, fire: datetime, error: Exception) -> None: ...


def cron_event(spec: CronSpec, fire: datetime) -> TriggerEvent:
    """The event of one fire; `fire` is a UTC instant from the spec's schedule."""
    return TriggerEvent.trusted(
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
        self._gate: CronGate = _AdmitAll()
        self._observer: CronObserver = _Silent()
        self._specs: dict[str, tuple[CronSpec, CronSchedule]] = {}
        self._backlog: dict[str, list[datetime]] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._next: dict[str, datetime] = {}  # the fire each running task sleeps towards
        self._started = False

    def init(self, deps: Mapping[str, Any]) -> None:
        self._scheduler = deps["scheduler"]
        self._clock = deps.get("clock") or self._scheduler.clock
        self._metrics = deps.get("metrics") or self._scheduler.metrics
        self._gate = deps.get("cron_gate") or _AdmitAll()
        self._observer = deps.get("cron_observer") or _Silent()
        for spec in deps.get("cron_specs", ()):
            self.apply(spec, catch_up=True)

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

    def apply(self, spec: CronSpec, *, catch_up: bool = False) -> CronSchedule:
        """Add or replace a spec (raises `ScheduleError` naming the field); it fires from now on.

        With `catch_up`, fires missed since `spec.resume_from` are created first, per the spec's policy.
        """
        schedule = CronSchedule.parse(spec.schedule, spec.time_zone)
        trigger_id = spec.trigger_id
        self._specs[trigger_id] = (spec, schedule)
        self._cancel(trigger_id)
        self._backlog.pop(trigger_id, None)
        if catch_up and spec.resume_from is not None and not spec.suspend:
            plan = plan_catch_up(
                schedule,
                since=spec.resume_from,
                now=self._clock.now(),
                deadline_seconds=spec.starting_deadline_seconds,
                policy=spec.catch_up,
                limit=spec.catch_up_limit,
            )
            if plan.missed:
                self._report_missed(spec, plan.missed)
            if plan.create:
                self._backlog[trigger_id] = plan.create
        if self._started:
            self._launch(trigger_id)
        return schedule

    def remove(self, trigger_id: str) -> None:
        self._specs.pop(trigger_id, None)
        self._backlog.pop(trigger_id, None)
        self._cancel(trigger_id)

    def next_fire(self, trigger_id: str) -> datetime | None:
        entry = self._specs.get(trigger_id)
        if entry is None or entry[0].suspend:
            return None
        known = self._next.get(trigger_id)
        return known if known is not None else entry[1].next_after(self._clock.now())

    @property
    def active(self) -> int:
        return len(self._tasks)

    def _cancel(self, trigger_id: str) -> None:
        self._next.pop(trigger_id, None)
        task = self._tasks.pop(trigger_id, None)
        if task is not None:
            task.cancel()

    def _launch(self, trigger_id: str) -> None:
        spec, schedule = self._specs[trigger_id]
        if spec.suspend:
            return
        backlog = self._backlog.pop(trigger_id, [])
        self._tasks[trigger_id] = asyncio.create_task(
            self._run(spec, schedule, self._clock.now(), backlog), name=f"cron {trigger_id}"
        )

    def _report_missed(self, spec: CronSpec, count: int) -> None:
        self._metrics.missed.inc(count)
        log.warning("cron fires missed their starting deadline", trigger_id=spec.trigger_id, count=count)
        self._observer.missed(spec, count)

    async def _run(self, spec: CronSpec, schedule: CronSchedule, start: datetime, backlog: list[datetime]) -> None:
        for fire in backlog:
            if (result := await self._fire(spec, fire)) is not None:
                self._observer.fired(spec, fire, result)
        # The next fire is computed afresh each time rather than kept in a live cronsim iterator: a sleeping task
        # then holds a few hundred bytes instead of kilobytes, which matters at tens of thousands of triggers.
        fire = self._next[spec.trigger_id] = schedule.next_after(start)
        while True:
            following = await self._following(schedule, fire)
            await self._clock.sleep_until(fire)
            late = (self._clock.now() - fire).total_seconds()
            if spec.starting_deadline_seconds is not None and late > spec.starting_deadline_seconds:
                self._report_missed(spec, 1)
                result = None
            else:
                result = await self._fire(spec, fire)
            self._next[spec.trigger_id] = following
            if result is not None:
                self._observer.fired(spec, fire, result)  # after `_next` moved on: it reports the next fire too
            fire = following

    async def _following(self, schedule: CronSchedule, fire: datetime) -> datetime:
        """The fire after `fire`, worked out ahead while no Run is being created.

        Knowing it before `fire` comes means a burst of simultaneous fires does nothing but create Runs; working it
        out waits (at the latest until `fire`) for the scheduler to be idle, because cronsim needs up to ~0.1 ms for
        a sparse schedule, and a thousand of those would compete with the burst of Runs for the CPU.
        """
        assert self._scheduler is not None
        patience = (fire - self._clock.now()).total_seconds()
        if patience > 0:
            # A timeout scope rather than wait_for: no extra task per fire, and no suspension when already idle.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(patience):
                    await self._scheduler.wait_idle()
        return schedule.next_after(fire)

    async def _fire(self, spec: CronSpec, fire: datetime) -> SubmitResult | None:
        """The fire's Run, or None when it was skipped (concurrency policy) or failed (both told to the observer)."""
        assert self._scheduler is not None, "init() must run before start()"
        try:
            if spec.concurrency_policy != "Allow" and not await self._gate.admit(spec, fire):
                self._observer.skipped(spec, fire)
                return None
            return await self._scheduler.submit(cron_event(spec, fire))
        except Exception as exc:
            # Retries are the scheduler's job; the task must outlive any one fire's failure.
            log.error(
                "cron fire not turned into a Run", trigger_id=spec.trigger_id, fire=fire.isoformat(), error=repr(exc)
            )
            self._observer.failed(spec, fire, exc)
            return None
