"""CronJob's schedule syntax read with CronJob's meaning: the rewrite for cronsim, and the fire times it gives."""

from datetime import UTC, datetime

import pytest

from stargraph.api.cron_syntax import MACROS, TZ_MESSAGE, CronSyntaxError, cronsim_expression
from stargraph.triggers.cron_schedule import CronSchedule, ScheduleError

START = datetime(2026, 1, 1, tzinfo=UTC)  # a Thursday


def first_fires(schedule: str, count: int = 12) -> list[datetime]:
    fires = CronSchedule.parse(schedule).fires_after(START)
    return [next(fires) for _ in range(count)]


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        ("@monthly", "0 0 1 * *"),
        ("@weekly", "0 0 * * 0"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@hourly", "0 * * * *"),
        ("0 9 * jan-MAR mon-fri", "0 9 * 1-3 1-5"),
        ("0 0 * * Sun,SAT", "0 0 * * 0,6"),
        ("? ? ? ? ?", "* * * * *"),
        ("*-5 * * * *", "* * * * *"),  # CronJob ignores what follows a star's hyphen
        ("*/1 * * * *", "* * * * *"),
        ("+5 07 * * *", "5 7 * * *"),  # numbers as Go's strconv.Atoi reads them
        ("5/15 * * * *", "5-59/15 * * * *"),  # N/S is N-max/S
        ("*/15 */6 * * *", "*/15 */6 * * *"),
        ("0 0 */2 * *", "0 0 1-31/2 * *"),  # a stepped star in a day field is spelled out: no star mark
        ("0 0 * * */2", "0 0 * * 0-6/2"),
        ("0 0 1,,15 * *", "0 0 1,15 * *"),  # empty list items are skipped
        ("0 0 1,* * 1", "0 0 * * 1"),  # a star anywhere in the list marks the field
        ("30 0 0 * * *", "30 0 0 * * *"),  # six fields: seconds first
        ("0 0 * * 7", "0 0 * * 7"),  # refused by CronJob (weekdays are 0-6): left to cronsim, where 7 is Sunday
        ("0 0 L * *", "0 0 L * *"),  # cronsim's extension, unknown to CronJob
    ],
)
def test_rewrite_for_cronsim(schedule: str, expected: str) -> None:
    assert cronsim_expression(schedule) == expected


@pytest.mark.parametrize(
    ("macro", "fields"),
    [("@hourly", "0 * * * *"), ("@daily", "0 0 * * *"), ("@weekly", "0 0 * * 0"), ("@monthly", "0 0 1 * *")],
)
def test_macros_fire_like_their_fields(macro: str, fields: str) -> None:
    assert MACROS[macro] == fields
    assert first_fires(macro, 4) == first_fires(fields, 4)


def test_names_fire_like_numbers() -> None:
    assert first_fires("15 10 * feb,Jun-AUG Mon-Fri") == first_fires("15 10 * 2,6-8 1-5")


def test_day_fields_match_either_when_neither_is_a_plain_star() -> None:
    # CronJob: `*/2` carries no star mark, so odd days OR Mondays (cronsim alone would AND them).
    assert [fire.day for fire in first_fires("0 0 */2 * 1")] == [3, 5, 7, 9, 11, 12, 13, 15, 17, 19, 21, 23]


@pytest.mark.parametrize("schedule", ["0 0 * * 1", "0 0 ? * mon", "0 0 */1 * MON"])
def test_day_fields_match_both_when_one_is_a_plain_star(schedule: str) -> None:
    assert [fire.day for fire in first_fires(schedule, 4)] == [5, 12, 19, 26]  # the Mondays of January 2026


@pytest.mark.parametrize("schedule", ["CRON_TZ=UTC 0 * * * *", "TZ=Europe/Berlin 0 * * * *"])
def test_time_zone_prefix_is_refused_with_the_apiservers_message(schedule: str) -> None:
    with pytest.raises(CronSyntaxError, match=TZ_MESSAGE):
        cronsim_expression(schedule)
    with pytest.raises(ScheduleError) as raised:
        CronSchedule.parse(schedule)
    assert raised.value.field == "schedule" and TZ_MESSAGE in raised.value.message


@pytest.mark.parametrize(
    ("schedule", "fragment"),
    [
        ("@every 1h", "@every is not supported"),
        ("@reboot", "unrecognized descriptor: @reboot"),
        ("@Hourly", "unrecognized descriptor: @Hourly"),
        ("@hourly ", "unrecognized descriptor"),
    ],
)
def test_other_descriptors_are_refused(schedule: str, fragment: str) -> None:
    with pytest.raises(ScheduleError) as raised:
        CronSchedule.parse(schedule)
    assert raised.value.field == "schedule" and fragment in raised.value.message


@pytest.mark.parametrize(
    "schedule", ["60 * * * *", "*/0 * * * *", "0 0 5-3 * *", "0 0 * 13 *", "0 0 0 * *", "0 0 * * -1", "1-2-3 * * * *"]
)
def test_what_neither_reads_is_refused(schedule: str) -> None:
    with pytest.raises(ScheduleError, match="schedule"):
        CronSchedule.parse(schedule)
