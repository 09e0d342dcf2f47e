"""The cron trigger's tasks, driven by a manual clock: no real waiting, no polling."""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from stargraph.clock import ManualClock
from stargraph.runs import InMemoryRunSink, PermanentSinkError, RunRequest, SubmitResult
from stargraph.scheduler import RetryPolicy, Scheduler
from stargraph.triggers import cron_idempotency_key
from stargraph.triggers.cron import CronTriggerPlugin, cron_event
from stargraph.triggers.cron_schedule import CronSchedule, ScheduleError
from stargraph.triggers.specs import CronSpec

START = datetime(2026, 1, 1, 0, 0, 0, tzinfo=UTC)


class Harness:
    def __init__(self) -> None:
        self.clock = ManualClock(START)
        self.sink = InMemoryRunSink()
        self.scheduler = Scheduler(self.sink, clock=self.clock)
        self.cron = CronTriggerPlugin()

    def fires(self, name: str = "every-ten") -> list[datetime]:
        return sorted(e.scheduled_fire for e in self.sink.events.values() if e.trigger_id == f"cron:default/{name}")


@pytest.fixture
async def h() -> AsyncIterator[Harness]:
    harness = Harness()
    await harness.scheduler.start()
    yield harness
    await harness.cron.stop()
    await harness.scheduler.stop()


def spec(name: str = "every-ten", schedule: str = "*/10 * * * * *", **fields: object) -> CronSpec:
    return CronSpec.model_validate({"name": name, "schedule": schedule, **fields})


async def start(h: Harness, *specs: CronSpec) -> None:
    h.cron.init({"scheduler": h.scheduler, "cron_specs": specs})
    await h.cron.start()


async def test_one_event_per_nominal_fire_with_its_key(h: Harness) -> None:
    await start(h, spec(payload={"graph": "g"}))
    await h.clock.advance_to(START + timedelta(seconds=35))
    assert h.fires() == [START + timedelta(seconds=s) for s in (10, 20, 30)]
    event = next(iter(h.sink.events.values()))
    assert event.idempotency_key == cron_idempotency_key("cron:default/every-ten", event.scheduled_fire)
    assert event.payload == {"graph": "g"}


async def test_each_task_sleeps_until_its_next_fire(h: Harness) -> None:
    await start(h, spec(), spec("hourly", "0 * * * *"))
    await h.clock.advance_to(START)
    # One sleeper per spec, parked on the exact next fire: nothing wakes up in between to poll.
    assert h.clock.sleepers == 2
    assert sorted(deadline for deadline, _, w in h.clock._sleepers if not w.done()) == [
        START + timedelta(seconds=10),
        START + timedelta(hours=1),
    ]


async def test_spec_edit_takes_effect_without_firing_the_skipped_slot(h: Harness) -> None:
    await start(h, spec(schedule="0 * * * *"))
    await h.clock.advance_to(START + timedelta(minutes=59, seconds=30))
    h.cron.apply(spec(schedule="*/10 * * * * *"))
    await h.clock.advance_to(START + timedelta(hours=1, seconds=5))
    # The old schedule's 01:00:00 slot is not fired; the new schedule starts from the moment of the edit.
    assert h.fires() == [START + timedelta(minutes=59, seconds=40 + 10 * i) for i in range(3)]


async def test_remove_and_suspend_stop_firing(h: Harness) -> None:
    await start(h, spec(), spec("paused", suspend=True))
    assert h.cron.active == 1 and h.cron.next_fire("cron:default/paused") is None
    await h.clock.advance_to(START + timedelta(seconds=10))
    h.cron.remove("cron:default/every-ten")
    await h.clock.advance_to(START + timedelta(minutes=5))
    assert h.fires() == [START + timedelta(seconds=10)]
    assert h.fires("paused") == []


async def test_fire_later_than_the_starting_deadline_is_missed_not_created(h: Harness) -> None:
    await start(h, spec(starting_deadline_seconds=5))
    await h.clock.advance_to(START)
    h.clock.jump(START + timedelta(seconds=32))
    await h.clock.advance_to(START + timedelta(seconds=32))
    assert h.fires() == [START + timedelta(seconds=30)]
    assert h.scheduler.metrics.missed._value.get() == 2


async def test_stop_cancels_every_task(h: Harness) -> None:
    await start(h, spec(), spec("other"))
    await h.cron.stop()
    await h.clock.advance_to(START + timedelta(minutes=1))
    assert h.cron.active == 0 and h.fires() == []


def test_invalid_spec_is_rejected_at_apply() -> None:
    cron = CronTriggerPlugin()
    with pytest.raises(ScheduleError) as caught:
        cron.apply(spec(time_zone="Nowhere/Land"))
    assert caught.value.field == "timeZone"


def test_next_fire_is_reported(h: Harness) -> None:
    h.cron.init({"scheduler": h.scheduler})
    h.cron.apply(spec(schedule="0 9 * * *", time_zone="Europe/Berlin"))
    assert h.cron.next_fire("cron:default/every-ten") == datetime(2026, 1, 1, 8, tzinfo=UTC)


class Recording:
    """Gate and observer in one: admits while `open`, records every outcome."""

    def __init__(self) -> None:
        self.open = True
        self.log: list[tuple[str, object]] = []

    async def admit(self, spec: CronSpec, fire: datetime) -> bool:
        return self.open

    def fired(self, spec: CronSpec, fire: datetime, result: object) -> None:
        self.log.append(("fired", fire))

    def skipped(self, spec: CronSpec, fire: datetime) -> None:
        self.log.append(("skipped", fire))

    def missed(self, spec: CronSpec, *, count: int, latest: datetime) -> None:
        self.log.append(("missed", count))
        self.latest_missed = latest

    def failed(self, spec: CronSpec, fire: datetime, error: Exception) -> None:
        self.log.append(("failed", fire))


async def test_restart_catches_up_per_policy_then_continues(h: Harness) -> None:
    rec = Recording()
    h.clock.jump(START + timedelta(seconds=65))
    resumed = spec(resume_from=START, starting_deadline_seconds=30, catch_up="All")
    h.cron.init({"scheduler": h.scheduler, "cron_observer": rec, "cron_specs": [resumed]})
    await h.cron.start()
    await h.clock.advance_to(START + timedelta(seconds=75))
    # 10..30 s are past the 30 s deadline (missed); 40..60 are caught up; 70 fires on schedule.
    assert h.fires() == [START + timedelta(seconds=s) for s in (40, 50, 60, 70)]
    assert rec.log[0] == ("missed", 3)
    assert rec.latest_missed == START + timedelta(seconds=30)
    assert h.scheduler.metrics.missed._value.get() == 3


async def test_catch_up_is_only_for_the_first_apply(h: Harness) -> None:
    await start(h, spec())
    h.clock.jump(START + timedelta(seconds=25))
    h.cron.apply(spec(resume_from=START, schedule="*/5 * * * * *"))  # an edit, not a resume
    await h.clock.advance_to(START + timedelta(seconds=31))
    assert h.fires() == [START + timedelta(seconds=30)]


async def test_gate_is_asked_unless_policy_allows(h: Harness) -> None:
    rec = Recording()
    rec.open = False
    h.cron.init({"scheduler": h.scheduler, "cron_gate": rec, "cron_observer": rec})
    await h.cron.start()
    h.cron.apply(spec(concurrency_policy="Forbid"))
    h.cron.apply(spec("free"))
    await h.clock.advance_to(START + timedelta(seconds=10))
    assert h.fires() == [] and h.fires("free") == [START + timedelta(seconds=10)]
    assert ("skipped", START + timedelta(seconds=10)) in rec.log


async def test_a_burst_of_fires_only_creates_runs_the_schedule_is_read_ahead(monkeypatch: pytest.MonkeyPatch) -> None:
    # The fire after the next is known before a fire comes: while a burst's Runs are being created, no task
    # consults its schedule (cronsim can cost ~0.1 ms a call); the next look ahead waits for the scheduler's idle.
    reads: list[datetime] = []
    next_after = CronSchedule.next_after
    monkeypatch.setattr(CronSchedule, "next_after", lambda self, when: reads.append(when) or next_after(self, when))
    release = asyncio.Event()

    class HeldSink(InMemoryRunSink):
        async def create(self, request: RunRequest) -> SubmitResult:
            await release.wait()
            return await super().create(request)

    clock = ManualClock(START)
    sink = HeldSink()
    scheduler = Scheduler(sink, clock=clock)
    await scheduler.start()
    cron = CronTriggerPlugin()
    cron.init({"scheduler": scheduler, "cron_specs": [spec(f"t{i}") for i in range(3)]})
    await cron.start()
    await clock.advance_to(START + timedelta(seconds=10))
    # Each task read its first fire and the one after it, before the first fire came.
    assert sorted(reads) == [START] * 3 + [START + timedelta(seconds=10)] * 3
    assert len(sink.events) == 0  # the burst is still being created
    release.set()
    await scheduler.wait_idle()
    for _ in range(5):
        await asyncio.sleep(0)
    assert len(sink.events) == 3
    assert reads[6:] == [START + timedelta(seconds=20)] * 3
    assert cron.next_fire("cron:default/t0") == START + timedelta(seconds=20)
    await cron.stop()
    await scheduler.stop()


class FlakySink(InMemoryRunSink):
    """Refuses every create while `down` (as a client does while the apiserver is unreachable)."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.refused: list[datetime] = []

    async def create(self, request: RunRequest) -> SubmitResult:
        if self.down:
            self.refused.append(request.event.scheduled_fire)
            raise ConnectionRefusedError("apiserver down")
        return await super().create(request)


@pytest.fixture
async def flaky() -> AsyncIterator[Harness]:
    harness = Harness()
    harness.sink = FlakySink()
    # One attempt per submission: the scheduler's own quick retries sleep in real time.
    harness.scheduler = Scheduler(harness.sink, clock=harness.clock, retry=RetryPolicy(attempts=1))
    await harness.scheduler.start()
    yield harness
    await harness.cron.stop()
    await harness.scheduler.stop()


async def outage(h: Harness, *, start: int, end: int, until: int) -> None:
    """The sink refuses creates from `start` to `end` (seconds after START); time runs on to `until`."""
    assert isinstance(h.sink, FlakySink)
    await h.clock.advance_to(START + timedelta(seconds=start))
    h.sink.down = True
    await h.clock.advance_to(START + timedelta(seconds=end))
    h.sink.down = False
    await h.clock.advance_to(START + timedelta(seconds=until))


async def every_two_seconds(h: Harness, **fields: object) -> Recording:
    """The plugin running one `*/2 * * * * *` spec with `fields`; what it reports is recorded."""
    rec = Recording()
    h.cron.init({"scheduler": h.scheduler, "cron_observer": rec})
    await h.cron.start()
    h.cron.apply(spec(schedule="*/2 * * * * *", **fields))
    return rec


async def test_fires_during_an_outage_stay_pending_and_are_created_in_order_after_it(flaky: Harness) -> None:
    rec = await every_two_seconds(flaky, starting_deadline_seconds=120, catch_up="All", catch_up_limit=100)
    await outage(flaky, start=1, end=21, until=31)
    every_slot = [START + timedelta(seconds=s) for s in range(2, 31, 2)]
    assert flaky.fires() == every_slot
    assert isinstance(flaky.sink, FlakySink) and flaky.sink.refused  # the outage did refuse creates
    # Reported in fire order: lastScheduleTime never passes a fire whose Run does not exist yet.
    assert [fire for what, fire in rec.log if what == "fired"] == every_slot
    assert flaky.scheduler.metrics.missed._value.get() == 0


async def test_pending_fires_past_the_deadline_are_counted_missed_the_rest_created(flaky: Harness) -> None:
    rec = await every_two_seconds(flaky, starting_deadline_seconds=7, catch_up="All", catch_up_limit=100)
    await outage(flaky, start=1, end=21, until=31)
    # Down from 1 s to 21 s: a fire is retried until 7 s after its instant, and at the latest when the next fire
    # comes. 2..14 passed their deadline while the sink refused; 16, 18, 20 were still inside it at 22.
    assert flaky.fires() == [START + timedelta(seconds=s) for s in (16, 18, 20, *range(22, 31, 2))]
    assert sum(count for what, count in rec.log if what == "missed") == 7
    assert flaky.scheduler.metrics.missed._value.get() == 7


async def test_without_a_deadline_a_pending_fire_is_retried_until_created(flaky: Harness) -> None:
    flaky.cron.init({"scheduler": flaky.scheduler})
    await flaky.cron.start()
    flaky.cron.apply(spec(schedule="0 * * * *", catch_up="All"))
    await outage(flaky, start=3599, end=3 * 3600 + 1800, until=3 * 3600 + 1900)
    # The 01:00 fire waited through hours of refusals (while 02:00 and 03:00 joined it) and then got its Run.
    assert flaky.fires() == [START + timedelta(hours=h) for h in (1, 2, 3)]
    assert isinstance(flaky.sink, FlakySink) and len(flaky.sink.refused) > 100


async def test_with_catch_up_latest_a_newer_fire_crowds_out_the_pending_one(flaky: Harness) -> None:
    rec = await every_two_seconds(flaky, catch_up="Latest")
    await outage(flaky, start=1, end=9, until=11)
    # 2, 4, 6, 8 were each crowded out by the next fire before a retry got through (the backoff had grown to
    # seconds by then); 10 was the newest fire once the sink was back.
    assert flaky.fires() == [START + timedelta(seconds=10)]
    assert [entry for entry in rec.log if entry[0] == "missed"] == [("missed", 1)] * 4
    assert rec.latest_missed == START + timedelta(seconds=8)


async def test_a_fire_the_sink_refuses_for_good_is_reported_failed_and_not_retried(h: Harness) -> None:
    class Refusing(InMemoryRunSink):
        attempts = 0

        async def create(self, request: RunRequest) -> SubmitResult:
            self.attempts += 1
            if self.attempts == 1:
                raise PermanentSinkError("name taken by another object", reason="run_name_conflict")
            return await super().create(request)

    rec = Recording()
    h.sink = sink = Refusing()
    h.scheduler = Scheduler(sink, clock=h.clock)
    await h.scheduler.start()
    h.cron.init({"scheduler": h.scheduler, "cron_observer": rec})
    await h.cron.start()
    h.cron.apply(spec())
    await h.clock.advance_to(START + timedelta(seconds=25))
    assert rec.log == [("failed", START + timedelta(seconds=10)), ("fired", START + timedelta(seconds=20))]
    assert sink.attempts == 2


async def test_a_pending_fire_past_its_deadline_that_has_a_run_meanwhile_is_not_counted_missed(flaky: Harness) -> None:
    # Another replica created it while this process could not (it was frozen, or cut off from the apiserver).
    rec = await every_two_seconds(flaky, starting_deadline_seconds=3, catch_up="All")
    assert isinstance(flaky.sink, FlakySink)
    await flaky.clock.advance_to(START + timedelta(seconds=1))
    flaky.sink.down = True
    # The 2 s fire is tried at 2, 2.5, 3.5 and 4, then not before 6: past its deadline (5 s), by when it has a Run.
    await flaky.clock.advance_to(START + timedelta(seconds=4.5))
    await InMemoryRunSink.create(flaky.sink, RunRequest(event=cron_event(spec(), START + timedelta(seconds=2))))
    await flaky.clock.advance_to(START + timedelta(seconds=5.5))
    flaky.sink.down = False
    await flaky.clock.advance_to(START + timedelta(seconds=7))
    assert [entry for entry in rec.log if entry[0] == "missed"] == []
    assert ("fired", START + timedelta(seconds=2)) in rec.log
    assert flaky.fires() == [START + timedelta(seconds=s) for s in (2, 4, 6)]
