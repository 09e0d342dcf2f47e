"""Runs that run: one Job per Run that has a `jobTemplate`, and the Job's progress mirrored onto the Run's status.

Two informers feed it (the Runs, and the Jobs labelled with their Run); the leader acts on what they show. For a
Run without its Job it creates the Job (`stargraph.runs.jobs.build_job`: deterministic name, owned by the Run, so
a second Job cannot exist whichever replica or restart tries); for a Run with one it writes the phase, times,
message and conditions the Job implies (`stargraph.runs.job_status`). A Run whose Job the apiserver refuses, or
whose Job is deleted before it finished, is Failed with a reason saying so and a Warning Event; the trigger is not
affected. A finished Run is never touched again. Runs without a `jobTemplate` are left to an executor of the
user's own, which writes their status itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import structlog

from stargraph.clock import Clock
from stargraph.controller import conditions
from stargraph.controller.event_recorder import EventRecorder
from stargraph.controller.status_writer import StatusWriter
from stargraph.fires.keys import format_fire_time
from stargraph.k8s.client import KubeClient
from stargraph.k8s.errors import Conflict, KubeError, is_unavailable
from stargraph.k8s.events import ObjectRef
from stargraph.k8s.informer import object_key
from stargraph.k8s.paths import path
from stargraph.runs import FINISHED_PHASES, RUN_API_VERSION
from stargraph.runs.job_status import failed_status, run_status, status_conditions
from stargraph.runs.jobs import InvalidJobTemplate, build_job, job_name
from stargraph.workers import Idle, WorkerPool

__all__ = ["RunJobs", "jobs_path"]

log = structlog.get_logger("stargraph.controller")

Key = tuple[str, str]
"""(namespace, Run name)"""

_RETRY_SECONDS = 2.0


def jobs_path(namespace: str | None, name: str | None = None) -> str:
    return path(group="batch", version="v1", plural="jobs", namespace=namespace, name=name)


class RunJobs:
    def __init__(
        self,
        *,
        api: KubeClient,
        status: StatusWriter,
        events: EventRecorder,
        clock: Clock,
        leading: bool = True,
        workers: int = 32,
    ) -> None:
        self._api = api
        self._status = status
        self._events = events
        self._clock = clock
        self._runs: dict[Key, dict[str, Any]] = {}
        """Unfinished Runs with a jobTemplate, as last seen."""
        self._jobs: dict[Key, dict[str, Any]] = {}
        """Jobs of Runs, by the Run they belong to."""
        self._created: set[Key] = set()
        """Runs whose Job this process created or adopted: a Job the informer has not shown yet is not gone."""
        self._queued: set[Key] = set()
        self._making: set[Key] = set()
        """Runs queued or being looked at that had no Job yet: while there are any, this stage is busy."""
        self._idle = Idle()
        self._pool: WorkerPool[Key] = WorkerPool(self._sync, workers=workers, name="run-jobs")
        self.leading = leading

    async def start(self) -> None:
        await self._pool.start()

    async def stop(self) -> None:
        await self._pool.stop(timeout=5.0)

    async def wait_idle(self) -> None:
        """Return once no Run is waiting for its Job to be made."""
        await self._idle.wait()

    @property
    def idle_since(self) -> float | None:
        """When the last Job creation or look ended (the event loop's clock); None while one is under way."""
        return self._idle.since

    async def lead(self) -> None:
        """Begin acting: every Run seen so far is looked at once."""
        self.leading = True
        for key in list(self._runs):
            self._enqueue(key)

    async def stop_leading(self) -> None:
        self.leading = False

    def run_changed(self, change: str, body: dict[str, Any]) -> None:
        """Run informer callback."""
        key = object_key(body)
        phase = (body.get("status") or {}).get("phase")
        spec = body.get("spec") or {}
        if change == "DELETED" or phase in FINISHED_PHASES or not spec.get("jobTemplate"):
            self._runs.pop(key, None)
            self._created.discard(key)
            return
        self._runs[key] = body
        self._enqueue(key)

    def job_changed(self, change: str, body: dict[str, Any]) -> None:
        """Job informer callback (Jobs labelled with their Run; the owner reference says which)."""
        run = self._owner(body)
        if run is None:
            return
        if change == "DELETED":
            self._jobs.pop(run, None)
            self._created.discard(run)
        else:
            self._jobs[run] = body
        if run in self._runs:
            self._enqueue(run)

    @staticmethod
    def _owner(job: Mapping[str, Any]) -> Key | None:
        metadata = job["metadata"]
        for owner in metadata.get("ownerReferences") or ():
            if owner.get("controller") and owner.get("kind") == "Run" and owner.get("apiVersion") == RUN_API_VERSION:
                return metadata.get("namespace", ""), owner["name"]
        return None

    def _enqueue(self, key: Key) -> None:
        if self.leading and key not in self._queued:
            self._queued.add(key)
            if key not in self._jobs:
                # Only a Run still without its Job makes this stage busy: a Job's progress keeps arriving for as
                # long as Jobs run, and reports must not wait for that.
                self._making.add(key)
                self._idle.busy()
            self._pool.put(key)

    def _retry_later(self, key: Key) -> None:
        asyncio.get_running_loop().call_later(_RETRY_SECONDS, self._enqueue, key)

    async def _sync(self, key: Key) -> None:
        self._queued.discard(key)
        try:
            await self._act(key)
        finally:
            self._making.discard(key)
            if not self._making:
                self._idle.done()

    async def _act(self, key: Key) -> None:
        run = self._runs.get(key)
        if run is None or not self.leading or run["metadata"].get("deletionTimestamp"):
            return
        job = self._jobs.get(key)
        if job is not None and job["metadata"].get("uid") and not self._owned_by(job, run):
            job = None  # the Job of an earlier Run of the same name: this Run's own is still to be made
        if job is not None:
            self._report(run, run_status(job))
            return
        if (run.get("status") or {}).get("jobRef") and key not in self._created:
            name = job_name(key[1])
            self._fail(run, reason="JobDeleted", message=f"Job {name} was deleted before it finished")
            return
        await self._create(key, run)

    @staticmethod
    def _owned_by(job: Mapping[str, Any], run: Mapping[str, Any]) -> bool:
        uid = run["metadata"].get("uid")
        return any(owner.get("uid") == uid for owner in job["metadata"].get("ownerReferences") or ())

    async def _create(self, key: Key, run: dict[str, Any]) -> None:
        try:
            manifest = build_job(run)
        except InvalidJobTemplate as exc:
            self._fail(run, reason="InvalidJobTemplate", message=str(exc))
            return
        namespace, name = key[0], manifest["metadata"]["name"]
        try:
            created = await self._api.create(jobs_path(namespace), manifest)
        except Conflict:
            await self._adopt(key, run, name)
            return
        except KubeError as exc:
            if is_unavailable(exc):
                log.warning("job not created; retrying", run=f"{namespace}/{key[1]}", error=repr(exc))
                self._retry_later(key)
            else:
                self._fail(run, reason="JobRefused", message=f"the apiserver refused Job {name}: {exc}")
            return
        self._created.add(key)
        self._jobs.setdefault(key, created)
        self._events.normal(self._ref(run), "JobCreated", f"created Job {name}")
        self._report(run, run_status(created))

    async def _adopt(self, key: Key, run: dict[str, Any], name: str) -> None:
        try:
            existing = await self._api.get(jobs_path(key[0], name))
        except KubeError as exc:
            log.warning("job conflict not settled; retrying", run=f"{key[0]}/{key[1]}", error=repr(exc))
            self._retry_later(key)
            return
        if not self._owned_by(existing, run):
            self._fail(run, reason="JobNameConflict", message=f"Job {name} exists and belongs to something else")
            return
        self._created.add(key)
        self._jobs.setdefault(key, existing)
        self._report(run, run_status(existing))

    def _fail(self, run: dict[str, Any], *, reason: str, message: str) -> None:
        now = format_fire_time(self._clock.now().replace(microsecond=0))
        self._events.warning(self._ref(run), reason, message)
        self._report(run, failed_status(reason=reason, message=message, now=now))

    def _report(self, run: dict[str, Any], observed: dict[str, Any]) -> None:
        """Write the status `observed` implies, unless the Run already shows it."""
        reason = observed.pop("reason")
        metadata, current = run["metadata"], run.get("status") or {}
        generation = int(metadata.get("generation") or 1)
        wanted = status_conditions(observed["phase"], reason=reason, message=observed["message"], generation=generation)
        fields = {key: value for key, value in observed.items() if value is not None}
        if all(current.get(key) == value for key, value in fields.items()) and conditions.same(
            current, generation, wanted
        ):
            return
        status = {
            **fields,
            "observedGeneration": generation,
            "conditions": conditions.conditions_for(wanted, current.get("conditions"), self._clock.now()),
        }
        # What is written is what the Run shows from now on: a second event before the echo arrives sees it.
        run["status"] = {**current, **status}
        if status["phase"] in FINISHED_PHASES:
            self._runs.pop(object_key(run), None)
        self._status.update(plural="runs", namespace=metadata["namespace"], name=metadata["name"], status=status)

    @staticmethod
    def _ref(run: Mapping[str, Any]) -> ObjectRef:
        metadata = run["metadata"]
        return ObjectRef(
            api_version=RUN_API_VERSION,
            kind="Run",
            name=metadata["name"],
            namespace=metadata["namespace"],
            uid=metadata.get("uid"),
        )
