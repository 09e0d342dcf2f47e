"""Cron expressions as pure functions: validation, the next fire, and every fire in a window.

Expressions are a CronJob's (`stargraph.api.cron_syntax`: macros, names, and the same meaning of every schedule
a CronJob accepts), or six fields with seconds first, or cronsim's extensions (`L`, `W`, `#`). They are read in an
IANA time zone and every instant returned is UTC.

Daylight saving time follows Debian cron, which cronsim implements:
- a wall-clock time skipped by a spring-forward transition fires once, at the first valid instant after the gap
  (`30 2 * * *` in Europe/Berlin on 2026-03-29 fires at 03:00 CEST);
- a fixed wall-clock time repeated by a fall-back transition fires once, at its first occurrence
  (`30 2 * * *` on 2026-10-25 fires at 02:30 CEST, not again at 02:30 CET);
- schedules with a wildcard or step in the hour or minute field fire in both occurrences of the repeated hour
  (`*/30 * * * *` fires at 02:00 and 02:30 CEST, then 02:00 and 02:30 CET), since each is a distinct instant.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from stargraph.api.cron_syntax import CronSyntaxError, cronsim_expression
from stargraph.errors import StargraphError

__all__ = ["CatchUpPlan", "CronSchedule", "ScheduleError", "fire_times", "plan_catch_up"]


class ScheduleError(StargraphError, ValueError):
    """A schedule or time zone that cannot be used; `field` names the offending spec field.

    `reason` is the Stalled condition's: `UnknownTimeZone` for `timeZone`, `InvalidSchedule` for `schedule`.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__("UnknownTimeZone" if field == "timeZone" else "InvalidSchedule", message)
        self.field = field

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def _load_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ScheduleError(
            "timeZone", f"unknown time zone {name!r} (expected an IANA name such as Europe/Berlin)"
        ) from exc


@dataclass(frozen=True, slots=True)
class CronSchedule:
    expression: str
    """What cronsim evaluates: the schedule with CronJob's macros and rules rewritten (`cron_syntax`)."""
    zone: ZoneInfo

    @classmethod
    def parse(cls, expression: str, time_zone: str = "UTC") -> CronSchedule:
        zone = _load_zone(time_zone)
        try:
            readable = cronsim_expression(expression)
        except CronSyntaxError as exc:
            raise ScheduleError("schedule", f"{expression!r}: {exc}") from exc
        fields = readable.split()
        if len(fields) not in (5, 6):
            raise ScheduleError(
                "schedule", f"{expression!r} has {len(fields)} fields; expected 5, or 6 with seconds first"
            )
        try:
            CronSim(readable, datetime(2000, 1, 1, tzinfo=zone))
        except CronSimError as exc:
            raise ScheduleError("schedule", f"{expression!r} is not a valid cron expression: {exc}") from exc
        return cls(expression=" ".join(fields), zone=zone)

    def next_after(self, after: datetime) -> datetime:
        """The first fire strictly after `after`, in UTC."""
        return next(self.fires_after(after))

    def explain(self) -> str:
        """The schedule in words, e.g. "At 09:00 on Monday through Friday"."""
        return str(CronSim(self.expression, datetime(2000, 1, 1, tzinfo=self.zone)).explain())

    def fires_after(self, after: datetime) -> Iterator[datetime]:
        """Every fire strictly after `after`, in UTC, lazily."""
        if after.tzinfo is None:
            raise ValueError("after must be timezone-aware")
        start = after.astimezone(UTC)
        fires = (fire.astimezone(UTC) for fire in CronSim(self.expression, start.astimezone(self.zone)))
        # cronsim walks a fixed-time schedule in wall-clock time and returns the first occurrence of a repeated
        # time: started inside the second pass of a repeated hour it yields first-pass instants, which are before
        # `after` (`30 2` from 02:10 CET gives 02:30 CEST, 40 minutes earlier). They had their turn; skip them.
        return (fire for fire in fires if fire > start)


def fire_times(schedule: CronSchedule, *, start: datetime, end: datetime, limit: int | None = None) -> list[datetime]:
    """Every fire in the half-open window (`start`, `end`], oldest first, at most `limit` of them (the oldest)."""
    fires: list[datetime] = []
    for fire in schedule.fires_after(start):
        if fire > end or (limit is not None and len(fires) >= limit):
            break
        fires.append(fire)
    return fires


@dataclass(frozen=True, slots=True)
class CatchUpPlan:
    create: list[datetime]
    """Missed fires to create now, oldest first."""
    missed: int
    """Missed fires that will not be created (past the deadline, or beyond the policy's allowance)."""
    latest_missed: datetime | None = None
    """The newest of the missed fires: with it accounted for, a later catch-up starts after it."""


_CATCH_UP_SCAN_LIMIT = 100_000  # a `* * * * * *` schedule missed for a day; beyond that only the count is capped


def plan_catch_up(
    schedule: CronSchedule,
    *,
    since: datetime,
    now: datetime,
    deadline_seconds: int | None,
    policy: str,
    limit: int,
) -> CatchUpPlan:
    """Which fires in (`since`, `now`] to create after a restart.

    Fires older than `deadline_seconds` are missed. Of the others, policy `Latest` creates the newest only,
    `All` the newest `limit` of them, `None` none; the rest are counted as missed.
    """
    window_start = since if deadline_seconds is None else max(since, now - timedelta(seconds=deadline_seconds))
    too_late: list[datetime] = []
    if window_start > since:
        too_late = fire_times(schedule, start=since, end=window_start, limit=_CATCH_UP_SCAN_LIMIT)
    eligible = fire_times(schedule, start=window_start, end=now, limit=_CATCH_UP_SCAN_LIMIT)
    keep = {"Latest": 1, "All": limit, "None": 0}[policy]
    cut = max(0, len(eligible) - keep)
    dropped = eligible[:cut]
    latest_missed = dropped[-1] if dropped else None
    if latest_missed is None and too_late:
        # A capped scan stopped short of window_start, yet every fire up to window_start has been accounted for.
        latest_missed = window_start if len(too_late) == _CATCH_UP_SCAN_LIMIT else too_late[-1]
    return CatchUpPlan(create=eligible[cut:], missed=len(too_late) + len(dropped), latest_missed=latest_missed)
