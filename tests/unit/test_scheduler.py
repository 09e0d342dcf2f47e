"""The scheduler's dedupe and delivery guarantees, against the in-memory sink and deliberately awkward sinks."""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from stargraph.runs import InMemoryRunSink, PermanentSinkError, RunRequest, SchedulerStopped, SubmitResult
from stargraph.scheduler import RetryPolicy, Scheduler
from stargraph.triggers import TriggerEvent, cron_idempotency_key

FIRE = datetime(2026, 1, 1, tzinfo=UTC)
NO_WAIT = RetryPolicy(attempts=3, first_delay=0, max_delay=0)


def event(name: str = "nightly", fire: datetime = FIRE, payload: dict[str, object] | None = None) -> TriggerEvent:
    trigger_id = f"cron:default/{name}"
    return TriggerEvent(
        trigger_id=trigger_id,
        scheduled_fire=fire,
        idempotency_key=cron_idempotency_key(trigger_id, fire),
        payload=payload or {},
    )


class SlowSink(InMemoryRunSink):
    """Yields inside create, so concurrent submissions really overlap; records peak concurrency."""

    def __init__(self, *, failures: int = 0, error: type[Exception] = ConnectionError) -> None:
        super().__init__()
        self.calls = 0
        self.active = 0
        self.peak = 0
        self.failures = failures
        self.error = error
        self.gate = asyncio.Event()
        self.gate.set()

    async def create(self, request: RunRequest) -> SubmitResult:
        self.calls += 1
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            await self.gate.wait()
            await asyncio.sleep(0.001)
            if self.failures:
                self.failures -= 1
                raise self.error("apiserver unavailable")
            return await super().create(request)
        finally:
            self.active -= 1


@pytest.fixture
async def sink() -> SlowSink:
    return SlowSink()


@pytest.fixture
async def scheduler(sink: SlowSink) -> AsyncIterator[Scheduler]:
    scheduler = Scheduler(sink, workers=16, retry=NO_WAIT)
    await scheduler.start()
    yield scheduler
    await scheduler.stop()


async def test_fifty_concurrent_identical_events_make_one_run(scheduler: Scheduler, sink: SlowSink) -> None:
    results = await asyncio.gather(*(scheduler.submit(event()) for _ in range(50)))
    assert sink.calls == 1
    assert len(sink.runs) == 1
    assert len({result.run for result in results}) == 1
    assert sum(result.created for result in results) == 1
    dedupes = scheduler.metrics.dedupes
    assert dedupes.labels("inflight")._value.get() == 49


async def test_known_run_is_answered_from_the_index_without_creating(scheduler: Scheduler, sink: SlowSink) -> None:
    first = await scheduler.submit(event())
    again = await scheduler.submit(event())
    assert first.created and not again.created
    assert again.run == first.run
    assert sink.calls == 1
    assert scheduler.metrics.dedupes.labels("index")._value.get() == 1


async def test_distinct_events_are_created_concurrently(scheduler: Scheduler, sink: SlowSink) -> None:
    sink.gate.clear()
    pending = [asyncio.create_task(scheduler.submit(event(f"t{i}"))) for i in range(40)]
    await asyncio.sleep(0.01)
    sink.gate.set()
    results = await asyncio.gather(*pending)
    assert len({r.run.name for r in results}) == 40
    assert sink.peak == 16  # every worker busy at once: creation is not serialised


async def test_transient_errors_are_retried(sink: SlowSink) -> None:
    sink.failures = 2
    scheduler = Scheduler(sink, retry=NO_WAIT)
    await scheduler.start()
    result = await scheduler.submit(event())
    await scheduler.stop()
    assert result.created and sink.calls == 3
    assert scheduler.metrics.create_errors.labels("cron")._value.get() == 2


async def test_errors_reach_every_waiter_after_the_last_attempt() -> None:
    sink = SlowSink(failures=10)
    scheduler = Scheduler(sink, retry=NO_WAIT)
    await scheduler.start()
    outcomes = await asyncio.gather(*(scheduler.submit(event()) for _ in range(3)), return_exceptions=True)
    assert all(isinstance(outcome, ConnectionError) for outcome in outcomes)
    assert sink.calls == 3 and not sink.runs
    # Nothing stays half-done: the next attempt at the same fire goes through.
    sink.failures = 0
    assert (await scheduler.submit(event())).created
    await scheduler.stop()


async def test_permanent_errors_are_not_retried() -> None:
    sink = SlowSink(failures=1, error=PermanentSinkError)
    scheduler = Scheduler(sink, retry=NO_WAIT)
    await scheduler.start()
    with pytest.raises(PermanentSinkError):
        await scheduler.submit(event())
    await scheduler.stop()
    assert sink.calls == 1


async def test_stop_finishes_queued_creations_then_refuses(sink: SlowSink) -> None:
    scheduler = Scheduler(sink, workers=2)
    await scheduler.start()
    sink.gate.clear()
    pending = [asyncio.create_task(scheduler.submit(event(f"t{i}"))) for i in range(10)]
    await asyncio.sleep(0)
    stopping = asyncio.create_task(scheduler.stop())
    await asyncio.sleep(0.01)
    sink.gate.set()
    await stopping
    assert all(task.result().created for task in pending)
    with pytest.raises(SchedulerStopped):
        await scheduler.submit(event("late"))


async def test_cancelled_caller_does_not_cancel_the_creation(scheduler: Scheduler, sink: SlowSink) -> None:
    sink.gate.clear()
    impatient = asyncio.create_task(scheduler.submit(event()))
    await asyncio.sleep(0)
    patient = asyncio.create_task(scheduler.submit(event()))
    await asyncio.sleep(0)
    impatient.cancel()
    sink.gate.set()
    assert (await patient).run.name == sink.runs[event().idempotency_key].name


class Throttled(Exception):
    """What the Kubernetes client raises for a 429: it carries the apiserver's Retry-After."""

    def __init__(self, retry_after: float) -> None:
        super().__init__("429 TooManyRequests")
        self.retry_after = retry_after


async def test_a_retry_after_from_the_sink_lengthens_the_backoff_up_to_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []

    async def record(delay: float) -> None:
        slept.append(delay)

    class ThrottlingSink(InMemoryRunSink):
        asked = [1.0, 60.0]

        async def create(self, request: RunRequest) -> SubmitResult:
            if self.asked:
                raise Throttled(self.asked.pop(0))
            return await super().create(request)

    monkeypatch.setattr("stargraph.scheduler.scheduler.asyncio.sleep", record)
    scheduler = Scheduler(ThrottlingSink(), retry=RetryPolicy(attempts=3, first_delay=0.1, max_delay=2.0))
    await scheduler.start()
    result = await scheduler.submit(event())
    await scheduler.stop()
    assert result.created
    assert slept == [1.0, 2.0]  # as asked, then capped by the policy's longest delay


async def test_a_refused_create_is_counted_by_reason() -> None:
    class Squatted(InMemoryRunSink):
        async def create(self, request: RunRequest) -> SubmitResult:
            raise PermanentSinkError("name held by another object", reason="run_name_conflict")

    scheduler = Scheduler(Squatted(), retry=NO_WAIT)
    await scheduler.start()
    with pytest.raises(PermanentSinkError):
        await scheduler.submit(event())
    await scheduler.stop()
    assert scheduler.metrics.create_refusals.labels("run_name_conflict")._value.get() == 1
