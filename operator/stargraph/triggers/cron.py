"""The cron trigger: one asyncio task per CronSpec, sleeping until its next fire and emitting one event per fire.

A task computes the next nominal fire from the previous one (never from "now"), so a slow Run creation delays a
fire but never drops it. Applying a changed spec replaces the task and starts counting from the moment of the
change: a slot that fell between the old and the new schedule is not fired. A new task never counts from before a
fire already taken or `resume_from`, so a wall clock stepped back (an NTP correction) fires nothing twice.
Applying a spec with `catch_up=True` (the first time a process sees a trigger, e.g. after a restart or a leader
change) first creates the fires missed since `resume_from`, as `plan_catch_up` decides. A fire found later than
`starting_deadline_seconds` is skipped and reported as missed.

Jitter (`spec.jitter`, a fixed offset per trigger) moves the moment each fire's Run is created, never the fire: its
event, idempotency key and Run keep the nominal instant. The plugin runs such a trigger on a clock `jitter` behind
the real one: a fire is due at nominal + jitter, its lateness (the starting deadline) counts from then, catch-up
after a restart looks at the fires due by now, and a new task counts from now - jitter, so a fire whose nominal
instant has passed but whose Run is not due yet is neither lost nor created early. `next_fire` is nominal.

No fire is dropped silently. A fire whose Run cannot be created (the apiserver is down, slow or refusing) stays
pending in its task and is retried with backoff, in order, until it is created, passes its deadline (then it is
reported missed) or is crowded out: while fires are pending, a fire that comes due joins them and the queue is
trimmed the way catch-up after a restart is (`All` keeps the newest `catch_up_limit`, `Latest` and `None` the newest
one; every fire trimmed is reported missed). A fire the sink refuses for good (`PermanentSinkError`) is reported
failed and not retried. Pending fires live only in memory: after a restart or a leader change, catch-up from the
newest accounted fire finds them again (docs/architecture.md, "The path of a cron fire").

Two optional collaborators come through `deps`: a `CronGate` asked before each fire of a spec whose concurrency
policy is not Allow, and a `CronObserver` told about every outcome (the operator turns those into status and
Kubernetes Events). Both default to no-ops, so the plugin runs on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

import structlog

from stargraph.clock import Clock, SystemClock
from stargraph.fires.event import TriggerEvent
from stargraph.fires.keys import cron_idempotency_key
from stargraph.http import Route
from stargraph.metrics import Metrics
from stargraph.runs import PermanentSinkError, RunSubmitter, SubmitResult
from stargraph.triggers.cron_schedule import CronSchedule, plan_catch_up
from stargraph.triggers.specs import CronSpec

__all__ = ["Backoff", "CronGate", "CronObserver", "CronTriggerPlugin", "cron_event"]

log = structlog.get_logger("stargraph.triggers.cron")


class CronGate(Protocol):
    async def admit(self, spec: CronSpec, fire: datetime) -> bool:
        """Whether the fire may create its Run now (concurrency policy); may act first, e.g. delete for Replace."""
        ...


class CronObserver(Protocol):
    def fired(self, spec: CronSpec, fire: datetime, result: SubmitResult) -> None: ...
    def skipped(self, spec: CronSpec, fire: datetime) -> None: ...
    def missed(self, spec: CronSpec, *, count: int, latest: datetime) -> None:
        """`count` fires will never get their Run; `latest` is the newest of them (catch-up resumes after it)."""
        ...

    def failed(self, spec: CronSpec, fire: datetime, error: Exception) -> None: ...


class _AdmitAll:
    async def admit(self, spec: CronSpec, fire: datetime) -> bool:
        return True


class _Silent:
    def fired(self, spec: CronSpec, fire: datetime, result: SubmitResult) -> None: ...
    def skipped(self, spec: CronSpec, fire: datetime) -> None: ...
    def missed(self, spec: CronSpec, *, count: int, latest: datetime) -> None: ...
    def failed(self, spec: CronSpec, fire: datetime, error: Exception) -> None: ...


class Backoff:
    """Delays between submissions of a pending fire: doubling from `first` up to `cap`, until `reset()`.

    Each submission is itself a few quick attempts by the scheduler. The cap is low because it is how long a
    recovered apiserver may wait for the pending fire's Run.
    """

    def __init__(self, *, first: float = 0.5, cap: float = 5.0) -> None:
        self._first = first
        self._cap = cap
        self._delay: float | None = None

    @property
    def retrying(self) -> bool:
        return self._delay is not None

    def next(self) -> float:
        self._delay = self._first if self._delay is None else min(self._delay * 2, self._cap)
        return self._delay

    def reset(self) -> None:
        self._delay = None


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
        self._scheduler: RunSubmitter | None = None
        self._clock: Clock = SystemClock()
        self._metrics = Metrics()
        self._gate: CronGate = _AdmitAll()
        self._observer: CronObserver = _Silent()
        self._specs: dict[str, tuple[CronSpec, CronSchedule]] = {}
        self._backlog: dict[str, list[datetime]] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._next: dict[str, datetime] = {}  # the fire each running task sleeps towards
        self._taken: dict[str, datetime] = {}  # the newest fire each trigger's tasks took (emitted or queued)
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
        schedule = CronSchedule.parse(spec.schedule, spec.time_zone, daylight_saving=spec.daylight_saving)
        trigger_id = spec.trigger_id
        self._specs[trigger_id] = (spec, schedule)
        self._cancel(trigger_id)
        self._backlog.pop(trigger_id, None)
        if catch_up and spec.resume_from is not None and not spec.suspend:
            plan = plan_catch_up(
                schedule,
                since=spec.resume_from,
                now=self._clock.now() - spec.jitter,
                deadline_seconds=spec.starting_deadline_seconds,
                policy=spec.catch_up,
                limit=spec.catch_up_limit,
            )
            if plan.missed and plan.latest_missed is not None:
                self._report_missed(spec, count=plan.missed, latest=plan.latest_missed)
            if plan.create:
                self._backlog[trigger_id] = plan.create
        if self._started:
            self._launch(trigger_id)
        return schedule

    def remove(self, trigger_id: str) -> None:
        self._specs.pop(trigger_id, None)
        self._backlog.pop(trigger_id, None)
        self._taken.pop(trigger_id, None)
        self._cancel(trigger_id)

    def next_fire(self, trigger_id: str) -> datetime | None:
        entry = self._specs.get(trigger_id)
        if entry is None or entry[0].suspend:
            return None
        known = self._next.get(trigger_id)
        return known if known is not None else entry[1].next_after(self._start(entry[0]))

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
            self._run(spec, schedule, self._start(spec), backlog), name=f"cron {trigger_id}"
        )

    def _start(self, spec: CronSpec) -> datetime:
        """Where a new task counts from: now (less the jitter), or the newest fire already taken or accounted if later.

        It is later only after the wall clock stepped back (an NTP correction); counting from now would then
        emit again fires that were emitted already, or that have their Runs (`resume_from`, after a restart).
        """
        floors = (self._taken.get(spec.trigger_id), spec.resume_from)
        return max((self._clock.now() - spec.jitter, *(floor for floor in floors if floor is not None)))

    def _report_missed(self, spec: CronSpec, *, count: int, latest: datetime) -> None:
        self._metrics.missed.inc(count)
        log.warning(
            "cron fires will not get their Runs", trigger_id=spec.trigger_id, count=count, latest=latest.isoformat()
        )
        self._observer.missed(spec, count=count, latest=latest)

    async def _run(self, spec: CronSpec, schedule: CronSchedule, start: datetime, backlog: list[datetime]) -> None:
        pending, backoff, jitter = deque(backlog), Backoff(), spec.jitter
        # The next fire is computed afresh each time rather than kept in a live cronsim iterator: a sleeping task
        # then holds a few hundred bytes instead of kilobytes, which matters at tens of thousands of triggers.
        fire = self._next[spec.trigger_id] = schedule.next_after(start)
        while True:
            await self._drain(spec, pending, backoff=backoff, jitter=jitter, until=fire + jitter)
            # With fires still pending the scheduler is not idle: there is nothing to wait for before reading ahead.
            following = schedule.next_after(fire) if pending else await self._following(schedule, fire, jitter)
            await self._clock.sleep_until(fire + jitter)
            pending.append(fire)
            self._taken[spec.trigger_id] = fire
            self._trim(spec, pending)
            self._next[spec.trigger_id] = following  # before the fire is reported: the report says what comes next
            fire = following

    async def _drain(
        self, spec: CronSpec, pending: deque[datetime], *, backoff: Backoff, jitter: timedelta, until: datetime
    ) -> None:
        """Create the pending fires' Runs, oldest first; return when none is left, or when `until` comes first."""
        while pending:
            fire = pending[0]
            late = (self._clock.now() - (fire + jitter)).total_seconds()
            if spec.starting_deadline_seconds is not None and late > spec.starting_deadline_seconds:
                pending.popleft()
                # Another process may have created it meanwhile (a replica that took over while this one was
                # frozen): a fire with a Run is never counted missed.
                assert self._scheduler is not None
                existing = self._scheduler.known(cron_idempotency_key(spec.trigger_id, fire), source="cron")
                if existing is not None:
                    self._observer.fired(spec, fire, existing)
                else:
                    self._report_missed(spec, count=1, latest=fire)
                continue
            try:
                result = await self._fire(spec, fire, due=fire + jitter)
            except Exception as exc:
                if not backoff.retrying:
                    log.warning(
                        "cron fire pending: its Run could not be created; retrying",
                        trigger_id=spec.trigger_id,
                        fire=fire.isoformat(),
                        error=repr(exc),
                    )
                await self._clock.sleep_until(min(self._clock.now() + timedelta(seconds=backoff.next()), until))
                if self._clock.now() >= until:
                    return
                continue
            pending.popleft()
            backoff.reset()
            if result is not None:
                self._observer.fired(spec, fire, result)

    def _trim(self, spec: CronSpec, pending: deque[datetime]) -> None:
        keep = spec.catch_up_limit if spec.catch_up == "All" else 1
        if len(pending) > keep:
            dropped = [pending.popleft() for _ in range(len(pending) - keep)]
            self._report_missed(spec, count=len(dropped), latest=dropped[-1])

    async def _following(self, schedule: CronSchedule, fire: datetime, jitter: timedelta) -> datetime:
        """The fire after `fire`, worked out ahead while no Run is being created.

        Knowing it before `fire` is due means a burst of simultaneous fires does nothing but create Runs; working it
        out waits (at the latest until `fire` is due) for the scheduler to be idle, because cronsim needs up to
        ~0.1 ms for a sparse schedule, and a thousand of those would compete with the burst of Runs for the CPU.
        """
        assert self._scheduler is not None
        patience = (fire + jitter - self._clock.now()).total_seconds()
        if patience > 0:
            # A timeout scope rather than wait_for: no extra task per fire, and no suspension when already idle.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(patience):
                    await self._scheduler.wait_idle()
        return schedule.next_after(fire)

    async def _fire(self, spec: CronSpec, fire: datetime, *, due: datetime) -> SubmitResult | None:
        """The fire's Run, or None when it was skipped (concurrency policy) or refused for good (both reported).

        Any other error propagates: the fire stays pending and is retried.
        """
        assert self._scheduler is not None, "init() must run before start()"
        try:
            if spec.concurrency_policy != "Allow" and not await self._gate.admit(spec, fire):
                self._observer.skipped(spec, fire)
                return None
            return await self._scheduler.submit(cron_event(spec, fire), trigger=spec.trigger, due=due)
        except PermanentSinkError as exc:
            log.error(
                "cron fire refused; it will not get a Run",
                trigger_id=spec.trigger_id,
                fire=fire.isoformat(),
                error=repr(exc),
            )
            self._observer.failed(spec, fire, exc)
            return None
