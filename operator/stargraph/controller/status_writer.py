"""Coalescing status writes: many changes to one object's status become one merge patch to `/status`.

A busy trigger (a seconds-level schedule, a burst of webhooks) changes its status far more often than anyone can
read it; patches are merged per object and written by a small pool of workers, newest values winning. A write to
an object that is gone is dropped. A write the apiserver could not take (down, overloaded) is retried with backoff
for up to `RETRY_SECONDS`, so an outage does not lose what happened during it (missed fires above all); a write it
refused for another reason is retried a few times, then logged: status is a report, and a lost report must not stop
the Runs.

Leadership hands status over: a leader stepping down `flush`es what it has not written yet (a successor reads its
reports back from the objects), and then `drop`s the rest, so no write of its lands over a successor's newer one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any

import structlog

from stargraph.api.v1alpha1 import GROUP, VERSION
from stargraph.k8s.client import KubeClient
from stargraph.k8s.errors import KubeError, NotFound, is_unavailable
from stargraph.k8s.paths import path
from stargraph.workers import Idle, WorkerPool

__all__ = ["RETRY_SECONDS", "StatusWriter", "merge", "yield_to_runs"]

log = structlog.get_logger("stargraph.controller")

ObjectKey = tuple[str, str, str, str, str]
"""(group, version, plural, namespace, name)"""

RETRY_SECONDS = 300.0
_MAX_DELAY = 5.0


async def yield_to_runs(runs_created: Callable[[], Awaitable[None]], *, patience: float = 10.0) -> None:
    """Wait until no Run is being created (up to `patience` seconds): in a burst of fires the apiserver's capacity
    goes to the Runs first, and the reports about them follow."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(runs_created(), patience)


def merge(base: dict[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """JSON merge patch semantics for nested dicts (lists and scalars replace)."""
    merged = dict(base)
    for key, value in patch.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


class StatusWriter:
    def __init__(
        self,
        api: KubeClient,
        *,
        workers: int = 16,
        attempts: int = 3,
        runs_created: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._api = api
        self._runs_created = runs_created
        self._pending: dict[ObjectKey, dict[str, Any]] = {}
        self._inflight: set[ObjectKey] = set()  # one write per object at a time, so an older one never lands last
        self._idle = Idle()
        self._dropped: dict[tuple[str, str], int] = {}
        """How often each (group, plural)'s writes were dropped: a write under way when that happens stops retrying."""
        self._attempts = attempts
        self._pool: WorkerPool[ObjectKey] = WorkerPool(self._handle, workers=workers, name="status-writer")

    def update(
        self,
        *,
        plural: str,
        namespace: str,
        name: str,
        status: Mapping[str, Any],
        group: str = GROUP,
        version: str = VERSION,
    ) -> None:
        key = (group, version, plural, namespace, name)
        if key in self._pending:
            self._pending[key] = merge(self._pending[key], status)
            return
        self._pending[key] = dict(status)
        self._idle.busy()
        if key not in self._inflight:
            self._pool.put(key)

    def forget(self, *, plural: str, namespace: str, name: str, group: str = GROUP, version: str = VERSION) -> None:
        self._pending.pop((group, version, plural, namespace, name), None)

    async def flush(self, *, timeout: float) -> bool:
        """Wait until everything updated so far is written (or given up); False when `timeout` came first."""
        if self._idle.since is not None:
            return True
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def drop(self, *, plurals: Collection[str], group: str = GROUP) -> int:
        """Forget the unwritten statuses of these kinds, and stop retrying the writes under way; how many pending."""
        dropped = [key for key in self._pending if key[0] == group and key[2] in plurals]
        for key in dropped:
            del self._pending[key]
        for plural in plurals:
            self._dropped[group, plural] = self._dropped.get((group, plural), 0) + 1
        self._check_idle()
        return len(dropped)

    async def start(self) -> None:
        await self._pool.start()

    async def stop(self, *, timeout: float = 10.0) -> None:
        """Write what is pending (up to `timeout`), then stop."""
        if not await self._pool.stop(timeout=timeout):
            log.warning("status writes left unwritten at shutdown", pending=len(self._pending))

    async def _handle(self, key: ObjectKey) -> None:
        if self._runs_created is not None:
            await yield_to_runs(self._runs_created)
        status = self._pending.pop(key, None)
        try:
            if status is not None:
                self._inflight.add(key)
                await self._write(key, status)
        finally:
            self._inflight.discard(key)
            if key in self._pending:
                self._pool.put(key)  # changed meanwhile: written again, after this write
            self._check_idle()

    def _check_idle(self) -> None:
        if not self._pending and not self._inflight:
            self._idle.done()

    async def _write(self, key: ObjectKey, status: dict[str, Any]) -> None:
        group, version, plural, namespace, name = key
        target = path(group=group, version=version, plural=plural, namespace=namespace, name=name, subresource="status")
        loop = asyncio.get_running_loop()
        give_up, attempt, dropped = loop.time() + RETRY_SECONDS, 0, self._dropped.get((group, plural), 0)
        while self._dropped.get((group, plural), 0) == dropped:
            attempt += 1
            try:
                await self._api.patch(target, {"status": status})
                return
            except NotFound:
                return
            except KubeError as exc:
                delay = min(0.2 * attempt, _MAX_DELAY)
                retry = loop.time() + delay < give_up if is_unavailable(exc) else attempt < self._attempts
                if not retry:
                    log.error("status not written", object=f"{plural}/{namespace}/{name}", error=repr(exc))
                    return
                await asyncio.sleep(delay)
