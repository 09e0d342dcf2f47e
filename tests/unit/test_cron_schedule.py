"""Cron fire times, including real daylight-saving transitions in a northern and a southern zone."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from stargraph.triggers.cron_schedule import CronSchedule, ScheduleError, fire_times, plan_catch_up


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def fires(expression: str, zone: str, start_local: datetime, count: int) -> list[datetime]:
    schedule = CronSchedule.parse(expression, zone)
    iterator = schedule.fires_after(start_local.replace(tzinfo=ZoneInfo(zone)))
    return [next(iterator) for _ in range(count)]


def test_five_and_six_field_expressions() -> None:
    start = utc(2026, 1, 1)
    assert fires("*/15 * * * *", "UTC", start.replace(tzinfo=None), 2) == [
        utc(2026, 1, 1, 0, 15),
        utc(2026, 1, 1, 0, 30),
    ]
    # Six fields: seconds come first.
    assert fires("*/20 * * * * *", "UTC", start.replace(tzinfo=None), 3) == [
        utc(2026, 1, 1, 0, 0, 20),
        utc(2026, 1, 1, 0, 0, 40),
        utc(2026, 1, 1, 0, 1, 0),
    ]


def test_time_zone_is_honoured() -> None:
    assert fires("0 9 * * *", "America/New_York", datetime(2026, 1, 5), 1) == [utc(2026, 1, 5, 14)]


class TestEuropeBerlin:
    """CET/CEST: spring forward 2026-03-29 02:00→03:00, fall back 2026-10-25 03:00→02:00."""

    def test_skipped_wall_time_fires_once_right_after_the_gap(self) -> None:
        assert fires("30 2 * * *", "Europe/Berlin", datetime(2026, 3, 28, 12), 2) == [
            utc(2026, 3, 29, 1, 0),  # 03:00 CEST: 02:30 does not exist that night
            utc(2026, 3, 30, 0, 30),
        ]

    def test_repeated_wall_time_fires_once(self) -> None:
        assert fires("30 2 * * *", "Europe/Berlin", datetime(2026, 10, 24, 12), 2) == [
            utc(2026, 10, 25, 0, 30),  # the first 02:30 (CEST) only
            utc(2026, 10, 26, 1, 30),
        ]

    def test_from_inside_the_second_pass_the_repeated_time_is_not_fired_again(self) -> None:
        # From 02:10 CET (fold=1): 02:30 had its one turn as CEST, 40 minutes before the start.
        assert fires("30 2 * * *", "Europe/Berlin", datetime(2026, 10, 25, 2, 10, fold=1), 1) == [
            utc(2026, 10, 26, 1, 30)
        ]

    def test_interval_schedule_keeps_its_rhythm_through_the_repeated_hour(self) -> None:
        got = fires("*/30 * * * *", "Europe/Berlin", datetime(2026, 10, 25, 1, 40), 5)
        assert got == [utc(2026, 10, 25, 0, 0) + timedelta(minutes=30 * i) for i in range(5)]


class TestAustraliaSydney:
    """AEST/AEDT (southern hemisphere): fall back 2026-04-05 03:00→02:00, spring forward 2026-10-04 02:00→03:00."""

    def test_skipped_wall_time_fires_once_right_after_the_gap(self) -> None:
        assert fires("30 2 * * *", "Australia/Sydney", datetime(2026, 10, 3, 12), 2) == [
            utc(2026, 10, 3, 16, 0),  # 03:00 AEDT
            utc(2026, 10, 4, 15, 30),
        ]

    def test_repeated_wall_time_fires_once(self) -> None:
        assert fires("30 2 * * *", "Australia/Sydney", datetime(2026, 4, 4, 12), 2) == [
            utc(2026, 4, 4, 15, 30),  # 02:30 AEDT, the first occurrence
            utc(2026, 4, 5, 16, 30),  # the next day, AEST
        ]


def test_fire_times_window_is_half_open_and_capped() -> None:
    schedule = CronSchedule.parse("0 * * * *")
    window = fire_times(schedule, start=utc(2026, 1, 1, 0), end=utc(2026, 1, 1, 3))
    assert window == [utc(2026, 1, 1, 1), utc(2026, 1, 1, 2), utc(2026, 1, 1, 3)]
    assert fire_times(schedule, start=utc(2026, 1, 1, 0), end=utc(2026, 1, 1, 3), limit=2) == window[:2]
    assert fire_times(schedule, start=utc(2026, 1, 1, 0), end=utc(2026, 1, 1, 0, 59)) == []


def test_explain_describes_the_schedule() -> None:
    assert CronSchedule.parse("0 9 * * 1-5").explain() == "At 09:00 on Monday through Friday"


@pytest.mark.parametrize(
    ("expression", "zone", "field", "fragment"),
    [
        ("61 * * * *", "UTC", "schedule", "not a valid cron expression"),
        ("* * *", "UTC", "schedule", "3 fields"),
        ("* * * * * * *", "UTC", "schedule", "7 fields"),
        ("*/5 * * * *", "Mars/Olympus_Mons", "timeZone", "unknown time zone"),
        ("*/5 * * * *", "../../etc/passwd", "timeZone", "unknown time zone"),
    ],
)
def test_invalid_input_names_the_field(expression: str, zone: str, field: str, fragment: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        CronSchedule.parse(expression, zone)
    assert caught.value.field == field
    assert fragment in str(caught.value)


class TestCatchUpPlan:
    schedule = CronSchedule.parse("*/10 * * * *")
    since = utc(2026, 1, 1, 0, 0)
    now = utc(2026, 1, 1, 1, 5)  # six fires missed: 00:10 ... 01:00

    def plan(self, *, deadline: int | None, policy: str, limit: int = 10) -> tuple[list[datetime], int]:
        plan = plan_catch_up(
            self.schedule, since=self.since, now=self.now, deadline_seconds=deadline, policy=policy, limit=limit
        )
        return plan.create, plan.missed

    def test_latest_creates_only_the_newest(self) -> None:
        assert self.plan(deadline=None, policy="Latest") == ([utc(2026, 1, 1, 1, 0)], 5)

    def test_all_creates_each_up_to_the_limit_newest_kept(self) -> None:
        assert self.plan(deadline=None, policy="All") == (
            [utc(2026, 1, 1, 0, 10 * i) for i in range(1, 6)] + [utc(2026, 1, 1, 1, 0)],
            0,
        )
        assert self.plan(deadline=None, policy="All", limit=2) == ([utc(2026, 1, 1, 0, 50), utc(2026, 1, 1, 1, 0)], 4)

    def test_none_creates_nothing_and_counts_all(self) -> None:
        assert self.plan(deadline=None, policy="None") == ([], 6)

    def test_deadline_excludes_older_fires(self) -> None:
        # 01:05 - 1000 s = 00:48:20: only 00:50 and 01:00 are inside.
        assert self.plan(deadline=1000, policy="All") == ([utc(2026, 1, 1, 0, 50), utc(2026, 1, 1, 1, 0)], 4)
        assert self.plan(deadline=60, policy="All") == ([], 6)

    def test_nothing_missed(self) -> None:
        plan = plan_catch_up(self.schedule, since=self.now, now=self.now, deadline_seconds=None, policy="All", limit=10)
        assert plan.create == [] and plan.missed == 0

    def test_the_newest_missed_fire_is_named_so_a_later_catch_up_starts_after_it(self) -> None:
        def latest(**kwargs: object) -> datetime | None:
            arguments: dict[str, object] = {"deadline_seconds": None, "limit": 10, **kwargs}
            return plan_catch_up(self.schedule, since=self.since, now=self.now, **arguments).latest_missed  # type: ignore[arg-type]

        assert latest(policy="Latest") == utc(2026, 1, 1, 0, 50)  # 01:00 is created
        assert latest(policy="None") == utc(2026, 1, 1, 1, 0)
        assert latest(policy="All", deadline_seconds=1000) == utc(2026, 1, 1, 0, 40)  # past the deadline
        assert latest(policy="All") is None  # nothing missed
