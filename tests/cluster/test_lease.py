"""Leader election on the real apiserver: one leader at a time, fast hand-over, and a cut-off leader steps down
before anybody else can take the Lease."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import pytest

from stargraph.k8s import KubeClient, load_credentials
from stargraph.k8s.credentials import Credentials
from stargraph.k8s.lease import LeaderElector
from tests.support.proxy import TcpProxy

pytestmark = pytest.mark.cluster

TIMING = {"lease_duration": 3.0, "renew_deadline": 2.0, "retry_period": 0.5}


class Candidate:
    def __init__(self, api: KubeClient, namespace: str, identity: str) -> None:
        self.started: list[float] = []
        self.stopped: list[float] = []
        self.leads_until: list[float | None] = []
        self.handing_over = 0.0  # how long stepping down takes while the Lease is still ours
        self.elector = LeaderElector(
            api,
            namespace=namespace,
            name="test-lease",
            identity=identity,
            on_started_leading=self._on_started,
            on_stopped_leading=self._on_stopped,
            **TIMING,
        )
        self.task: asyncio.Task[None] | None = None

    async def _on_started(self) -> None:
        self.started.append(time.monotonic())

    async def _on_stopped(self, until: float | None) -> None:
        self.stopped.append(time.monotonic())
        self.leads_until.append(until)
        if until is not None:
            await asyncio.sleep(self.handing_over)

    def run(self) -> None:
        self.task = asyncio.create_task(self.elector.run())

    async def cancel(self) -> None:
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def until(condition: Callable[[], object], timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s")
        await asyncio.sleep(0.05)
    return time.monotonic()


@asynccontextmanager
async def client(credentials: Credentials) -> AsyncIterator[KubeClient]:
    async with KubeClient(credentials, timeout=2.0, connect_timeout=1.0) as api:
        yield api


async def test_one_leader_and_a_fast_handover_on_release(control_plane, namespace) -> None:  # type: ignore[no-untyped-def]
    credentials = load_credentials(kubeconfig=str(control_plane.kubeconfig))
    async with client(credentials) as api_a, client(credentials) as api_b:
        a, b = Candidate(api_a, namespace, "a"), Candidate(api_b, namespace, "b")
        a.run()
        await until(lambda: a.started, 5)
        b.run()
        await asyncio.sleep(2 * TIMING["lease_duration"])
        assert not b.started, "b must not lead while a renews"
        a.handing_over = 0.5
        released = time.monotonic()
        await a.cancel()
        took_over = await until(lambda: b.started, 5)
        # A released Lease is taken at the next retry, not after the lease duration.
        assert took_over - released < TIMING["lease_duration"]
        # Shutting down, a was told it still leads until its renew deadline, and b took over only after a's
        # stepping down (flushing what a successor must find) was done.
        (stepped_down,), (leads_until,) = a.stopped, a.leads_until
        assert leads_until is not None and stepped_down < leads_until <= stepped_down + TIMING["renew_deadline"]
        assert took_over >= stepped_down + a.handing_over
        await b.cancel()


async def test_a_partitioned_leader_stops_before_the_lease_can_be_taken(control_plane, namespace) -> None:  # type: ignore[no-untyped-def]
    credentials = load_credentials(kubeconfig=str(control_plane.kubeconfig))
    target = urlsplit(credentials.server)
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 443)
    await proxy.start()
    behind_proxy = dataclasses.replace(credentials, server=f"https://127.0.0.1:{proxy.port}")
    try:
        async with client(behind_proxy) as api_a, client(credentials) as api_b:
            a, b = Candidate(api_a, namespace, "a"), Candidate(api_b, namespace, "b")
            a.run()
            await until(lambda: a.started, 5)
            b.run()
            await asyncio.sleep(1)
            cut = time.monotonic()
            proxy.cut()
            await until(lambda: a.stopped, TIMING["renew_deadline"] + 3)
            await until(lambda: b.started, TIMING["lease_duration"] + 5)
            # The times each elector's own callback recorded, not the moments this test's polling noticed them.
            stepped_down, took_over = a.stopped[0], b.started[0]
            assert stepped_down < took_over, "the old leader must stop before the new one starts"
            assert a.leads_until == [None], "a leader that lost the Lease leads no longer"
            assert stepped_down - cut <= TIMING["renew_deadline"] + TIMING["retry_period"] + 1
            proxy.heal()
            await asyncio.sleep(2 * TIMING["retry_period"])
            assert len(a.started) == 1, "a healed ex-leader waits while b renews"
            await b.cancel()
            await a.cancel()
    finally:
        await proxy.stop()
