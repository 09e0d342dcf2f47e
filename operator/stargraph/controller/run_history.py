"""Each trigger's Runs, tidied: `status.active` and `status.lastSuccessfulTime` kept current, and finished Runs
pruned to the trigger's history limits (CronTriggers have them; WebhookTriggers keep every Run).

The Run index says which triggers' Runs changed; the work is done in one background task, after a burst of fires
has been created (a burst marks its triggers one Run at a time: they are tidied all at once, afterwards). A Run
beyond the limits that something still needs (`hold`: a Backfill whose status does not record it yet) is kept until
that changes and the trigger is marked again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import structlog

from stargraph.controller.cron_state import TriggerName, fmt
from stargraph.controller.status_writer import StatusWriter, yield_to_runs
from stargraph.k8s.client import KubeClient
from stargraph.k8s.errors import KubeError, NotFound
from stargraph.runs import RunIndex, RunInfo, TriggerKey, active_run_names, beyond_history_limits, last_success
from stargraph.runs.kube_sink import runs_path
from stargraph.triggers.kinds import TriggerKind

__all__ = ["HistoryState", "RunHistory", "RunsReport"]

log = structlog.get_logger("stargraph.controller")


class HistoryState(Protocol):
    """What the history keeps per trigger: what it last wrote, and the trigger's limits."""

    active: list[str]
    last_successful: datetime | None
    """`status.lastSuccessfulTime`: only ever moves forward (history limits may prune the Run it came from)."""

    @property
    def history_limits(self) -> tuple[int, int] | None:
        """(Succeeded, Failed) Runs kept; None keeps every Run."""
        ...


@dataclass
class RunsReport:
    """The history state of a trigger without limits (a WebhookTrigger)."""

    active: list[str] = field(default_factory=list)
    last_successful: datetime | None = None

    @property
    def history_limits(self) -> tuple[int, int] | None:
        return None


class RunHistory:
    def __init__(
        self,
        *,
        api: KubeClient,
        index: RunIndex,
        status: StatusWriter,
        kind: TriggerKind,
        triggers: Mapping[TriggerName, HistoryState],
        runs_created: Callable[[], Awaitable[None]],
        hold: Callable[[RunInfo], bool] = lambda run: False,
    ) -> None:
        self._api = api
        self._hold = hold
        self._index = index
        self._status = status
        self._kind = kind
        self._index_kind = kind.kind.lower()
        self._triggers = triggers
        self._runs_created = runs_created
        self._dirty: set[TriggerName] = set()
        self._wake = asyncio.Event()
        self._housekeeper: asyncio.Task[None] | None = None
        index.subscribe(self._runs_changed)

    async def start(self) -> None:
        self._housekeeper = asyncio.create_task(self._keep_house(), name=f"{self._index_kind}-housekeeping")

    async def stop(self) -> None:
        if self._housekeeper is not None:
            self._housekeeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._housekeeper

    def mark(self, key: TriggerName) -> None:
        """Tidy this trigger's Runs soon (its spec, and so its history limits, may have changed)."""
        self._dirty.add(key)
        self._wake.set()

    def _runs_changed(self, trigger: TriggerKey) -> None:
        namespace, kind, name = trigger
        if kind == self._index_kind and (namespace, name) in self._triggers:
            self.mark((namespace, name))

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

    async def _tidy(self, key: TriggerName) -> None:
        trigger = self._triggers.get(key)
        if trigger is None:
            return
        runs = self._index.runs_of((key[0], self._index_kind, key[1]))
        changed: dict[str, object] = {}
        active = active_run_names(runs)
        if active != trigger.active:
            trigger.active = active
            changed["active"] = [{"name": n} for n in active]
        succeeded = last_success(runs)
        if succeeded is not None and (trigger.last_successful is None or succeeded > trigger.last_successful):
            trigger.last_successful = succeeded
            changed["lastSuccessfulTime"] = fmt(succeeded)
        if changed:
            self._status.update(plural=self._kind.plural, namespace=key[0], name=key[1], status=changed)
        limits = trigger.history_limits
        if limits is None:
            return
        for run in beyond_history_limits(runs, succeeded=limits[0], failed=limits[1]):
            if self._hold(run):
                continue
            with contextlib.suppress(NotFound):
                await self._api.delete(runs_path(run.ref.namespace, run.ref.name), propagation_policy="Background")
