"""Daylight saving time through the running cron plugin: transitions, restarts, edits and clock steps.

The schedule's DST rules (`stargraph.triggers.cron_schedule`) are tested on their own elsewhere; here a
`CronTriggerPlugin` runs on a `ManualClock` across real transitions, and each test states exactly which fires it
emits, in UTC. "None twice" is proved from what the plugin emitted (every submission's result reaches the
observer, a repeated one as `created=False`), not from the sink's Runs, which dedupe by key.

Europe/Berlin: spring forward 2026-03-29 02:00 CET → 03:00 CEST (01:00 UTC), fall back 2026-10-25
03:00 CEST → 02:00 CET (01:00 UTC), so 02:00-03:00 is repeated. America/New_York: spring forward 2026-03-08
02:00 EST → 03:00 EDT (07:00 UTC), fall back 2026-11-01 02:00 EDT → 01:00 EST (06:00 UTC), so 01:00-02:00 is
repeated.
"""

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from stargraph.clock import ManualClock
from stargraph.runs import InMemoryRunSink, SubmitResult
from stargraph.scheduler import RetryPolicy, Scheduler
from stargraph.triggers.cron import CronTriggerPlugin
from stargraph.triggers.specs import CronSpec

NAME = "dst"
TRIGGER_ID = f"cron:default/{NAME}"
BERLIN = "Europe/Berlin"
NEW_YORK = "America/New_York"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


class Recorder:
    """The plugin's observer: every fire it emitted (with the clock's time then) and every miss it reported."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.emitted: list[tuple[datetime, datetime, bool]] = []
        self.missed_fires: list[tuple[int, datetime]] = []

    def fired(self, spec: CronSpec, fire: datetime, result: SubmitResult) -> None:
        self.emitted.append((fire, self.clock.now(), result.created))

    # Neither happens here (no gate is configured, the in-memory sink refuses nothing), but the plugin calls both.
    def skipped(self, spec: CronSpec, fire: datetime) -> None: ...

    def missed(self, spec: CronSpec, *, count: int, latest: datetime) -> None:
        self.missed_fires.append((count, latest))

    def failed(self, spec: CronSpec, fire: datetime, error: Exception) -> None: ...


class Process:
    """One operator process: a scheduler and a cron plugin over the shared sink, reporting to the shared recorder."""

    def __init__(self, clock: ManualClock, sink: InMemoryRunSink, recorder: Recorder) -> None:
        self.clock = clock
        self.recorder = recorder
        # One attempt per submission: the scheduler's own retries sleep in real time (none is expected here).
        self.scheduler = Scheduler(sink, clock=clock, retry=RetryPolicy(attempts=1))
        self.cron = CronTriggerPlugin()
        self.cron.init({"scheduler": self.scheduler, "cron_observer": recorder})

    async def start(self, spec: CronSpec, *, catch_up: bool = False) -> None:
        await self.scheduler.start()
        self.cron.apply(spec, catch_up=catch_up)
        assert_next_fire_ahead(self)
        await self.cron.start()
        assert_next_fire_ahead(self)

    async def stop(self) -> None:
        await self.cron.stop()
        await self.scheduler.stop()

    def apply(self, spec: CronSpec) -> None:
        self.cron.apply(spec)
        assert_next_fire_ahead(self)

    async def run(self, until: datetime, *, step: timedelta) -> None:
        """Advance the clock to `until`, checking the reported next fire after each step.

        A step ends at the next fire the plugin reports, if that comes first: right after a fire is when a stale
        `next_fire` would show.
        """
        while self.clock.now() < until:
            next_fire = self.cron.next_fire(TRIGGER_ID)
            assert next_fire is not None
            await self.clock.advance_to(min(self.clock.now() + step, until, next_fire))
            assert_next_fire_ahead(self)


def assert_next_fire_ahead(process: Process) -> None:
    """The reported next fire is after now, and after every fire emitted (the clock may have stepped back)."""
    next_fire = process.cron.next_fire(TRIGGER_ID)
    now = process.clock.now()
    assert next_fire is not None and next_fire > now, f"next fire {next_fire} is not after now {now}"
    emitted = [fire for fire, _, _ in process.recorder.emitted]
    assert next_fire > max(emitted, default=now), f"next fire {next_fire} was emitted already"


class World:
    """What outlives a process: the clock, the Runs and the record of what was emitted."""

    def __init__(self, start: datetime) -> None:
        self.clock = ManualClock(start)
        self.sink = InMemoryRunSink()
        self.recorder = Recorder(self.clock)
        self.processes: list[Process] = []

    def process(self) -> Process:
        process = Process(self.clock, self.sink, self.recorder)
        self.processes.append(process)
        return process

    def resume_from(self) -> datetime:
        """The newest fire that has its Run: what the operator passes a new process (from its Run index)."""
        return max(event.scheduled_fire for event in self.sink.events.values())

    def assert_fired_exactly(self, expected: list[datetime]) -> None:
        """Each expected fire emitted once, in order, creating its Run; a repeat would show as `created=False`."""
        assert [(fire, created) for fire, _, created in self.recorder.emitted] == [(fire, True) for fire in expected]
        early = [(fire, at) for fire, at, _ in self.recorder.emitted if at < fire]
        assert early == [], "fires emitted before their instant"


@pytest.fixture
async def world() -> AsyncIterator[World]:
    # Each test sets its own start time with `clock.set` before starting a process.
    w = World(utc(2026, 1, 1))
    yield w
    for process in w.processes:
        await process.stop()


def spec(schedule: str, zone: str, **fields: object) -> CronSpec:
    return CronSpec.model_validate({"name": NAME, "schedule": schedule, "time_zone": zone, **fields})


HALF_HOUR_STEP = timedelta(minutes=10)
DAILY_STEP = timedelta(hours=3)


@pytest.mark.parametrize(
    ("schedule", "zone", "start", "end", "step", "expected"),
    [
        pytest.param(
            "30 2 * * *",
            BERLIN,
            utc(2026, 3, 28),
            utc(2026, 3, 30, 6),
            DAILY_STEP,
            [
                utc(2026, 3, 28, 1, 30),  # 02:30 CET
                utc(2026, 3, 29, 1, 0),  # 02:30 does not exist: 03:00 CEST, the first instant after the gap
                utc(2026, 3, 30, 0, 30),  # 02:30 CEST
            ],
            id="berlin-spring-forward-daily",
        ),
        pytest.param(
            "30 2 * * *",
            BERLIN,
            utc(2026, 10, 24),
            utc(2026, 10, 26, 6),
            DAILY_STEP,
            [
                utc(2026, 10, 24, 0, 30),  # 02:30 CEST
                utc(2026, 10, 25, 0, 30),  # the first 02:30 (CEST) only, not 02:30 CET at 01:30 UTC
                utc(2026, 10, 26, 1, 30),  # 02:30 CET
            ],
            id="berlin-fall-back-daily",
        ),
        pytest.param(
            "*/30 * * * *",
            BERLIN,
            utc(2026, 3, 28, 23),
            utc(2026, 3, 29, 3),
            HALF_HOUR_STEP,
            [
                utc(2026, 3, 28, 23, 30),  # 00:30 CET
                utc(2026, 3, 29, 0, 0),  # 01:00 CET
                utc(2026, 3, 29, 0, 30),  # 01:30 CET
                utc(2026, 3, 29, 1, 0),  # 03:00 CEST: 02:00 and 02:30 do not exist
                utc(2026, 3, 29, 1, 30),  # 03:30 CEST
                utc(2026, 3, 29, 2, 0),
                utc(2026, 3, 29, 2, 30),
                utc(2026, 3, 29, 3, 0),
            ],
            id="berlin-spring-forward-half-hourly",
        ),
        pytest.param(
            "*/30 * * * *",
            BERLIN,
            utc(2026, 10, 24, 23),
            utc(2026, 10, 25, 3),
            HALF_HOUR_STEP,
            [
                utc(2026, 10, 24, 23, 30),  # 01:30 CEST
                utc(2026, 10, 25, 0, 0),  # 02:00 CEST
                utc(2026, 10, 25, 0, 30),  # 02:30 CEST
                utc(2026, 10, 25, 1, 0),  # 02:00 CET: the repeated hour fires again, each a distinct instant
                utc(2026, 10, 25, 1, 30),  # 02:30 CET
                utc(2026, 10, 25, 2, 0),  # 03:00 CET
                utc(2026, 10, 25, 2, 30),
                utc(2026, 10, 25, 3, 0),
            ],
            id="berlin-fall-back-half-hourly",
        ),
        pytest.param(
            "30 2 * * *",
            NEW_YORK,
            utc(2026, 3, 7),
            utc(2026, 3, 9, 12),
            DAILY_STEP,
            [
                utc(2026, 3, 7, 7, 30),  # 02:30 EST
                utc(2026, 3, 8, 7, 0),  # 02:30 does not exist: 03:00 EDT
                utc(2026, 3, 9, 6, 30),  # 02:30 EDT
            ],
            id="new-york-spring-forward-daily",
        ),
        pytest.param(
            "30 2 * * *",
            NEW_YORK,
            utc(2026, 10, 31),
            utc(2026, 11, 2, 12),
            DAILY_STEP,
            [
                utc(2026, 10, 31, 6, 30),  # 02:30 EDT
                utc(2026, 11, 1, 7, 30),  # 02:30 EST: not in the repeated hour (01:00-02:00), so just 25 h later
                utc(2026, 11, 2, 7, 30),
            ],
            id="new-york-fall-back-daily",
        ),
        pytest.param(
            "30 1 * * *",
            NEW_YORK,
            utc(2026, 10, 31),
            utc(2026, 11, 2, 12),
            DAILY_STEP,
            [
                utc(2026, 10, 31, 5, 30),  # 01:30 EDT
                utc(2026, 11, 1, 5, 30),  # the first 01:30 (EDT) only, not 01:30 EST at 06:30 UTC
                utc(2026, 11, 2, 6, 30),  # 01:30 EST
            ],
            id="new-york-fall-back-daily-in-the-repeated-hour",
        ),
        pytest.param(
            "*/30 * * * *",
            NEW_YORK,
            utc(2026, 11, 1, 4, 45),
            utc(2026, 11, 1, 7, 15),
            HALF_HOUR_STEP,
            [
                utc(2026, 11, 1, 5, 0),  # 01:00 EDT
                utc(2026, 11, 1, 5, 30),  # 01:30 EDT
                utc(2026, 11, 1, 6, 0),  # 01:00 EST
                utc(2026, 11, 1, 6, 30),  # 01:30 EST
                utc(2026, 11, 1, 7, 0),  # 02:00 EST
            ],
            id="new-york-fall-back-half-hourly",
        ),
    ],
)
async def test_fires_across_a_transition(
    world: World,
    schedule: str,
    zone: str,
    start: datetime,
    end: datetime,
    step: timedelta,
    expected: list[datetime],
) -> None:
    world.clock.set(start)
    process = world.process()
    await process.start(spec(schedule, zone))
    await process.run(end, step=step)
    world.assert_fired_exactly(expected)


# Berlin's fall-back night, in UTC: 00:00-01:00 is 02:00-03:00 CEST, 01:00-02:00 is 02:00-03:00 CET.
FALL_BACK_EVE = utc(2026, 10, 24, 23)


@pytest.mark.parametrize(
    ("catch_up", "expected", "missed"),
    [
        pytest.param(
            "All",
            [utc(2026, 10, 25, 0, 0), utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1, 0), utc(2026, 10, 25, 1, 30)],
            [],
            id="all",
        ),
        pytest.param(
            "Latest",
            [utc(2026, 10, 25, 0, 0), utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1, 30)],
            [(1, utc(2026, 10, 25, 1, 0))],
            id="latest",
        ),
        pytest.param(
            "None",
            [utc(2026, 10, 25, 0, 0), utc(2026, 10, 25, 0, 30)],
            [(2, utc(2026, 10, 25, 1, 30))],
            id="none",
        ),
    ],
)
async def test_restart_across_the_repeated_hour_catches_up_the_second_pass_only(
    world: World, catch_up: str, expected: list[datetime], missed: list[tuple[int, datetime]]
) -> None:
    # Down from 02:40 CEST to 02:40 CET: the wall times 02:00 and 02:30 came round again while it was down. Those
    # of the second pass (01:00, 01:30 UTC) are missed fires; those of the first pass have their Runs already.
    half_hourly = spec("*/30 * * * *", BERLIN, catch_up=catch_up, catch_up_limit=10)
    world.clock.set(FALL_BACK_EVE + timedelta(minutes=45))
    first = world.process()
    await first.start(half_hourly)
    await first.run(utc(2026, 10, 25, 0, 40), step=HALF_HOUR_STEP)
    await first.stop()
    world.clock.set(utc(2026, 10, 25, 1, 40))
    second = world.process()
    await second.start(half_hourly.model_copy(update={"resume_from": world.resume_from()}), catch_up=True)
    await second.run(utc(2026, 10, 25, 2, 10), step=HALF_HOUR_STEP)
    world.assert_fired_exactly([*expected, utc(2026, 10, 25, 2, 0)])
    assert world.recorder.missed_fires == missed


@pytest.mark.parametrize("catch_up", ["All", "Latest", "None"])
@pytest.mark.parametrize("down_for", [timedelta(0), timedelta(minutes=10)], ids=["no-gap", "down-10-min"])
async def test_restart_inside_the_repeated_hour_continues_the_half_hourly_rhythm(
    world: World, catch_up: str, down_for: timedelta
) -> None:
    half_hourly = spec("*/30 * * * *", BERLIN, catch_up=catch_up)
    world.clock.set(FALL_BACK_EVE)
    first = world.process()
    await first.start(half_hourly)
    await first.run(utc(2026, 10, 25, 1, 10), step=HALF_HOUR_STEP)  # 02:10 CET, the second pass
    await first.stop()
    world.clock.set(utc(2026, 10, 25, 1, 10) + down_for)
    second = world.process()
    await second.start(half_hourly.model_copy(update={"resume_from": world.resume_from()}), catch_up=True)
    await second.run(utc(2026, 10, 25, 3), step=HALF_HOUR_STEP)
    world.assert_fired_exactly(
        [
            utc(2026, 10, 24, 23, 30),
            utc(2026, 10, 25, 0, 0),  # 02:00 CEST
            utc(2026, 10, 25, 0, 30),  # 02:30 CEST
            utc(2026, 10, 25, 1, 0),  # 02:00 CET, the newest fire with a Run when the first process stopped
            utc(2026, 10, 25, 1, 30),  # 02:30 CET, from the second process
            utc(2026, 10, 25, 2, 0),
            utc(2026, 10, 25, 2, 30),
            utc(2026, 10, 25, 3, 0),
        ]
    )
    assert world.recorder.missed_fires == []


@pytest.mark.parametrize("catch_up", ["All", "Latest", "None"])
@pytest.mark.parametrize(
    ("schedule", "zone", "eve", "stopped", "expected"),
    [
        pytest.param(
            "30 2 * * *",
            BERLIN,
            utc(2026, 10, 24, 12),
            utc(2026, 10, 25, 1, 10),  # 02:10 CET: 02:30 comes round again in 20 minutes
            [utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)],  # 02:30 CEST, then the next day's 02:30 CET
            id="berlin-30-2",
        ),
        pytest.param(
            "30 1 * * *",
            NEW_YORK,
            utc(2026, 10, 31, 12),
            utc(2026, 11, 1, 6, 10),  # 01:10 EST: 01:30 comes round again in 20 minutes
            [utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)],  # 01:30 EDT, then the next day's 01:30 EST
            id="new-york-30-1",
        ),
    ],
)
async def test_restart_inside_the_repeated_hour_does_not_fire_a_daily_schedule_again(
    world: World,
    catch_up: str,
    schedule: str,
    zone: str,
    eve: datetime,
    stopped: datetime,
    expected: list[datetime],
) -> None:
    # A deadline, as most CronTriggers have: a fire repeated late would be counted missed as well as emitted.
    daily = spec(schedule, zone, catch_up=catch_up, starting_deadline_seconds=600)
    world.clock.set(eve)
    first = world.process()
    await first.start(daily)
    await first.run(stopped, step=DAILY_STEP)
    await first.stop()
    second = world.process()
    await second.start(daily.model_copy(update={"resume_from": world.resume_from()}), catch_up=True)
    await second.run(expected[-1] + DAILY_STEP, step=DAILY_STEP)
    world.assert_fired_exactly(expected)
    assert world.recorder.missed_fires == []


@pytest.mark.parametrize(
    "edit_at",
    [utc(2026, 10, 25, 1, 0), utc(2026, 10, 25, 1, 10)],
    ids=["at-the-0200-cet-fire", "at-0210-cet"],
)
async def test_edit_inside_the_repeated_hour_counts_from_the_edit(world: World, edit_at: datetime) -> None:
    world.clock.set(FALL_BACK_EVE)
    process = world.process()
    await process.start(spec("*/30 * * * *", BERLIN))
    await process.run(edit_at, step=HALF_HOUR_STEP)
    process.apply(spec("*/15 * * * *", BERLIN))
    await process.run(utc(2026, 10, 25, 2, 0), step=HALF_HOUR_STEP)
    world.assert_fired_exactly(
        [
            utc(2026, 10, 24, 23, 30),
            utc(2026, 10, 25, 0, 0),  # 02:00 CEST
            utc(2026, 10, 25, 0, 30),  # 02:30 CEST
            utc(2026, 10, 25, 1, 0),  # 02:00 CET, the old schedule's last fire, once even when edited right at it
            utc(2026, 10, 25, 1, 15),  # 02:15 CET, the new schedule's first
            utc(2026, 10, 25, 1, 30),
            utc(2026, 10, 25, 1, 45),
            utc(2026, 10, 25, 2, 0),
        ]
    )


async def test_edit_of_a_daily_time_inside_the_repeated_hour_waits_for_the_next_day(world: World) -> None:
    # 02:45 had its one occurrence (CEST, 00:45 UTC) before the edit at 02:10 CET; it does not fire at 02:45 CET.
    world.clock.set(utc(2026, 10, 24, 12))
    process = world.process()
    await process.start(spec("30 2 * * *", BERLIN))
    await process.run(utc(2026, 10, 25, 1, 10), step=DAILY_STEP)
    process.apply(spec("45 2 * * *", BERLIN))
    await process.run(utc(2026, 10, 26, 12), step=DAILY_STEP)
    world.assert_fired_exactly([utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 45)])


# The clock steps back 30 minutes at 02:45 CET, as after an NTP correction, to 02:15 CET: it reads 02:30 CET, a fire
# already emitted, a second time.
STEP_AT = utc(2026, 10, 25, 1, 45)
STEPPED_TO = utc(2026, 10, 25, 1, 15)


def step_back(world: World) -> None:
    world.clock.set(STEPPED_TO)
    assert world.clock.now() == STEPPED_TO, "the clock did not step back"


async def test_backward_clock_step_fires_nothing_twice_or_early(world: World) -> None:
    world.clock.set(FALL_BACK_EVE)
    process = world.process()
    await process.start(spec("*/30 * * * *", BERLIN))
    await process.run(STEP_AT, step=HALF_HOUR_STEP)
    step_back(world)
    assert_next_fire_ahead(process)
    await process.run(utc(2026, 10, 25, 2, 30), step=HALF_HOUR_STEP)
    world.assert_fired_exactly(
        [
            utc(2026, 10, 24, 23, 30),
            utc(2026, 10, 25, 0, 0),
            utc(2026, 10, 25, 0, 30),
            utc(2026, 10, 25, 1, 0),
            utc(2026, 10, 25, 1, 30),  # fired before the step, not again when the clock reads 01:30 a second time
            utc(2026, 10, 25, 2, 0),
            utc(2026, 10, 25, 2, 30),
        ]
    )


async def test_edit_after_a_backward_clock_step_does_not_go_back_over_fired_slots(world: World) -> None:
    world.clock.set(FALL_BACK_EVE)
    process = world.process()
    await process.start(spec("*/30 * * * *", BERLIN))
    await process.run(STEP_AT, step=HALF_HOUR_STEP)
    step_back(world)
    process.apply(spec("*/15 * * * *", BERLIN))
    await process.run(utc(2026, 10, 25, 2, 0), step=HALF_HOUR_STEP)
    # The clock reads 01:15 at the edit but 01:30 has fired: the new schedule starts after it, not again at 01:30.
    world.assert_fired_exactly(
        [
            utc(2026, 10, 24, 23, 30),
            utc(2026, 10, 25, 0, 0),
            utc(2026, 10, 25, 0, 30),
            utc(2026, 10, 25, 1, 0),
            utc(2026, 10, 25, 1, 30),
            utc(2026, 10, 25, 1, 45),
            utc(2026, 10, 25, 2, 0),
        ]
    )


@pytest.mark.parametrize("catch_up", ["All", "Latest", "None"])
async def test_restart_after_a_backward_clock_step_resumes_after_the_newest_run(world: World, catch_up: str) -> None:
    half_hourly = spec("*/30 * * * *", BERLIN, catch_up=catch_up)
    world.clock.set(FALL_BACK_EVE)
    first = world.process()
    await first.start(half_hourly)
    await first.run(STEP_AT, step=HALF_HOUR_STEP)
    await first.stop()
    step_back(world)
    second = world.process()
    await second.start(half_hourly.model_copy(update={"resume_from": world.resume_from()}), catch_up=True)
    await second.run(utc(2026, 10, 25, 2, 30), step=HALF_HOUR_STEP)
    world.assert_fired_exactly(
        [
            utc(2026, 10, 24, 23, 30),
            utc(2026, 10, 25, 0, 0),
            utc(2026, 10, 25, 0, 30),
            utc(2026, 10, 25, 1, 0),
            utc(2026, 10, 25, 1, 30),  # has its Run: the new process, started at 01:15, does not fire it again
            utc(2026, 10, 25, 2, 0),
            utc(2026, 10, 25, 2, 30),
        ]
    )
    assert world.recorder.missed_fires == []


# -- spec.daylightSaving -------------------------------------------------------------------------------------------
#
# 2026 and 2027, in UTC. Europe/Berlin skips 02:00-03:00 at 01:00 on 2026-03-29 and 2027-03-28, and repeats it from
# 00:00 to 02:00 on 2026-10-25 and 2027-10-31. America/New_York skips 02:00-03:00 at 07:00 on 2026-03-08 and
# 2027-03-14, and repeats 01:00-02:00 from 05:00 to 07:00 on 2026-11-01 and 2027-11-07.

POLICIES = [
    pytest.param(repeated, skipped, id=f"{repeated}-{skipped}")
    for repeated in ("Once", "Both")
    for skipped in ("RunAtNextValidTime", "Skip")
]


def policy_spec(schedule: str, zone: str, repeated: str, skipped: str, **fields: object) -> CronSpec:
    return spec(schedule, zone, repeated_time=repeated, skipped_time=skipped, **fields)


# (schedule, zone, start, end, fires by the policy value that matters there; the other policy changes nothing)
SPRING_FORWARD = {
    "berlin-2026": (
        "30 2 * * *",
        BERLIN,
        utc(2026, 3, 28),
        utc(2026, 3, 30, 6),
        {
            "RunAtNextValidTime": [utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1, 0), utc(2026, 3, 30, 0, 30)],
            "Skip": [utc(2026, 3, 28, 1, 30), utc(2026, 3, 30, 0, 30)],  # 02:30 CET, -, 02:30 CEST
        },
    ),
    "berlin-2027": (
        "30 2 * * *",
        BERLIN,
        utc(2027, 3, 27),
        utc(2027, 3, 29, 6),
        {
            "RunAtNextValidTime": [utc(2027, 3, 27, 1, 30), utc(2027, 3, 28, 1, 0), utc(2027, 3, 29, 0, 30)],
            "Skip": [utc(2027, 3, 27, 1, 30), utc(2027, 3, 29, 0, 30)],
        },
    ),
    "new-york-2026": (
        "30 2 * * *",
        NEW_YORK,
        utc(2026, 3, 7),
        utc(2026, 3, 9, 12),
        {
            "RunAtNextValidTime": [utc(2026, 3, 7, 7, 30), utc(2026, 3, 8, 7, 0), utc(2026, 3, 9, 6, 30)],
            "Skip": [utc(2026, 3, 7, 7, 30), utc(2026, 3, 9, 6, 30)],  # 02:30 EST, -, 02:30 EDT
        },
    ),
    "new-york-2027": (
        "30 2 * * *",
        NEW_YORK,
        utc(2027, 3, 13),
        utc(2027, 3, 15, 12),
        {
            "RunAtNextValidTime": [utc(2027, 3, 13, 7, 30), utc(2027, 3, 14, 7, 0), utc(2027, 3, 15, 6, 30)],
            "Skip": [utc(2027, 3, 13, 7, 30), utc(2027, 3, 15, 6, 30)],
        },
    ),
}
FALL_BACK = {
    "berlin-2026": (
        "30 2 * * *",
        BERLIN,
        utc(2026, 10, 24),
        utc(2026, 10, 26, 6),
        {
            "Once": [utc(2026, 10, 24, 0, 30), utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)],
            # 02:30 CEST, 02:30 CEST, 02:30 CET (the repeat), 02:30 CET
            "Both": [
                utc(2026, 10, 24, 0, 30),
                utc(2026, 10, 25, 0, 30),
                utc(2026, 10, 25, 1, 30),
                utc(2026, 10, 26, 1, 30),
            ],
        },
    ),
    "berlin-2027": (
        "30 2 * * *",
        BERLIN,
        utc(2027, 10, 30),
        utc(2027, 11, 1, 6),
        {
            "Once": [utc(2027, 10, 30, 0, 30), utc(2027, 10, 31, 0, 30), utc(2027, 11, 1, 1, 30)],
            "Both": [
                utc(2027, 10, 30, 0, 30),
                utc(2027, 10, 31, 0, 30),
                utc(2027, 10, 31, 1, 30),
                utc(2027, 11, 1, 1, 30),
            ],
        },
    ),
    "new-york-2026": (
        "30 1 * * *",
        NEW_YORK,
        utc(2026, 10, 31),
        utc(2026, 11, 2, 12),
        {
            "Once": [utc(2026, 10, 31, 5, 30), utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)],
            # 01:30 EDT, 01:30 EDT, 01:30 EST (the repeat), 01:30 EST
            "Both": [
                utc(2026, 10, 31, 5, 30),
                utc(2026, 11, 1, 5, 30),
                utc(2026, 11, 1, 6, 30),
                utc(2026, 11, 2, 6, 30),
            ],
        },
    ),
    "new-york-2027": (
        "30 1 * * *",
        NEW_YORK,
        utc(2027, 11, 6),
        utc(2027, 11, 8, 12),
        {
            "Once": [utc(2027, 11, 6, 5, 30), utc(2027, 11, 7, 5, 30), utc(2027, 11, 8, 6, 30)],
            "Both": [
                utc(2027, 11, 6, 5, 30),
                utc(2027, 11, 7, 5, 30),
                utc(2027, 11, 7, 6, 30),
                utc(2027, 11, 8, 6, 30),
            ],
        },
    ),
}


@pytest.mark.parametrize(("repeated", "skipped"), POLICIES)
@pytest.mark.parametrize("transition", sorted(SPRING_FORWARD))
async def test_skipped_time_policy_at_a_spring_forward(
    world: World, transition: str, repeated: str, skipped: str
) -> None:
    schedule, zone, start, end, fires = SPRING_FORWARD[transition]
    world.clock.set(start)
    process = world.process()
    await process.start(policy_spec(schedule, zone, repeated, skipped))
    await process.run(end, step=DAILY_STEP)
    world.assert_fired_exactly(fires[skipped])


@pytest.mark.parametrize(("repeated", "skipped"), POLICIES)
@pytest.mark.parametrize("transition", sorted(FALL_BACK))
async def test_repeated_time_policy_at_a_fall_back(world: World, transition: str, repeated: str, skipped: str) -> None:
    schedule, zone, start, end, fires = FALL_BACK[transition]
    world.clock.set(start)
    process = world.process()
    await process.start(policy_spec(schedule, zone, repeated, skipped))
    await process.run(end, step=DAILY_STEP)
    world.assert_fired_exactly(fires[repeated])


@pytest.mark.parametrize(("repeated", "skipped"), POLICIES)
@pytest.mark.parametrize(
    ("schedule", "zone", "start", "end", "expected"),
    [
        pytest.param(
            "*/20 1 * * *",
            NEW_YORK,
            utc(2027, 11, 7, 4),
            utc(2027, 11, 8, 5),
            # 01:00, 01:20, 01:40 EDT, then the same in EST: each instant whose wall-clock time matches
            [utc(2027, 11, 7, 5, m) for m in (0, 20, 40)] + [utc(2027, 11, 7, 6, m) for m in (0, 20, 40)],
            id="new-york-2027-fall-back",
        ),
        pytest.param(
            "*/20 2 * * *",
            NEW_YORK,
            utc(2027, 3, 13, 6),
            utc(2027, 3, 15, 6, 50),
            # 02:00-02:40 EST on 03-13, nothing on 03-14 (02:00-03:00 does not exist), 02:00-02:40 EDT on 03-15
            [utc(2027, 3, 13, 7, m) for m in (0, 20, 40)] + [utc(2027, 3, 15, 6, m) for m in (0, 20, 40)],
            id="new-york-2027-spring-forward",
        ),
        pytest.param(
            "*/30 * * * *",
            BERLIN,
            utc(2027, 10, 30, 23, 50),
            utc(2027, 10, 31, 2),
            [utc(2027, 10, 31, 0, 0) + timedelta(minutes=30 * i) for i in range(5)],  # 02:00, 02:30 CEST, CET, 03:00
            id="berlin-2027-fall-back",
        ),
    ],
)
async def test_a_star_in_minute_or_hour_keeps_real_time_under_every_policy(
    world: World,
    schedule: str,
    zone: str,
    start: datetime,
    end: datetime,
    expected: list[datetime],
    repeated: str,
    skipped: str,
) -> None:
    world.clock.set(start)
    process = world.process()
    await process.start(policy_spec(schedule, zone, repeated, skipped))
    await process.run(end, step=HALF_HOUR_STEP)
    world.assert_fired_exactly(expected)


@pytest.mark.parametrize(("repeated", "skipped"), POLICIES)
@pytest.mark.parametrize("transition", sorted(FALL_BACK))
async def test_catch_up_across_a_fall_back_creates_what_the_policy_fires(
    world: World, transition: str, repeated: str, skipped: str
) -> None:
    # Down from the first day's fire until an hour after the repeated hour: catch-up All creates the missed fires.
    schedule, zone, start, end, fires = FALL_BACK[transition]
    daily = policy_spec(schedule, zone, repeated, skipped, catch_up="All")
    world.clock.set(start)
    first = world.process()
    await first.start(daily)
    await first.run(fires["Once"][0] + timedelta(minutes=10), step=DAILY_STEP)
    await first.stop()
    restart = fires["Both"][2] + timedelta(hours=1)
    world.clock.set(restart)
    second = world.process()
    await second.start(daily.model_copy(update={"resume_from": world.resume_from()}), catch_up=True)
    await second.run(end, step=DAILY_STEP)
    world.assert_fired_exactly(fires[repeated])
    caught_up = [fire for fire, at, _ in world.recorder.emitted if at == restart]
    assert caught_up == fires[repeated][1:-1]  # the transition day's fires: one with Once, both with Both
    assert world.recorder.missed_fires == []


@pytest.mark.parametrize(
    ("catch_up", "created", "missed"),
    [
        pytest.param("All", [utc(2026, 11, 1, 6, 30)], [], id="all"),
        pytest.param("Latest", [utc(2026, 11, 1, 6, 30)], [], id="latest"),
        pytest.param("None", [], [(1, utc(2026, 11, 1, 6, 30))], id="none"),
    ],
)
async def test_restart_between_the_two_occurrences_with_both(
    world: World, catch_up: str, created: list[datetime], missed: list[tuple[int, datetime]]
) -> None:
    # New York, 2026-11-01, Both: 01:30 EDT fired, the process went down at 01:40 EDT and came back at 01:40 EST,
    # after the second 01:30. That one is a missed fire of its own (a distinct instant), handled by catch-up.
    daily = policy_spec("30 1 * * *", NEW_YORK, "Both", "RunAtNextValidTime", catch_up=catch_up)
    world.clock.set(utc(2026, 10, 31, 12))
    first = world.process()
    await first.start(daily)
    await first.run(utc(2026, 11, 1, 5, 40), step=DAILY_STEP)
    await first.stop()
    world.clock.set(utc(2026, 11, 1, 6, 40))
    second = world.process()
    await second.start(daily.model_copy(update={"resume_from": world.resume_from()}), catch_up=True)
    await second.run(utc(2026, 11, 2, 12), step=DAILY_STEP)
    world.assert_fired_exactly([utc(2026, 11, 1, 5, 30), *created, utc(2026, 11, 2, 6, 30)])
    assert world.recorder.missed_fires == missed


@pytest.mark.parametrize("repeated", ["Once", "Both"])
async def test_restart_inside_the_repeated_hour_fires_the_second_occurrence_only_with_both(
    world: World, repeated: str
) -> None:
    # Berlin, 2027-10-31: 02:30 CEST fired; restarted at 02:10 CET, 20 minutes before 02:30 comes round again.
    daily = policy_spec("30 2 * * *", BERLIN, repeated, "RunAtNextValidTime", starting_deadline_seconds=600)
    world.clock.set(utc(2027, 10, 30, 12))
    first = world.process()
    await first.start(daily)
    await first.run(utc(2027, 10, 31, 1, 10), step=DAILY_STEP)
    await first.stop()
    second = world.process()
    await second.start(daily.model_copy(update={"resume_from": world.resume_from()}), catch_up=True)
    await second.run(utc(2027, 11, 1, 12), step=DAILY_STEP)
    repeat = [utc(2027, 10, 31, 1, 30)] if repeated == "Both" else []
    world.assert_fired_exactly([utc(2027, 10, 31, 0, 30), *repeat, utc(2027, 11, 1, 1, 30)])
    assert world.recorder.missed_fires == []


@pytest.mark.parametrize("skipped", ["RunAtNextValidTime", "Skip"])
@pytest.mark.parametrize("transition", sorted(SPRING_FORWARD))
async def test_catch_up_across_a_spring_forward_creates_what_the_policy_fires(
    world: World, transition: str, skipped: str
) -> None:
    # Down from the first day's fire until the next morning: Latest creates the skipped time's fire at the gap's
    # end, or nothing with Skip; either way nothing is missed.
    schedule, zone, start, end, fires = SPRING_FORWARD[transition]
    daily = policy_spec(schedule, zone, "Once", skipped, catch_up="Latest")
    world.clock.set(start)
    first = world.process()
    await first.start(daily)
    await first.run(fires["Skip"][0] + timedelta(minutes=10), step=DAILY_STEP)
    await first.stop()
    restart = fires["RunAtNextValidTime"][1] + timedelta(hours=2)
    world.clock.set(restart)
    second = world.process()
    await second.start(daily.model_copy(update={"resume_from": world.resume_from()}), catch_up=True)
    await second.run(end, step=DAILY_STEP)
    world.assert_fired_exactly(fires[skipped])
    caught_up = [fire for fire, at, _ in world.recorder.emitted if at == restart]
    assert caught_up == ([fires["RunAtNextValidTime"][1]] if skipped == "RunAtNextValidTime" else [])
    assert world.recorder.missed_fires == []
