"""CronTrigger objects → the cron plugin: validation, the spec applied, conditions, and catch-up's starting point.

The controller owns the registry of the triggers this replica fires (`cron_state`) and the three parts that read
it: the plugin's gate (`cron_gate`, concurrency policy), its observer (`cron_reports`, status and Events per fire)
and the Run history (`run_history`, active list and pruning). Reconciling is idempotent and cheap when nothing
changed: an object whose generation was already applied (our own status writes come back as such events) costs a
dict lookup.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

import structlog

from stargraph.clock import Clock
from stargraph.controller import conditions
from stargraph.controller.cron_gate import ConcurrencyGate
from stargraph.controller.cron_reports import CronReports
from stargraph.controller.cron_state import CronTriggers, CronTriggerState, TriggerName, fmt
from stargraph.controller.event_recorder import EventRecorder
from stargraph.controller.fire_ledger import FireLedger
from stargraph.controller.kinds import CRON, essentials, object_ref, parse_time
from stargraph.controller.reporting import report_stalled
from stargraph.controller.run_history import RunHistory
from stargraph.controller.status_writer import StatusWriter
from stargraph.fires.keys import trigger_id
from stargraph.k8s.client import KubeClient
from stargraph.runs import RunIndex, RunInfo, TriggerObject
from stargraph.triggers.cron import CronTriggerPlugin
from stargraph.triggers.specs import CronSpec
from stargraph.triggers.validation import check_cron_trigger

__all__ = ["CronController"]

log = structlog.get_logger("stargraph.controller")

KIND, PLURAL = CRON.kind, CRON.plural


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
        hold_run: Callable[[RunInfo], bool] = lambda run: False,
        leading: bool = True,
    ) -> None:
        self.leading = leading
        self._bodies: dict[TriggerName, Mapping[str, Any]] = {}
        self._plugin = plugin
        self._index = index
        self._status = status
        self._events = events
        self._clock = clock
        self._triggers: CronTriggers = {}
        self.gate = ConcurrencyGate(api=api, index=index, events=events, triggers=self._triggers)
        self.reports = CronReports(plugin=plugin, status=status, events=events, triggers=self._triggers, clock=clock)
        self._history = RunHistory(
            api=api,
            index=index,
            status=status,
            kind=CRON,
            triggers=self._triggers,
            runs_created=runs_created,
            hold=hold_run,
        )

    # -- lifecycle ---------------------------------------------------------------------------------------------

    async def start(self) -> None:
        await self._history.start()

    async def stop(self) -> None:
        await self._history.stop()

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

    def runs_released(self, key: TriggerName) -> None:
        """Runs of the trigger that were held back from pruning may be pruned now."""
        self._history.mark(key)

    def reconcile(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        metadata = body["metadata"]
        key = (metadata["namespace"], metadata["name"])
        if event_type == "DELETED" or metadata.get("deletionTimestamp"):
            self._bodies.pop(key, None)
            self._forget(key)
            return
        self._bodies[key] = essentials(body)
        if not self.leading:
            return  # another replica fires and reports; this one keeps the object for when it leads
        uid, generation = metadata["uid"], metadata.get("generation", 1)
        known = self._triggers.get(key)
        if known is not None and known.uid == uid and known.generation == generation:
            return
        first = known is None or known.uid != uid
        status = body.get("status") or {}
        ref = object_ref(body, CRON)
        checked = check_cron_trigger(body.get("spec") or {})
        if checked.spec is None:
            self._stall(body, reason=checked.reason, message=checked.message)
            return
        spec = checked.spec
        trigger = TriggerObject(kind=KIND, name=key[1], namespace=key[0], uid=uid, run_template=spec.run_template)
        if known is not None and not first:
            # What this process recorded may not be written back yet: the object's status can lag behind it.
            last, last_missed, missed = known.last_schedule_time, known.last_missed, known.missed
            last_successful, ledger = known.last_successful, known.ledger
        else:
            last = parse_time(status.get("lastScheduleTime"))
            last_missed = parse_time(status.get("lastMissedScheduleTime"))
            missed = int(status.get("missedSchedules") or 0)
            last_successful = parse_time(status.get("lastSuccessfulTime"))
            ledger = FireLedger.from_status(status.get("recentFires"))
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
            repeated_time=spec.daylight_saving.repeated_time.value,
            skipped_time=spec.daylight_saving.skipped_time.value,
            jitter_seconds=spec.jitter_seconds,
            resume_from=self._resume_from(key, last, last_missed, parse_time(metadata.get("creationTimestamp"))),
            trigger=trigger,
        )
        self._triggers[key] = CronTriggerState(
            uid=uid,
            generation=generation,
            spec=spec,
            ref=ref,
            last_schedule_time=last,
            missed=missed,
            last_missed=last_missed,
            active=[item.get("name", "") for item in status.get("active") or ()],
            last_successful=last_successful,
            ledger=ledger,
        )
        schedule = self._plugin.apply(cron_spec, catch_up=first)
        wanted = {
            "observedGeneration": generation,
            "conditions": conditions.conditions_for(
                conditions.ready(generation, message=_ready_message(cron_spec)),
                status.get("conditions"),
                self._clock.now(),
            ),
            "scheduleDescription": schedule.explain(),
            "nextScheduleTime": fmt(self._plugin.next_fire(cron_spec.trigger_id)),
        }
        if any(status.get(name) != value for name, value in wanted.items()):
            self._status.update(plural=PLURAL, namespace=key[0], name=key[1], status=wanted)
        self._history.mark(key)

    def _resume_from(self, key: TriggerName, *accounted: datetime | None) -> datetime | None:
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

    def _forget(self, key: TriggerName) -> None:
        self._plugin.remove(trigger_id("cron", *key))
        self._triggers.pop(key, None)
        self._status.forget(plural=PLURAL, namespace=key[0], name=key[1])


def _ready_message(spec: CronSpec) -> str:
    """Ready's message: whether the trigger is suspended, else how long after each fire its Run is created."""
    if spec.suspend:
        return "suspended"
    if spec.jitter_seconds:
        return f"jitterSeconds: each Run is created {spec.jitter.total_seconds():g}s after its fire"
    return ""
