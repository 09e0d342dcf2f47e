"""The status writer's hand-over between leaders: `flush` waits for what is pending, `drop` forgets it for good."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from stargraph.controller.status_writer import StatusWriter
from stargraph.k8s.client import KubeClient
from stargraph.k8s.errors import ApiUnavailable


class Apiserver:
    """Records the status patches that landed; `down` makes every patch fail as an unreachable apiserver's would."""

    def __init__(self) -> None:
        self.landed: list[tuple[str, dict[str, Any]]] = []
        self.attempts = 0
        self.retried = asyncio.Event()
        self.down = False
        self.answer = asyncio.Event()
        self.answer.set()

    async def patch(self, target: str, body: dict[str, Any]) -> dict[str, Any]:
        self.attempts += 1
        if self.attempts > 1:
            self.retried.set()
        await self.answer.wait()
        if self.down:
            raise ApiUnavailable("connection refused")
        self.landed.append((target, body["status"]))
        return body


def writer(api: Apiserver) -> StatusWriter:
    return StatusWriter(cast(KubeClient, api), workers=2)


async def test_flush_returns_once_every_update_has_landed() -> None:
    api = Apiserver()
    api.answer.clear()
    status = writer(api)
    await status.start()
    status.update(plural="crontriggers", namespace="a", name="one", status={"lastScheduleTime": "t1"})
    status.update(plural="runs", namespace="a", name="r", status={"phase": "Running"})

    assert not await status.flush(timeout=0.2)  # the apiserver has not answered yet
    api.answer.set()
    assert await status.flush(timeout=5)
    assert sorted(target.split("/")[-2] for target, _ in api.landed) == ["one", "r"]
    await status.stop()


async def test_flush_with_nothing_pending_returns_at_once() -> None:
    status = writer(Apiserver())
    await status.start()
    assert await status.flush(timeout=0)
    await status.stop()


async def test_drop_forgets_the_pending_writes_of_those_kinds_and_stops_retrying_the_one_under_way() -> None:
    api = Apiserver()
    api.down = True
    status = writer(api)
    await status.start()
    status.update(plural="crontriggers", namespace="a", name="one", status={"lastScheduleTime": "t1"})
    await api.retried.wait()  # the write is under way, retried while the apiserver is down
    status.update(plural="crontriggers", namespace="a", name="one", status={"lastScheduleTime": "t2"})
    status.update(plural="webhooktriggers", namespace="a", name="hook", status={"lastDeliveryTime": "t3"})

    assert status.drop(plurals=("crontriggers", "runs")) == 1  # t2; t1 is under way
    api.down = False
    assert await status.flush(timeout=5)
    # Only the kind nobody else writes landed: neither t1 (its retry stopped) nor t2 (forgotten).
    assert [body for _, body in api.landed] == [{"lastDeliveryTime": "t3"}]
    await status.stop()


async def test_writes_after_a_drop_land_as_usual() -> None:
    api = Apiserver()
    status = writer(api)
    await status.start()
    status.drop(plurals=("crontriggers",))
    status.update(plural="crontriggers", namespace="a", name="one", status={"lastScheduleTime": "t4"})
    assert await status.flush(timeout=5)
    assert [body for _, body in api.landed] == [{"lastScheduleTime": "t4"}]
    await status.stop()
