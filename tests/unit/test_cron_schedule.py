"""Cron fire times, including real daylight-saving transitions in a northern and a southern zone."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from stargraph.triggers.cron_schedule import CronSchedule, DaylightSaving, ScheduleError, fire_times, plan_catch_up


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


def policy_fires(
    expression: str, zone: str, start: datetime, count: int, *, repeated: str = "Once", skipped: str = "Skip"
) -> list[datetime]:
    policy = DaylightSaving(repeated_time=repeated, skipped_time=skipped)  # type: ignore[arg-type]
    iterator = CronSchedule.parse(expression, zone, daylight_saving=policy).fires_after(start)
    return [next(iterator) for _ in range(count)]


class TestDaylightSavingPolicy:
    """Europe/Berlin 2026: 02:00-03:00 skipped on 03-29 (01:00 UTC), repeated on 10-25 (00:00-02:00 UTC)."""

    def test_both_fires_a_repeated_time_at_each_occurrence(self) -> None:
        assert policy_fires("30 2 * * *", "Europe/Berlin", utc(2026, 10, 24, 12), 3, repeated="Both") == [
            utc(2026, 10, 25, 0, 30),  # 02:30 CEST
            utc(2026, 10, 25, 1, 30),  # 02:30 CET
            utc(2026, 10, 26, 1, 30),
        ]

    def test_both_orders_the_occurrences_of_several_repeated_times_by_instant(self) -> None:
        # Wall-clock order is 02:00 (twice), 02:30 (twice); the instants interleave the two passes.
        assert policy_fires("0,30 2,3 * * *", "Europe/Berlin", utc(2026, 10, 24, 12), 6, repeated="Both") == [
            utc(2026, 10, 25, 0, 0),  # 02:00 CEST
            utc(2026, 10, 25, 0, 30),  # 02:30 CEST
            utc(2026, 10, 25, 1, 0),  # 02:00 CET
            utc(2026, 10, 25, 1, 30),  # 02:30 CET
            utc(2026, 10, 25, 2, 0),  # 03:00 CET
            utc(2026, 10, 25, 2, 30),  # 03:30 CET
        ]

    @pytest.mark.parametrize(
        ("start", "expected"),
        [
            # In the first pass, after 02:30 CEST: the second 02:30 is still ahead.
            pytest.param(utc(2026, 10, 25, 0, 40), [utc(2026, 10, 25, 1, 30), utc(2026, 10, 26, 1, 30)], id="first"),
            # In the second pass, before 02:30 CET.
            pytest.param(utc(2026, 10, 25, 1, 10), [utc(2026, 10, 25, 1, 30), utc(2026, 10, 26, 1, 30)], id="second"),
            # Right at the second occurrence: strictly after it comes the next day.
            pytest.param(utc(2026, 10, 25, 1, 30), [utc(2026, 10, 26, 1, 30), utc(2026, 10, 27, 1, 30)], id="at"),
        ],
    )
    def test_both_from_inside_the_repeated_hour(self, start: datetime, expected: list[datetime]) -> None:
        assert policy_fires("30 2 * * *", "Europe/Berlin", start, 2, repeated="Both") == expected

    def test_skip_leaves_out_a_skipped_time(self) -> None:
        assert policy_fires("30 2 * * *", "Europe/Berlin", utc(2026, 3, 28), 3) == [
            utc(2026, 3, 28, 1, 30),
            utc(2026, 3, 30, 0, 30),  # nothing on 03-29
            utc(2026, 3, 31, 0, 30),
        ]

    def test_run_at_next_valid_time_makes_several_skipped_times_one_fire(self) -> None:
        got = policy_fires("0,30 2 * * *", "Europe/Berlin", utc(2026, 3, 28, 12), 2, skipped="RunAtNextValidTime")
        assert got == [utc(2026, 3, 29, 1, 0), utc(2026, 3, 30, 0, 0)]  # 02:00 and 02:30 both at 03:00 CEST

    @pytest.mark.parametrize("skipped", ["RunAtNextValidTime", "Skip"])
    def test_a_time_of_its_own_at_the_end_of_the_gap_fires_once_either_way(self, skipped: str) -> None:
        # 03:00 CEST is a time of the schedule, so it fires; with RunAtNextValidTime the skipped 02:00 and 02:30
        # fire there too, as the same one fire.
        assert policy_fires("0 3 * * *", "Europe/Berlin", utc(2026, 3, 28, 12), 1, skipped=skipped) == [
            utc(2026, 3, 29, 1, 0)
        ]
        assert policy_fires("0,30 2,3 * * *", "Europe/Berlin", utc(2026, 3, 28, 12), 2, skipped=skipped) == [
            utc(2026, 3, 29, 1, 0),  # 03:00 CEST, once
            utc(2026, 3, 29, 1, 30),  # 03:30 CEST
        ]

    def test_six_field_schedules_follow_the_policy_too(self) -> None:
        assert policy_fires(
            "15 30 2 * * *", "Europe/Berlin", utc(2026, 3, 28, 12), 1, skipped="RunAtNextValidTime"
        ) == [
            utc(2026, 3, 29, 1, 0)  # 03:00:00 CEST, the first instant after the gap, not 03:00:15
        ]
        assert policy_fires("15 30 2 * * *", "Europe/Berlin", utc(2026, 10, 24, 12), 2) == [
            utc(2026, 10, 25, 0, 30, 15),
            utc(2026, 10, 26, 1, 30, 15),
        ]

    @pytest.mark.parametrize("repeated", ["Once", "Both"])
    @pytest.mark.parametrize("skipped", ["RunAtNextValidTime", "Skip"])
    def test_a_star_in_minute_or_hour_keeps_real_time_whatever_the_policy(self, repeated: str, skipped: str) -> None:
        assert policy_fires(
            "*/30 2 * * *", "Europe/Berlin", utc(2026, 10, 24, 12), 5, repeated=repeated, skipped=skipped
        ) == [
            utc(2026, 10, 25, 0, 0),
            utc(2026, 10, 25, 0, 30),
            utc(2026, 10, 25, 1, 0),
            utc(2026, 10, 25, 1, 30),
            utc(2026, 10, 26, 1, 0),
        ]
        assert policy_fires(
            "*/30 2 * * *", "Europe/Berlin", utc(2026, 3, 28, 12), 2, repeated=repeated, skipped=skipped
        ) == [
            utc(2026, 3, 30, 0, 0),  # no 02:xx exists on 03-29, and nothing moves to 03:00
            utc(2026, 3, 30, 0, 30),
        ]

    def test_catch_up_and_fire_times_honour_the_policy(self) -> None:
        both = CronSchedule.parse("30 2 * * *", "Europe/Berlin", daylight_saving=DaylightSaving(repeated_time="Both"))
        window = fire_times(both, start=utc(2026, 10, 24, 12), end=utc(2026, 10, 25, 2))
        assert window == [utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1, 30)]
        plan = plan_catch_up(
            both, since=utc(2026, 10, 24, 12), now=utc(2026, 10, 25, 2), deadline_seconds=None, policy="All", limit=10
        )
        assert plan.create == window and plan.missed == 0
        skip = CronSchedule.parse("30 2 * * *", "Europe/Berlin", daylight_saving=DaylightSaving(skipped_time="Skip"))
        plan = plan_catch_up(
            skip, since=utc(2026, 3, 28, 12), now=utc(2026, 3, 29, 12), deadline_seconds=None, policy="All", limit=10
        )
        assert plan.create == [] and plan.missed == 0

    def test_skipped_between_names_the_wall_clock_times_a_gap_took(self) -> None:
        schedule = CronSchedule.parse("0,30 2 * * *", "Europe/Berlin")
        assert schedule.skipped_between(utc(2026, 3, 28, 12), utc(2026, 3, 29, 1)) == [
            datetime(2026, 3, 29, 2, 0),
            datetime(2026, 3, 29, 2, 30),
        ]
        assert schedule.skipped_between(utc(2026, 3, 29, 1), utc(2026, 3, 31)) == []
        assert (
            CronSchedule.parse("*/30 * * * *", "Europe/Berlin").skipped_between(utc(2026, 3, 29), utc(2026, 3, 30))
            == []
        )
