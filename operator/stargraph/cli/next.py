"""`stargraph next SCHEDULE`: the next fire times of a cron schedule, in its time zone and in UTC."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from stargraph.cli.common import UsageError

__all__ = ["register"]


def cmd_next(args: argparse.Namespace) -> int:
    """Print the next fire times of a schedule, in its time zone and in UTC."""
    from stargraph.triggers.cron_schedule import CronSchedule, ScheduleError

    try:
        schedule = CronSchedule.parse(args.schedule, args.time_zone)
    except ScheduleError as exc:
        raise UsageError(str(exc)) from exc
    print(schedule.explain())
    fires = schedule.fires_after(datetime.now(UTC))
    for _ in range(args.count):
        fire = next(fires)
        print(f"{fire.astimezone(schedule.zone).isoformat()}  ({fire.strftime('%Y-%m-%dT%H:%M:%SZ')})")
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    nxt = commands.add_parser("next", help="show the next fire times of a cron schedule")
    nxt.add_argument(
        "schedule", help='e.g. "*/5 * * * *" or "@hourly" (as a CronJob takes it), or 6 fields with seconds first'
    )
    nxt.add_argument("--time-zone", default="UTC")
    nxt.add_argument("-c", "--count", type=int, default=5)
    nxt.set_defaults(func=cmd_next)
