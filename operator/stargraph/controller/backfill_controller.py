"""Backfill objects → the Runs of every fire of a CronTrigger's schedule in a past range, each created once.

Only the leader works (like cron firing); every replica keeps the objects, ready to lead. One task per Backfill
plans the fires (`triggers.backfill.plan_backfill`: a bad spec, an unknown trigger or too many fires is Stalled,
naming the field) and submits them oldest first, up to 32 at a time, through the scheduler as live fires are
submitted: the same event, idempotency key, Run name and annotations, so a fire that already has its Run is found
(`alreadyExisting`) and a live fire racing the backfill on the same fire makes one Run (the apiserver's 409 settles
it). The Runs carry the trigger's Run template plus the label `stargraph.io/backfill`.

Progress lives in the Backfill's status: `lastSlotTime` is the newest fire whose Run exists, with every older one
accounted in the counts (creations finishing out of order are accounted in fire order), and a restart (or a new
leader) resumes after it. A Run created just before a crash, whose status write was lost, is found again and counted
created because it carries the label. So that one is there to be found, the trigger's history limits do not prune a
Backfill's Run for a fire after the `lastSlotTime` its object holds (`holds`); the trigger is told when they may
(`runs_released`). A Backfill that is Ready is done and never looked at again.

`parallelism` bounds this Backfill's unfinished Runs (phase not Succeeded or Failed, whoever sets it: the Run's Job,
or for a Run without a jobTemplate its executor). The trigger's `concurrencyPolicy` applies too: under Forbid or
Replace a fire's Run is created only when no Run of the trigger is unfinished, live ones included, and a backfill
never deletes a Run. Live fires judge the backfill's Runs like any other Run of the trigger.

A CronTrigger created after its Backfill is picked up when it appears; an edit of the trigger's spec (a new
generation) re-plans the fires not yet done.
"""

from __future__ import annotations

import asyncio
from asyncio import FIRST_COMPLETED
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from pydantic import ValidationError

from stargraph.api.v1alpha1 import GROUP, VERSION, BackfillSpec, ConcurrencyPolicy, CronTriggerSpec
from stargraph.clock import Clock
from stargraph.controller import conditions
from stargraph.controller.backfill_runs import LABEL_BACKFILL, BackfillRuns
from stargraph.controller.cron_state import fmt
from stargraph.controller.event_recorder import EventRecorder
from stargraph.controller.kinds import CRON, essentials, object_ref, parse_time
from stargraph.controller.reporting import report_stalled
from stargraph.controller.status_writer import StatusWriter
from stargraph.fires.keys import cron_idempotency_key
from stargraph.k8s.client import KubeClient
from stargraph.k8s.errors import NotFound
from stargraph.k8s.paths import path
from stargraph.models import describe_validation_error
from stargraph.runs import (
    PermanentSinkError,
    RunIndex,
    RunInfo,
    RunSubmitter,
    SchedulerStopped,
    SubmitResult,
    TriggerObject,
    label_value,
)
from stargraph.triggers.backfill import BackfillPlan, plan_backfill
from stargraph.triggers.cron import Backoff, cron_event
from stargraph.triggers.kinds import TriggerKind
from stargraph.triggers.specs import CronSpec

__all__ = ["BACKFILL", "BackfillController"]

log = structlog.get_logger("stargraph.controller")

BACKFILL = TriggerKind(group=GROUP, version=VERSION, plural="backfills", kind="Backfill")

Key = tuple[str, str]
"""(namespace, name) of a Backfill, or of a CronTrigger."""

_PLANNED_SHOWN = 100  # dry run: how many of the fires that would get a Run the status lists
_RECHECK_SECONDS = 30.0  # a Backfill waiting for room looks again at least this often, wake-up or not
_WINDOW = 32  # creations under way at once per Backfill: the operator's scheduler has as many workers


@dataclass
class _Progress:
    created: int = 0
    existing: int = 0
    last: datetime | None = None
    conditions: list[dict[str, Any]] | None = None
    written: dict[str, Any] | None = None
    """The status last handed to the status writer: a wake-up that changes nothing writes nothing."""


_Window = deque[tuple[datetime, "asyncio.Task[SubmitResult | None]"]]
"""The fires whose Runs are being created, oldest first."""


class _Replan(Exception):
    """The trigger changed: plan the fires not yet done again."""


class BackfillController:
    def __init__(
        self,
        *,
        api: KubeClient,
        scheduler: RunSubmitter,
        index: RunIndex,
        runs: BackfillRuns,
        status: StatusWriter,
        events: EventRecorder,
        clock: Clock,
        runs_released: Callable[[Key], None] = lambda trigger: None,
        leading: bool = True,
    ) -> None:
        self.leading = leading
        self._api = api
        self._runs_released = runs_released
        self._scheduler = scheduler
        self._index = index
        self._runs = runs
        self._status = status
        self._events = events
        self._clock = clock
        self._bodies: dict[Key, dict[str, Any]] = {}
        self._by_trigger: dict[Key, set[Key]] = {}
        self._tasks: dict[Key, tuple[str, asyncio.Task[None]]] = {}
        self._planned: dict[Key, tuple[str, int] | None] = {}
        """The trigger (uid, generation) each running task planned with; None: it found no trigger."""
        self._stale: set[Key] = set()
        self._progress: dict[str, _Progress] = {}
        """By Backfill uid: what this process did, ahead of the status it wrote."""
        self._done: set[str] = set()

    # -- lifecycle ---------------------------------------------------------------------------------------------

    async def lead(self) -> None:
        self.leading = True
        for key in list(self._bodies):
            self._ensure(key)

    async def stop_leading(self) -> None:
        self.leading = False
        await self.stop()

    async def stop(self) -> None:
        tasks = [task for _, task in self._tasks.values()]
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- events ------------------------------------------------------------------------------------------------

    async def reconcile(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        metadata = body["metadata"]
        key = (metadata["namespace"], metadata["name"])
        if event_type == "DELETED" or metadata.get("deletionTimestamp"):
            self._forget(key)
            return
        previous = self._bodies.get(key)
        if previous is not None:
            self._by_trigger.get(_trigger_key(previous), set()).discard(key)
            if _recorded(previous) != _recorded(body):
                self._runs_released(_trigger_key(body))
        self._bodies[key] = essentials(body)
        self._by_trigger.setdefault(_trigger_key(body), set()).add(key)
        if self.leading:
            self._ensure(key)

    def trigger_changed(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """A CronTrigger event: Backfills waiting for it start, running ones re-plan when its spec changed."""
        metadata = body["metadata"]
        gone = event_type == "DELETED" or bool(metadata.get("deletionTimestamp"))
        seen = None if gone else (metadata["uid"], metadata.get("generation", 1))
        for key in self._by_trigger.get((metadata["namespace"], metadata["name"]), ()):
            # Most trigger events are its status changing at each fire: nothing to do for a Backfill.
            if key in self._planned and self._planned[key] == seen:
                continue
            self._stale.add(key)
            if self.leading:
                self._ensure(key)

    # -- the work ----------------------------------------------------------------------------------------------

    def _ensure(self, key: Key) -> None:
        body = self._bodies[key]
        uid = body["metadata"]["uid"]
        running = self._tasks.get(key)
        if running is not None and not running[1].done():
            if running[0] == uid:
                return
            running[1].cancel()  # an object of the same name replaced this one while the operator was not looking
        if uid in self._done or _finished(body):
            return
        self._tasks[key] = (uid, asyncio.create_task(self._run(key, body), name=f"backfill {key[0]}/{key[1]}"))

    def holds(self, run: RunInfo) -> bool:
        """Whether this Run of a Backfill must not be pruned yet: its fire is after the progress the Backfill's
        object records, so a restart would look for it."""
        namespace = run.ref.namespace
        made_by = self._runs.made_by(namespace, run.ref.name)
        if made_by is None:
            return False
        for (where, name), body in self._bodies.items():
            if where == namespace and label_value(name) == made_by:
                done, last = _recorded(body)
                fire = parse_time(run.scheduled_fire)
                return not done and (last is None or fire is None or fire > last)
        return False  # its Backfill is gone: nothing resumes it

    def _forget(self, key: Key) -> None:
        body = self._bodies.pop(key, None)
        if body is not None:
            self._runs_released(_trigger_key(body))
            self._by_trigger.get(_trigger_key(body), set()).discard(key)
            self._progress.pop(body["metadata"]["uid"], None)
            self._done.discard(body["metadata"]["uid"])
        running = self._tasks.pop(key, None)
        if running is not None:
            running[1].cancel()
        self._planned.pop(key, None)
        self._stale.discard(key)
        self._status.forget(plural=BACKFILL.plural, namespace=key[0], name=key[1])

    async def _run(self, key: Key, body: Mapping[str, Any]) -> None:
        try:
            while True:
                try:
                    await self._backfill(key, body)
                    return
                except _Replan:
                    log.info("backfill re-planned: its trigger changed", backfill=f"{key[0]}/{key[1]}")
        except SchedulerStopped:
            return  # shutting down; the next leader resumes

    async def _backfill(self, key: Key, body: Mapping[str, Any]) -> None:
        metadata = body["metadata"]
        generation = metadata.get("generation", 1)
        self._stale.discard(key)
        try:
            spec = BackfillSpec.model_validate(body.get("spec") or {})
        except ValidationError as exc:
            self._stall(body, reason="InvalidSpec", message=f"spec: {describe_validation_error(exc)}")
            return
        trigger_body = await self._read_trigger(key[0], spec) if spec.trigger_ref.kind == CRON.kind else None
        self._planned[key] = None if trigger_body is None else _identity(trigger_body)
        trigger: CronTriggerSpec | None = None
        if trigger_body is not None:
            try:
                trigger = CronTriggerSpec.model_validate(trigger_body.get("spec") or {})
            except ValidationError as exc:
                message = f"CronTrigger {spec.trigger_ref.name!r} is invalid: spec: {describe_validation_error(exc)}"
                self._stall(body, reason="InvalidTrigger", message=f"spec.triggerRef.name: {message}")
                return
        created = parse_time(metadata.get("creationTimestamp")) or self._clock.now()
        plan = await asyncio.to_thread(plan_backfill, spec, trigger=trigger, created=created)
        if plan.errors:
            message = "; ".join(str(error) for error in plan.errors)
            self._stall(body, reason=plan.errors[0].reason, message=message)
            return
        assert trigger is not None and trigger_body is not None
        progress = self._progress.setdefault(metadata["uid"], _from_status(body))
        cron_spec = _cron_spec(key[1], trigger_body, trigger)
        if spec.dry_run:
            self._dry_run(body, plan, cron_spec)
            return
        exclusive = trigger.concurrency_policy != ConcurrencyPolicy.ALLOW
        window: _Window = deque()
        try:
            for slot in plan.slots:
                if progress.last is not None and slot <= progress.last:
                    continue
                if not await self._room(
                    key, body, plan, progress, window, parallelism=spec.parallelism, exclusive=exclusive
                ):
                    return
                window.append((slot, asyncio.create_task(self._create(key, body, cron_spec, slot))))
            if window:
                await asyncio.wait([task for _, task in window])
            if not self._settle(key, body, plan, progress, window):
                return
        finally:
            for _, task in window:
                task.cancel()  # only the waiting: a creation the scheduler started completes all the same
        message = f"{progress.created} Runs created, {progress.existing} existed already"
        self._report(body, plan, progress, conditions.ready(generation, message=message))
        self._done.add(metadata["uid"])
        self._events.normal(object_ref(body, BACKFILL), "BackfillComplete", message)
        log.info(
            "backfill complete", backfill=f"{key[0]}/{key[1]}", created=progress.created, existing=progress.existing
        )

    async def _read_trigger(self, namespace: str, spec: BackfillSpec) -> dict[str, Any] | None:
        target = path(
            group=CRON.group, version=CRON.version, plural=CRON.plural, namespace=namespace, name=spec.trigger_ref.name
        )
        backoff = Backoff()
        while True:
            try:
                return await self._api.get(target)
            except NotFound:
                return None
            except Exception as exc:
                log.warning("backfill: trigger not read; retrying", trigger=f"{namespace}/{target}", error=repr(exc))
                await asyncio.sleep(backoff.next())

    async def _room(
        self,
        key: Key,
        body: Mapping[str, Any],
        plan: BackfillPlan,
        progress: _Progress,
        window: _Window,
        *,
        parallelism: int,
        exclusive: bool,
    ) -> bool:
        """Wait until the next Run may be created (parallelism, concurrency policy, the window of creations),
        accounting the creations that finished meanwhile. False when a Run was refused (the Backfill is Stalled);
        `_Replan` when the trigger changed (once the creations under way are accounted)."""
        trigger_key = (key[0], CRON.kind.lower(), body["spec"]["triggerRef"]["name"])
        while True:
            if not self._settle(key, body, plan, progress, window):
                return False
            creating = sum(1 for _, task in window if not task.done())
            if key in self._stale:
                if window:
                    await asyncio.wait([task for _, task in window])
                    continue
                raise _Replan
            # A Run being created is unfinished already: it counts against parallelism and the concurrency policy.
            mine = self._runs.unfinished(*key) + creating
            others = exclusive and (creating > 0 or any(run.active for run in self._index.runs_of(trigger_key)))
            if mine < parallelism and not others and len(window) < _WINDOW:
                return True
            if not creating:
                why = (
                    "waiting for the trigger's unfinished Runs (its concurrencyPolicy forbids concurrent Runs)"
                    if others
                    else f"waiting: {mine} of this Backfill's Runs unfinished (parallelism {parallelism})"
                )
                generation = body["metadata"].get("generation", 1)
                waiting = conditions.reconciling(generation, reason="Backfilling", message=why)
                self._report(body, plan, progress, waiting)
            changed = asyncio.ensure_future(self._runs.changed(timeout=_RECHECK_SECONDS))
            await asyncio.wait([changed, *(task for _, task in window if not task.done())], return_when=FIRST_COMPLETED)
            changed.cancel()

    def _settle(
        self, key: Key, body: Mapping[str, Any], plan: BackfillPlan, progress: _Progress, window: _Window
    ) -> bool:
        """Account the finished creations at the head of the window, in fire order, so that the counts in the status
        always describe exactly the fires up to `lastSlotTime` (a restart resumes after it and counts nothing twice).
        False when a Run was refused."""
        moved = False
        while window and window[0][1].done():
            slot, task = window.popleft()
            result = task.result()  # SchedulerStopped propagates: shutting down
            if result is None:
                return False
            if result.created or self._runs.ours(key[0], key[1], result.run.name):
                progress.created += 1
            else:
                progress.existing += 1
            progress.last = slot
            moved = True
        if moved:
            generation = body["metadata"].get("generation", 1)
            self._report(body, plan, progress, conditions.reconciling(generation, reason="Backfilling", message=""))
        return True

    async def _create(self, key: Key, body: Mapping[str, Any], spec: CronSpec, slot: datetime) -> SubmitResult | None:
        result = await self._submit(body, spec, slot)
        if result is not None and result.created:
            self._runs.created(key[0], key[1], result.run.name)
        return result

    async def _submit(self, body: Mapping[str, Any], spec: CronSpec, slot: datetime) -> SubmitResult | None:
        """The fire's Run (created or found); None when the apiserver refused it for good (the Backfill is Stalled)."""
        backoff = Backoff()
        while True:
            try:
                return await self._scheduler.submit(cron_event(spec, slot), trigger=spec.trigger)
            except PermanentSinkError as exc:
                self._stall(body, reason="RunRefused", message=f"the Run of the fire at {fmt(slot)} was refused: {exc}")
                return None
            except SchedulerStopped:
                raise
            except Exception as exc:
                if not backoff.retrying:
                    log.warning("backfill: Run not created; retrying", fire=fmt(slot), error=repr(exc))
                await asyncio.sleep(backoff.next())

    def _dry_run(self, body: Mapping[str, Any], plan: BackfillPlan, spec: CronSpec) -> None:
        missing = [
            slot for slot in plan.slots if self._index.lookup(cron_idempotency_key(spec.trigger_id, slot)) is None
        ]
        existing = len(plan.slots) - len(missing)
        message = f"dry run: {len(missing)} Runs would be created, {existing} exist already; nothing was created"
        progress = _Progress(existing=existing)
        generation = body["metadata"].get("generation", 1)
        self._report(
            body,
            plan,
            progress,
            conditions.ready(generation, message=message),
            remaining=len(missing),
            planned=missing[:_PLANNED_SHOWN],
        )
        self._done.add(body["metadata"]["uid"])

    def _report(
        self,
        body: Mapping[str, Any],
        plan: BackfillPlan,
        progress: _Progress,
        wanted: list[dict[str, Any]],
        *,
        remaining: int | None = None,
        planned: list[datetime] | None = None,
    ) -> None:
        metadata = body["metadata"]
        generation = metadata.get("generation", 1)
        current = (
            progress.conditions if progress.conditions is not None else (body.get("status") or {}).get("conditions")
        )
        progress.conditions = conditions.conditions_for(wanted, current, self._clock.now())
        left = sum(1 for slot in plan.slots if progress.last is None or slot > progress.last)
        status: dict[str, Any] = {
            "observedGeneration": generation,
            "conditions": progress.conditions,
            "slots": len(plan.slots),
            "created": progress.created,
            "alreadyExisting": progress.existing,
            "remaining": left if remaining is None else remaining,
            "lastSlotTime": fmt(progress.last),
        }
        if planned is not None:
            status["plannedSlots"] = [fmt(slot) for slot in planned]
        if status == progress.written:
            return
        progress.written = status
        self._status.update(
            plural=BACKFILL.plural, namespace=metadata["namespace"], name=metadata["name"], status=status
        )

    def _stall(self, body: Mapping[str, Any], *, reason: str, message: str) -> None:
        if report_stalled(
            body,
            kind=BACKFILL,
            reason=reason,
            message=message,
            status=self._status,
            events=self._events,
            clock=self._clock,
        ):
            metadata = body["metadata"]
            log.info("backfill stalled", backfill=f"{metadata['namespace']}/{metadata['name']}", reason=reason)


def _cron_spec(backfill: str, trigger_body: Mapping[str, Any], trigger: CronTriggerSpec) -> CronSpec:
    """The spec a live fire of the trigger is built from (so the event, key and Run are the live fire's), with the
    Backfill's label added to the Runs it creates."""
    owner = TriggerObject.from_body(trigger_body)
    labels = {**owner.run_template.labels, LABEL_BACKFILL: label_value(backfill)}
    labelled = TriggerObject(
        kind=owner.kind,
        name=owner.name,
        namespace=owner.namespace,
        uid=owner.uid,
        api_version=owner.api_version,
        run_template=owner.run_template.model_copy(update={"labels": labels}),
    )
    return CronSpec(
        name=owner.name,
        namespace=owner.namespace,
        schedule=trigger.schedule,
        time_zone=trigger.time_zone,
        trigger=labelled,
    )


def _trigger_key(body: Mapping[str, Any]) -> Key:
    return body["metadata"]["namespace"], ((body.get("spec") or {}).get("triggerRef") or {}).get("name", "")


def _identity(body: Mapping[str, Any]) -> tuple[str, int]:
    return body["metadata"]["uid"], body["metadata"].get("generation", 1)


def _finished(body: Mapping[str, Any]) -> bool:
    """Ready for its generation: every fire has its Run (or, for a dry run, was reported)."""
    status = body.get("status") or {}
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or ())
    return ready and status.get("observedGeneration") == body["metadata"].get("generation", 1)


def _recorded(body: Mapping[str, Any]) -> tuple[bool, datetime | None]:
    """What the object records of the Backfill's progress: whether it is done, and its `lastSlotTime`."""
    return _finished(body), parse_time((body.get("status") or {}).get("lastSlotTime"))


def _from_status(body: Mapping[str, Any]) -> _Progress:
    status = body.get("status") or {}
    return _Progress(
        created=int(status.get("created") or 0),
        existing=int(status.get("alreadyExisting") or 0),
        last=parse_time(status.get("lastSlotTime")),
    )
