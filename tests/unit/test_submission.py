"""HTTP callers hear 2xx only once the Run exists; otherwise 503 with Retry-After, and a retry finds the Run."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from stargraph.fires.event import TriggerEvent
from stargraph.http import HttpError
from stargraph.runs import InMemoryRunSink, RunRequest, SubmitResult
from stargraph.scheduler import Scheduler
from stargraph.serve import create_app
from stargraph.triggers.submission import RETRY_AFTER_SECONDS, submit_or_http_error
from tests.support.app import running_app


class HeldSink(InMemoryRunSink):
    """Creates only once `release` is set, as an apiserver that is frozen and then resumed."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    async def create(self, request: RunRequest) -> SubmitResult:
        await self.release.wait()
        return await super().create(request)


class DownSink(InMemoryRunSink):
    async def create(self, request: RunRequest) -> SubmitResult:
        raise ConnectionRefusedError("apiserver down")


def event() -> TriggerEvent:
    return TriggerEvent(
        trigger_id="manual:team-a/nightly",
        scheduled_fire=datetime(2026, 1, 1, tzinfo=UTC),
        idempotency_key=str(uuid.uuid4()),
        payload={},
    )


@pytest.fixture
async def held() -> AsyncIterator[tuple[Scheduler, HeldSink]]:
    sink = HeldSink()
    scheduler = Scheduler(sink)
    await scheduler.start()
    yield scheduler, sink
    sink.release.set()
    await scheduler.stop()


async def test_a_run_not_confirmed_within_the_budget_is_503_and_the_retry_finds_it(
    held: tuple[Scheduler, HeldSink],
) -> None:
    scheduler, sink = held
    fire = event()
    with pytest.raises(HttpError) as caught:
        await submit_or_http_error(scheduler, fire, budget=0.05)
    assert (caught.value.status, caught.value.reason) == (503, "run_pending")
    assert caught.value.response().headers == {"retry-after": str(RETRY_AFTER_SECONDS)}
    assert sink.runs == {}  # no 2xx was given, and indeed nothing exists yet
    sink.release.set()  # the creation the first caller started goes on without it
    await scheduler.wait_idle()
    retried = await submit_or_http_error(scheduler, fire, budget=0.05)
    assert retried.created is False and list(sink.runs) == [fire.idempotency_key]


async def test_a_sink_that_keeps_failing_is_503_with_retry_after_over_http() -> None:
    async def allow(request: object, namespace: str) -> dict[str, str]:
        return {"username": "tester"}

    sink = DownSink()
    app = create_app(sink=sink, plugins=["manual"], deps={"authorizer": allow})
    async with running_app(app) as (client, _):
        response = await client.post(
            "/v1/runs",
            json={"triggerRef": {"kind": "CronTrigger", "name": "nightly", "namespace": "team-a"}},
            headers={"idempotency-key": str(uuid.uuid4()), "authorization": "Bearer x"},
        )
    assert response.status_code == 503
    assert response.headers["retry-after"] == str(RETRY_AFTER_SECONDS)
    assert response.json()["error"]["reason"] == "run_not_created"
    assert sink.runs == {}
