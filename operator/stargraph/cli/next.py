"""`stargraph next SCHEDULE`: the next fire times of a cron schedule, in its time zone and in UTC.

`--from` starts anywhere (a daylight-saving night, say), and `--repeated-time` / `--skipped-time` are a CronTrigger's
`spec.daylightSaving` fields: each fire a transition touched says so at the end of its line ("repeated time: second
occurrence", "02:30 skipped; ran at 03:00"), and a skipped time that did not fire gets a line of its own.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from stargraph.cli.common import UsageError

if TYPE_CHECKING:
    from stargraph.triggers.cron_schedule import CronSchedule

__all__ = ["register"]

_FLAGS = {"schedule": "SCHEDULE", "timeZone": "--time-zone"}
"""The argument that carries each CronTrigger field a schedule error names."""


def cmd_next(args: argparse.Namespace) -> int:
    """Print the next fire times of a schedule, in its time zone and in UTC, with what DST did to them."""
    from stargraph.triggers.cron_schedule import CronSchedule, DaylightSaving, ScheduleError

    start = _instant(args.start) if args.start is not None else datetime.now(UTC)
    try:
        schedule = CronSchedule.parse(
            args.schedule,
            args.time_zone,
            daylight_saving=DaylightSaving(repeated_time=args.repeated_time, skipped_time=args.skipped_time),
        )
    except ScheduleError as exc:
        raise UsageError(f"{_FLAGS.get(exc.field, exc.field)}: {exc.message}") from exc
    print(schedule.explain())
    previous = start
    fires = schedule.fires_after(start)
    for _ in range(args.count):
        fire = next(fires)
        skipped = schedule.skipped_between(previous, fire)
        notes = _repeat_notes(schedule, fire)
        if skipped and args.skipped_time == "Skip":
            for wall in skipped:
                print(f"{wall.isoformat()} does not exist in {schedule.zone.key}: no fire (--skipped-time Skip)")
        elif skipped:
            times = ", ".join(f"{wall:%H:%M:%S}".removesuffix(":00") for wall in skipped)
            notes.insert(0, f"{times} skipped; ran at {fire.astimezone(schedule.zone):%H:%M:%S}".removesuffix(":00"))
        note = f"  [{'; '.join(notes)}]" if notes else ""
        print(f"{fire.astimezone(schedule.zone).isoformat()}  ({fire.strftime('%Y-%m-%dT%H:%M:%SZ')}){note}")
        previous = fire
    return 0


def _repeat_notes(schedule: CronSchedule, fire: datetime) -> list[str]:
    """What to say of a fire whose wall-clock time a fall-back transition repeats; nothing for any other fire."""
    local = fire.astimezone(schedule.zone)
    other = local.replace(fold=1 - local.fold)
    if other.astimezone(UTC) == fire:
        return []
    if local.fold == 1:
        return ["repeated time: second occurrence"]
    if schedule.fixed_time and schedule.daylight_saving.repeated_time == "Once":
        return [f"repeated time: first occurrence; not again at {other.isoformat()} (--repeated-time Once)"]
    return ["repeated time: first occurrence"]


def _instant(value: str) -> datetime:
    try:
        when = datetime.fromisoformat(value)
    except ValueError as exc:
        raise UsageError(f"--from: {value!r} is not an RFC 3339 instant such as 2026-10-25T00:00:00Z") from exc
    if when.tzinfo is None:
        raise UsageError(f"--from: {value!r} has no offset; add Z or one such as +02:00")
    return when


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    nxt = commands.add_parser("next", help="show the next fire times of a cron schedule")
    nxt.add_argument(
        "schedule", help='e.g. "*/5 * * * *" or "@hourly" (as a CronJob takes it), or 6 fields with seconds first'
    )
    nxt.add_argument("--time-zone", default="UTC")
    nxt.add_argument("-c", "--count", type=int, default=5)
    nxt.add_argument("--from", dest="start", metavar="RFC3339", help="list the fires after this instant (default: now)")
    nxt.add_argument(
        "--repeated-time",
        choices=("Once", "Both"),
        default="Once",
        help="spec.daylightSaving.repeatedTime: fire a wall-clock time that clocks going back repeat once or twice",
    )
    nxt.add_argument(
        "--skipped-time",
        choices=("RunAtNextValidTime", "Skip"),
        default="RunAtNextValidTime",
        help="spec.daylightSaving.skippedTime: fire a wall-clock time that clocks going forward skip after the gap, "
        "or not",
    )
    nxt.set_defaults(func=cmd_next)
