"""Deterministic jitter: the offset itself (stable, evenly spread), and the cron plugin creating each Run at
nominal + offset on a manual clock while the fire, its key and its Run keep the nominal instant."""

import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from stargraph.clock import ManualClock
from stargraph.runs import InMemoryRunSink, SubmitResult, TriggerObject
from stargraph.scheduler import RetryPolicy, Scheduler
from stargraph.triggers import cron_idempotency_key
from stargraph.triggers.cron import CronTriggerPlugin
from stargraph.triggers.jitter import jitter_offset
from stargraph.triggers.specs import CronSpec

START = datetime(2026, 1, 1, tzinfo=UTC)
TRIGGER_ID = "cron:default/jittered"
UID = "0b6f8a52-3c1e-4d8e-9a57-2f7d7c1e9b10"


# -- the offset ----------------------------------------------------------------------------------------------------


def test_the_offset_is_a_fixed_function_of_the_seed() -> None:
    # Fixed vectors: a change to the derivation would move every trigger's Runs, so it must be deliberate.
    # sha256("stargraph.io/jitter" 0x00 UID) starts 9111e29f76a977b9: 0x9111e29f76a977b9 * 30000 >> 64 = 17000.
    assert jitter_offset(UID, jitter_seconds=30) == timedelta(milliseconds=17000)
    assert jitter_offset(TRIGGER_ID, jitter_seconds=3600) == timedelta(milliseconds=1_635_130)
    assert jitter_offset(UID, jitter_seconds=0) == timedelta(0)
    assert jitter_offset(UID.replace("0b", "1b", 1), jitter_seconds=30) != jitter_offset(UID, jitter_seconds=30)
    with pytest.raises(ValueError, match="jitter_seconds"):
        jitter_offset(UID, jitter_seconds=-1)


def test_a_larger_window_scales_the_offset() -> None:
    # The trigger keeps its relative place in the window: 2x the window, 2x the offset (to the millisecond).
    for seed in (UID, TRIGGER_ID, "x"):
        small, large = jitter_offset(seed, jitter_seconds=30), jitter_offset(seed, jitter_seconds=60)
        assert abs(large - 2 * small) <= timedelta(milliseconds=1)


def test_offsets_fall_in_the_window() -> None:
    offsets = [jitter_offset(str(uuid.UUID(int=i)), jitter_seconds=1) for i in range(2000)]
    assert min(offsets) >= timedelta(0) and max(offsets) < timedelta(seconds=1)


def test_offsets_of_ten_thousand_uids_spread_evenly() -> None:
    # Chi-square goodness of fit to the uniform distribution over 20 equal bins of [0, 30 s). With 19 degrees of
    # freedom the statistic exceeds 43.82 with probability 0.001 for uniform offsets; a derivation that clusters
    # (a poor hash, a modulo bias, seconds instead of milliseconds) fails by far. The uids are random but seeded,
    # so the test is repeatable.
    rng = random.Random(20260101)
    bins, count, window = 20, 10_000, 30
    observed = [0] * bins
    for _ in range(count):
        offset = jitter_offset(str(uuid.UUID(int=rng.getrandbits(128), version=4)), jitter_seconds=window)
        observed[int(offset / timedelta(seconds=window) * bins)] += 1
    expected = count / bins
    chi_square = sum((seen - expected) ** 2 / expected for seen in observed)
    assert chi_square < 43.82, f"offsets are not spread evenly: chi-square {chi_square:.1f}, bins {observed}"


def test_the_spec_seeds_with_the_uid_else_the_trigger_id() -> None:
    trigger = TriggerObject(kind="CronTrigger", name="jittered", namespace="default", uid=UID)
    assert spec(jitter_seconds=30, trigger=trigger).jitter == jitter_offset(UID, jitter_seconds=30)
    assert spec(jitter_seconds=30).jitter == jitter_offset(TRIGGER_ID, jitter_seconds=30)
    assert spec().jitter == timedelta(0)


# -- the plugin ----------------------------------------------------------------------------------------------------


class Recorder:
    """The plugin's observer: each fire it reported (with the clock's time then) and each miss."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.fired_at: list[tuple[datetime, datetime]] = []
        self.missed_fires: list[tuple[int, datetime]] = []

    def fired(self, spec: CronSpec, fire: datetime, result: SubmitResult) -> None:
        self.fired_at.append((fire, self.clock.now()))

    def skipped(self, spec: CronSpec, fire: datetime) -> None: ...

    def missed(self, spec: CronSpec, *, count: int, latest: datetime) -> None:
        self.missed_fires.append((count, latest))

    def failed(self, spec: CronSpec, fire: datetime, error: Exception) -> None: ...


class Harness:
    def __init__(self) -> None:
        self.clock = ManualClock(START)
        self.sink = InMemoryRunSink()
        self.recorder = Recorder(self.clock)
        self.plugins: list[tuple[Scheduler, CronTriggerPlugin]] = []

    async def process(self, spec: CronSpec, *, catch_up: bool = False) -> CronTriggerPlugin:
        scheduler = Scheduler(self.sink, clock=self.clock, retry=RetryPolicy(attempts=1))
        cron = CronTriggerPlugin()
        cron.init({"scheduler": scheduler, "cron_observer": self.recorder})
        await scheduler.start()
        cron.apply(spec, catch_up=catch_up)
        await cron.start()
        self.plugins.append((scheduler, cron))
        return cron

    async def stop(self) -> None:
        for scheduler, cron in self.plugins:
            await cron.stop()
            await scheduler.stop()
        self.plugins.clear()


@pytest.fixture
async def h() -> AsyncIterator[Harness]:
    harness = Harness()
    yield harness
    await harness.stop()


def spec(**fields: object) -> CronSpec:
    # Created at START, as the operator passes a trigger's creation: no fire before it (00:00 itself included).
    return CronSpec.model_validate({"name": "jittered", "schedule": "*/5 * * * *", "resume_from": START, **fields})


JITTERED = spec(jitter_seconds=120)
OFFSET = JITTERED.jitter
FIRE = START + timedelta(minutes=5)


def test_the_example_offset_is_inside_the_window() -> None:
    # The plugin tests below rely on a non-trivial offset: far from both ends of the 120 s window.
    assert timedelta(seconds=5) < OFFSET < timedelta(seconds=115)


async def test_the_run_is_created_at_nominal_plus_offset_and_keeps_the_nominal_instant(h: Harness) -> None:
    cron = await h.process(JITTERED)
    await h.clock.advance_to(FIRE + OFFSET - timedelta(milliseconds=1))
    assert h.recorder.fired_at == [] and h.sink.events == {}
    assert cron.next_fire(TRIGGER_ID) == FIRE  # status.nextScheduleTime: the nominal instant
    await h.clock.advance_to(FIRE + OFFSET)
    assert h.recorder.fired_at == [(FIRE, FIRE + OFFSET)]
    [(key, event)] = h.sink.events.items()
    assert event.scheduled_fire == FIRE
    assert key == event.idempotency_key == cron_idempotency_key(TRIGGER_ID, FIRE)
    assert cron.next_fire(TRIGGER_ID) == FIRE + timedelta(minutes=5)


async def test_without_jitter_the_run_is_created_at_the_nominal_instant(h: Harness) -> None:
    await h.process(spec())
    await h.clock.advance_to(FIRE)
    assert h.recorder.fired_at == [(FIRE, FIRE)]


async def test_the_scheduler_lag_counts_from_the_delayed_instant(h: Harness) -> None:
    await h.process(JITTERED)
    await h.clock.advance_to(FIRE + OFFSET)
    scheduler, _ = h.plugins[0]
    [lag] = [s for s in scheduler.metrics.scheduler_lag.collect()[0].samples if s.name.endswith("_sum")]
    assert lag.value == 0.0  # created the moment it was due; from the nominal instant it would be the offset


async def test_the_starting_deadline_counts_from_the_delayed_instant(h: Harness) -> None:
    # Frozen until 3 s after the fire was due: within a 5 s deadline, although 5 s after the nominal instant passed.
    await h.process(spec(jitter_seconds=120, starting_deadline_seconds=5))
    await h.clock.advance_to(START + timedelta(minutes=1))
    h.clock.jump(FIRE + OFFSET + timedelta(seconds=3))
    await h.clock.advance_to(FIRE + OFFSET + timedelta(seconds=3))
    assert h.recorder.fired_at == [(FIRE, FIRE + OFFSET + timedelta(seconds=3))]
    assert h.recorder.missed_fires == []
    # Frozen past the deadline of the next fire: missed.
    later = FIRE + timedelta(minutes=5) + OFFSET + timedelta(seconds=6)
    h.clock.jump(later)
    await h.clock.advance_to(later)
    assert h.recorder.missed_fires == [(1, FIRE + timedelta(minutes=5))]


async def test_a_restart_before_the_delayed_instant_does_not_create_the_run_early(h: Harness) -> None:
    # The last Run is the 00:00 fire's; back at 00:05 + offset/2, the 00:05 fire is not missed, just not due yet.
    h.clock.set(FIRE + OFFSET / 2)
    await h.process(JITTERED, catch_up=True)
    await h.clock.advance_to(FIRE + OFFSET / 2)
    assert h.recorder.fired_at == []
    await h.clock.advance_to(FIRE + OFFSET)
    assert h.recorder.fired_at == [(FIRE, FIRE + OFFSET)]
    assert h.recorder.missed_fires == []


async def test_a_restart_after_the_delayed_instant_catches_the_fire_up(h: Harness) -> None:
    restart = FIRE + OFFSET + timedelta(seconds=1)
    h.clock.set(restart)
    await h.process(JITTERED, catch_up=True)
    await h.clock.advance_to(restart)
    assert h.recorder.fired_at == [(FIRE, restart)]


async def test_a_restart_between_nominal_and_delayed_instant_fires_the_slot_once(h: Harness) -> None:
    # The first process creates the 00:05 Run at 00:05 + offset and stops; a second process resuming from that Run
    # at a moment whose clock-less-jitter is before 00:05 again must not create it a second time.
    await h.process(JITTERED)
    await h.clock.advance_to(FIRE + OFFSET + timedelta(milliseconds=1))
    await h.stop()
    resumed = JITTERED.model_copy(update={"resume_from": FIRE})
    await h.process(resumed, catch_up=True)
    await h.clock.advance_to(FIRE + timedelta(minutes=5) + OFFSET)
    assert [fire for fire, _ in h.recorder.fired_at] == [FIRE, FIRE + timedelta(minutes=5)]
    assert len(h.sink.events) == 2


async def test_an_edit_between_nominal_and_delayed_instant_still_creates_the_pending_fire(h: Harness) -> None:
    # Edited after 00:05 but before its Run was due: the fire had not been created, so the edited trigger creates it.
    cron = await h.process(JITTERED)
    await h.clock.advance_to(FIRE + OFFSET / 2)
    cron.apply(JITTERED.model_copy(update={"payload": {"edited": True}}))
    await h.clock.advance_to(FIRE + OFFSET)
    assert h.recorder.fired_at == [(FIRE, FIRE + OFFSET)]
    assert next(iter(h.sink.events.values())).payload == {"edited": True}
