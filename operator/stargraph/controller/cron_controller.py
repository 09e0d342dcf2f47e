"""CronTrigger objects → the cron plugin, and the cron plugin's outcomes → status, Events and Run history.

The controller is also the plugin's `CronGate` (concurrency policy, judged on the Run index's active Runs) and its
`CronObserver` (status fields and Events per fire). Reconciling is idempotent and cheap when nothing changed: an
object whose generation was already applied (our own status writes come back as such events) costs a dict lookup.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog
from pydantic import ValidationError

from stargraph.api.v1alpha1 import CronTriggerSpec
from stargraph.clock import Clock
from stargraph.controller import conditions
from stargraph.controller.event_recorder import EventRecorder
from stargraph.controller.kinds import CRON, object_ref, parse_time
from stargraph.controller.reporting import report_stalled
from stargraph.controller.status_writer import StatusWriter, yield_to_runs
from stargraph.k8s.client import KubeClient
from stargraph.k8s.errors import KubeError, NotFound
from stargraph.k8s.events import ObjectRef
from stargraph.k8s.run_index import RunIndex, RunInfo, TriggerKey
from stargraph.k8s.run_sink import runs_path
from stargraph.runs import TriggerObject, trigger_payload
from stargraph.scheduler.sinks import PermanentSinkError, SubmitResult
from stargraph.triggers.base import describe_validation_error
from stargraph.triggers.cron import CronTriggerPlugin
from stargraph.triggers.cron_schedule import ScheduleError
from stargraph.triggers.keys import format_fire_time, trigger_id
from stargraph.triggers.specs import CronSpec

__all__ = ["CronController"]

log = structlog.get_logger("stargraph.controller")

KIND, PLURAL = CRON.kind, CRON.plural


@dataclass
class _Trigger:
    uid: str
    generation: int
    spec: CronTriggerSpec
    ref: ObjectRef
    last_schedule_time: datetime | None
    missed: int
    last_missed: datetime | None
    active: list[str] = field(default_factory=list)


def _fmt(when: datetime | None) -> str | None:
    return format_fire_time(when) if when else None


class CronController:
    def __init__(
        self,
        *,
        api: KubeClient,
        plugin: CronTriggerPlugin,
        index: RunIndex,
        status: StatusWriter,
        events: EventRecorder,
        clock: Clock,
        runs_created: Callable[[], Awaitable[None]],
        leading: bool = True,
    ) -> None:
        self.leading = leading
        self._runs_created = runs_created
        self._bodies: dict[tuple[str, str], Mapping[str, Any]] = {}
        self._api = api
        self._plugin = plugin
        self._index = index
        self._status = status
        self._events = events
        self._clock = clock
        self._triggers: dict[tuple[str, str], _Trigger] = {}
        self._dirty: set[tuple[str, str]] = set()
        self._wake = asyncio.Event()
        self._housekeeper: asyncio.Task[None] | None = None
        index.subscribe(self._runs_changed)

    # -- lifecycle ---------------------------------------------------------------------------------------------

    async def start(self) -> None:
        self._housekeeper = asyncio.create_task(self._keep_house(), name="cron-housekeeping")

    async def stop(self) -> None:
        if self._housekeeper is not None:
            self._housekeeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._housekeeper

    # -- reconciliation ----------------------------------------------------------------------------------------

    async def lead(self) -> None:
        """Start firing: every known trigger is applied as new, so fires missed meanwhile are caught up."""
        self.leading = True
        for count, body in enumerate(list(self._bodies.values()), 1):
            self.reconcile(None, body)
            if count % 200 == 0:
                await asyncio.sleep(0)  # thousands of triggers: let webhooks be served meanwhile

    async def stop_leading(self) -> None:
        """Stop firing at once; the triggers stay known, ready for the next `lead()`."""
        self.leading = False
        for namespace, name in list(self._triggers):
            self._plugin.remove(trigger_id("cron", namespace, name))
        self._triggers.clear()

    def reconcile(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        metadata = body["metadata"]
        key = (metadata["namespace"], metadata["name"])
        if event_type == "DELETED" or metadata.get("deletionTimestamp"):
            self._bodies.pop(key, None)
            self._forget(key)
            return
        self._bodies[key] = _essentials(body)
        if not self.leading:
            return  # another replica fires and reports; this one keeps the object for when it leads
        uid, generation = metadata["uid"], metadata.get("generation", 1)
        known = self._triggers.get(key)
        if known is not None and known.uid == uid and known.generation == generation:
            return
        first = known is None or known.uid != uid
        status = body.get("status") or {}
        ref = object_ref(body, CRON)
        try:
            spec = CronTriggerSpec.model_validate(body.get("spec") or {})
        except ValidationError as exc:
            self._stall(body, reason="InvalidSpec", message=f"spec: {describe_validation_error(exc)}")
            return
        trigger = TriggerObject(kind=KIND, name=key[1], namespace=key[0], uid=uid, run_template=spec.run_template)
        if known is not None and not first:
            # What this process recorded may not be written back yet: the object's status can lag behind it.
            last, last_missed, missed = known.last_schedule_time, known.last_missed, known.missed
        else:
            last = parse_time(status.get("lastScheduleTime"))
            last_missed = parse_time(status.get("lastMissedScheduleTime"))
            missed = int(status.get("missedSchedules") or 0)
        cron_spec = CronSpec(
            name=key[1],
            namespace=key[0],
            schedule=spec.schedule,
            time_zone=spec.time_zone,
            suspend=spec.suspend,
            starting_deadline_seconds=spec.starting_deadline_seconds,
            catch_up=spec.catch_up.value,
            catch_up_limit=spec.catch_up_limit,
            concurrency_policy=spec.concurrency_policy.value,
            resume_from=self._resume_from(key, last, last_missed, parse_time(metadata.get("creationTimestamp"))),
            payload=trigger_payload(trigger),
        )
        self._triggers[key] = _Trigger(
            uid=uid,
            generation=generation,
            spec=spec,
            ref=ref,
            last_schedule_time=last,
            missed=missed,
            last_missed=last_missed,
            active=[item.get("name", "") for item in status.get("active") or ()],
        )
        try:
            schedule = self._plugin.apply(cron_spec, catch_up=first)
        except ScheduleError as exc:
            del self._triggers[key]
            self._stall(body, reason=exc.reason, message=f"spec.{exc}")
            return
        wanted = {
            "observedGeneration": generation,
            "conditions": conditions.conditions_for(
                conditions.ready(generation, message="suspended" if spec.suspend else ""),
                status.get("conditions"),
                self._clock.now(),
            ),
            "scheduleDescription": schedule.explain(),
            "nextScheduleTime": _fmt(self._plugin.next_fire(cron_spec.trigger_id)),
        }
        if any(status.get(name) != value for name, value in wanted.items()):
            self._status.update(plural=PLURAL, namespace=key[0], name=key[1], status=wanted)
        self._dirty.add(key)
        self._wake.set()

    def _resume_from(self, key: tuple[str, str], *accounted: datetime | None) -> datetime | None:
        """The newest fire already accounted for: created (in status, or only as a Run), or counted missed.

        `accounted` holds the status times and the trigger's creation: a trigger never catches up a fire from before
        it existed, whatever Runs an earlier trigger of the same name left behind.

        A Run can exist although the status write naming it was lost (the process was killed in between): its fire
        is accounted for all the same, so catch-up neither creates it again nor counts it missed.
        """
        fires = [
            parse_time(run.scheduled_fire)
            for run in self._index.runs_of((key[0], "crontrigger", key[1]))
            if run.ref.trigger_id.startswith("cron:")
        ]
        return max((when for when in (*accounted, *fires) if when is not None), default=None)

    def _stall(self, body: Mapping[str, Any], *, reason: str, message: str) -> None:
        metadata = body["metadata"]
        key = (metadata["namespace"], metadata["name"])
        self._plugin.remove(trigger_id("cron", *key))
        self._triggers.pop(key, None)
        stalled = report_stalled(
            body,
            kind=CRON,
            reason=reason,
            message=message,
            status=self._status,
            events=self._events,
            clock=self._clock,
            clear={"nextScheduleTime": None},
        )
        if stalled:
            log.info("crontrigger stalled", trigger=f"{key[0]}/{key[1]}", reason=reason, message=message)

    def _forget(self, key: tuple[str, str]) -> None:
        self._plugin.remove(trigger_id("cron", *key))
        self._triggers.pop(key, None)
        self._status.forget(plural=PLURAL, namespace=key[0], name=key[1])

    # -- CronGate ------------------------------------------------------------------------------------------------

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

    # -- CronObserver --------------------------------------------------------------------------------------------

    def fired(self, spec: CronSpec, fire: datetime, result: SubmitResult) -> None:
        trigger = self._triggers.get((spec.namespace, spec.name))
        if trigger is None:
            return
        if trigger.last_schedule_time is None or fire > trigger.last_schedule_time:
            trigger.last_schedule_time = fire
        self._status.update(
            plural=PLURAL,
            namespace=spec.namespace,
            name=spec.name,
            status={
                "lastScheduleTime": _fmt(trigger.last_schedule_time),
                "lastRunName": result.run.name,
                "nextScheduleTime": _fmt(self._plugin.next_fire(spec.trigger_id)),
            },
        )
        if result.created:
            self._events.normal(trigger.ref, "Fired", f"created Run {result.run.name} for {format_fire_time(fire)}")

    def skipped(self, spec: CronSpec, fire: datetime) -> None:
        trigger = self._triggers.get((spec.namespace, spec.name))
        if trigger is None:
            return
        self._status.update(
            plural=PLURAL,
            namespace=spec.namespace,
            name=spec.name,
            status={"nextScheduleTime": _fmt(self._plugin.next_fire(spec.trigger_id))},
        )
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
        self._status.update(
            plural=PLURAL,
            namespace=spec.namespace,
            name=spec.name,
            status={"missedSchedules": trigger.missed, "lastMissedScheduleTime": _fmt(trigger.last_missed)},
        )
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

    # -- Run history and active list -----------------------------------------------------------------------------

    def _runs_changed(self, trigger: TriggerKey) -> None:
        namespace, kind, name = trigger
        if kind == "crontrigger" and (namespace, name) in self._triggers:
            self._dirty.add((namespace, name))
            self._wake.set()

    async def _keep_house(self) -> None:
        while True:
            await self._wake.wait()
            # A burst of fires marks its triggers one Run at a time: tidy them all at once, after the burst.
            await yield_to_runs(self._runs_created)
            self._wake.clear()
            dirty, self._dirty = self._dirty, set()
            for key in dirty:
                try:
                    await self._tidy(key)
                except KubeError as exc:
                    log.warning("run history not pruned", trigger=f"{key[0]}/{key[1]}", error=repr(exc))

    async def _tidy(self, key: tuple[str, str]) -> None:
        trigger = self._triggers.get(key)
        if trigger is None:
            return
        runs = self._index.runs_of((key[0], "crontrigger", key[1]))
        active = [run.ref.name for run in runs if run.active]
        if active != trigger.active:
            trigger.active = active
            self._status.update(
                plural=PLURAL, namespace=key[0], name=key[1], status={"active": [{"name": n} for n in active]}
            )
        for phase, limit in (
            ("Succeeded", trigger.spec.successful_runs_history_limit),
            ("Failed", trigger.spec.failed_runs_history_limit),
        ):
            finished: list[RunInfo] = sorted((r for r in runs if r.phase == phase), key=lambda r: r.finished)
            for run in finished[: max(0, len(finished) - limit)]:
                with contextlib.suppress(NotFound):
                    await self._api.delete(runs_path(run.ref.namespace, run.ref.name), propagation_policy="Background")


def _essentials(body: Mapping[str, Any]) -> dict[str, Any]:
    """What reconciling needs again later (on becoming leader); managedFields alone can be kilobytes per object."""
    metadata = body["metadata"]
    return {
        "metadata": {
            key: metadata[key]
            for key in ("name", "namespace", "uid", "generation", "creationTimestamp", "deletionTimestamp")
            if key in metadata
        },
        "spec": body.get("spec"),
        "status": body.get("status"),
    }
