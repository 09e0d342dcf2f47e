"""Leader election on a `coordination.k8s.io/v1` Lease, with client-go's timing rules.

Only the leader fires cron schedules; every replica serves webhooks and manual runs (their dedupe holds across
replicas anyway, through deterministic Run names and the apiserver's 409). Leadership only saves work — it is
never what makes a Run unique — but a leader that cannot reach the apiserver must stop acting as leader before
anybody else can take over, so that two replicas never fire the same schedule at once:

- a candidate takes the Lease only when its record has not changed for `lease_duration` by the candidate's own
  clock (no clock comparison between machines);
- the leader renews every `retry_period`, and gives up leading once `renew_deadline` (< `lease_duration`) has passed
  since its last successful renewal, i.e. before any other replica can see the Lease as expired;
- on a clean shutdown the leader releases the Lease, so a successor takes over at once; first it is told until when
  it still leads (its renew deadline), to finish what a successor must find written.

The leader's deadline counts from the moment its last successful renewal *began* (the `renewTime` it wrote), not
from when the answer arrived: an answer that comes late (a paused process, a slow network) must not stretch the
leadership past what every other replica can see in the Lease.

"started leading" and "stopped leading" are logged with the `renewTime` in question and, on stopping, the reason,
so a hand-over can be reconstructed from the replicas' logs alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import structlog

from stargraph.k8s.client import KubeClient
from stargraph.k8s.errors import Conflict, KubeError, NotFound
from stargraph.k8s.paths import path

__all__ = ["LeaderElector"]

log = structlog.get_logger("stargraph.k8s.lease")


def _micro_time(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    def __init__(
        self,
        api: KubeClient,
        *,
        namespace: str,
        name: str,
        identity: str,
        on_started_leading: Callable[[], Awaitable[None]],
        on_stopped_leading: Callable[[float | None], Awaitable[None]],
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
    ) -> None:
        if not retry_period < renew_deadline < lease_duration:
            raise ValueError("need retry_period < renew_deadline < lease_duration")
        self._api = api
        self._path = path(group="coordination.k8s.io", version="v1", plural="leases", namespace=namespace, name=name)
        self._collection = path(group="coordination.k8s.io", version="v1", plural="leases", namespace=namespace)
        self._namespace = namespace
        self._name = name
        self.identity = identity
        self._started = on_started_leading
        self._stopped = on_stopped_leading
        self._duration = lease_duration
        self._renew_deadline = renew_deadline
        self._retry = retry_period
        self._observed: tuple[str, str] | None = None  # (holder, renewTime) last seen
        self._observed_at = 0.0  # monotonic time the record last changed under our eyes
        self._lease: dict[str, Any] | None = None
        self._renewed_at = 0.0  # monotonic time our last successful renewal began
        self.leading = False

    async def run(self) -> None:
        """Campaign, lead, lose, campaign again — until cancelled; then release the Lease if held."""
        lease = f"{self._namespace}/{self._name}"
        try:
            while True:
                self._renewed_at = await self._acquire()
                self.leading = True
                log.info("started leading", lease=lease, identity=self.identity, renew_time=self._renew_time())
                reason = "shutting down"
                try:
                    await self._started()
                    reason = await self._renew_until_lost()
                finally:
                    self.leading = False
                    log.warning(
                        "stopped leading",
                        lease=lease,
                        identity=self.identity,
                        reason=reason,
                        renew_time=self._renew_time(),
                    )
                    # Shutting down, the Lease is still ours until the renew deadline; lost, it may be another's now.
                    until = self._renewed_at + self._renew_deadline if reason == "shutting down" else None
                    await asyncio.shield(self._stopped(until))
        finally:
            await asyncio.shield(self._release())

    async def _acquire(self) -> float:
        """Wait until the Lease is ours; return the monotonic time the winning attempt began."""
        while True:
            attempt = time.monotonic()
            if await self._try_acquire_or_renew():
                return attempt
            # Polling is the protocol: a Lease has no "released" notification every candidate could wait on.
            await asyncio.sleep(self._retry)

    async def _renew_until_lost(self) -> str:
        """Renew until the Lease is lost; return why it was."""
        while True:
            await asyncio.sleep(self._retry)
            attempt = time.monotonic()
            remaining = self._renew_deadline - (attempt - self._renewed_at)
            try:
                renewed = await asyncio.wait_for(self._try_acquire_or_renew(), max(remaining, 0.01))
            except TimeoutError:
                renewed = False
            if renewed:
                self._renewed_at = attempt
            elif self._observed is not None and self._observed[0] not in ("", self.identity):
                return f"held by {self._observed[0]}"
            elif time.monotonic() - self._renewed_at >= self._renew_deadline:
                return "renew deadline passed"

    def _renew_time(self) -> str | None:
        """The `renewTime` of our last successful write, as the other replicas see it in the Lease."""
        renew_time = ((self._lease or {}).get("spec") or {}).get("renewTime")
        return renew_time if isinstance(renew_time, str) else None

    async def _try_acquire_or_renew(self) -> bool:
        now = datetime.now(UTC)
        try:
            try:
                lease = await self._api.get(self._path)
            except NotFound:
                self._lease = await self._api.create(self._collection, self._record(now, transitions=0, acquired=now))
                return True
            spec = lease.get("spec") or {}
            holder = spec.get("holderIdentity") or ""
            observed = (holder, str(spec.get("renewTime")))
            if observed != self._observed:
                self._observed, self._observed_at = observed, time.monotonic()
            expired = time.monotonic() - self._observed_at > float(spec.get("leaseDurationSeconds") or self._duration)
            if holder and holder != self.identity and not expired:
                return False
            ours = holder == self.identity
            acquired = spec.get("acquireTime") if ours else _micro_time(now)
            transitions = int(spec.get("leaseTransitions") or 0) + (0 if ours else 1)
            record = self._record(now, transitions=transitions, acquired=acquired)
            record["metadata"]["resourceVersion"] = lease["metadata"]["resourceVersion"]
            self._lease = await self._api.request("PUT", self._path, json=record)
            self._observed, self._observed_at = (self.identity, record["spec"]["renewTime"]), time.monotonic()
            return True
        except Conflict:
            return False  # somebody else wrote the Lease first; look again next round
        except KubeError as exc:
            log.warning("lease not acquired or renewed", lease=f"{self._namespace}/{self._name}", error=repr(exc))
            return False

    def _record(self, now: datetime, *, transitions: int, acquired: datetime | str | None) -> dict[str, Any]:
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self._name, "namespace": self._namespace},
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": int(self._duration),
                "acquireTime": acquired if isinstance(acquired, str) else _micro_time(acquired or now),
                "renewTime": _micro_time(now),
                "leaseTransitions": transitions,
            },
        }

    async def _release(self) -> None:
        lease = self._lease
        if lease is None or (lease.get("spec") or {}).get("holderIdentity") != self.identity:
            return
        released = {**lease, "spec": {**lease["spec"], "holderIdentity": "", "leaseDurationSeconds": 1}}
        with contextlib.suppress(KubeError):
            await self._api.request("PUT", self._path, json=released)
            log.info("released the lease", lease=f"{self._namespace}/{self._name}")
        self._lease = None
