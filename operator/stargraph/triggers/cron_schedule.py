"""Cron expressions as pure functions: validation, the next fire, and every fire in a window.

Expressions are a CronJob's (`stargraph.api.cron_syntax`: macros, names, and the same meaning of every schedule
a CronJob accepts), or six fields with seconds first, or cronsim's extensions (`L`, `W`, `#`). They are read in an
IANA time zone and every instant returned is UTC.

Daylight saving time. A schedule whose minute and hour fields both start with something other than `*` fires at a
fixed wall-clock time (`30 2 * * *`, `0 9,17 * * MON-FRI`, `@daily`); the `DaylightSaving` policy decides what
such a schedule does when a transition skips or repeats that time (Debian cron draws the same line):
- a wall-clock time repeated by a fall-back transition fires at its first occurrence only (`repeated_time="Once"`,
  the default: `30 2 * * *` in Europe/Berlin on 2026-10-25 fires at 02:30 CEST, not again at 02:30 CET), or at
  both occurrences (`"Both"`: 02:30 CEST and 02:30 CET, an hour apart, two fires with distinct instants);
- a wall-clock time skipped by a spring-forward transition fires at the first valid instant after the gap
  (`skipped_time="RunAtNextValidTime"`, the default: `30 2 * * *` on 2026-03-29 fires at 03:00 CEST; several
  skipped times of one night make one fire there, shared with a fire the schedule has at that instant anyway), or
  not at all that day (`"Skip"`).
Any other schedule (a `*` at the start of the minute or hour field: `*/30 * * * *`, `*/10 2 * * *`, `@hourly`)
keeps its rhythm in real time and the policy does not apply: it fires at every instant whose wall-clock time
matches, so in both passes of a repeated hour (`*/30 * * * *` at 02:00 and 02:30 CEST, then 02:00 and 02:30 CET)
and not at all in a skipped one (`*/10 2 * * *` has no fire on the night 02:00-03:00 is skipped).
The rules hold for five- and six-field expressions alike.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from stargraph.api.cron_syntax import CronSyntaxError, cronsim_expression
from stargraph.api.v1alpha1 import CronTriggerSpec
from stargraph.errors import StargraphError

__all__ = [
    "CatchUpPlan",
    "CronSchedule",
    "DaylightSaving",
    "RepeatedTime",
    "ScheduleError",
    "SkippedTime",
    "fire_times",
    "plan_catch_up",
    "trigger_schedule",
]

RepeatedTime = Literal["Once", "Both"]
SkippedTime = Literal["RunAtNextValidTime", "Skip"]


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
class DaylightSaving:
    """What a fixed-time schedule does at a wall-clock time a transition repeats or skips (module docstring)."""

    repeated_time: RepeatedTime = "Once"
    skipped_time: SkippedTime = "RunAtNextValidTime"


@dataclass(frozen=True, slots=True)
class CronSchedule:
    expression: str
    """What cronsim evaluates: the schedule with CronJob's macros and rules rewritten (`cron_syntax`)."""
    zone: ZoneInfo
    daylight_saving: DaylightSaving = DaylightSaving()

    @classmethod
    def parse(
        cls, expression: str, time_zone: str = "UTC", *, daylight_saving: DaylightSaving = DaylightSaving()
    ) -> CronSchedule:
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
        return cls(expression=" ".join(fields), zone=zone, daylight_saving=daylight_saving)

    @property
    def fixed_time(self) -> bool:
        """Whether the minute and hour fields both start with something other than `*` (the DST policy applies)."""
        fields = self.expression.split()
        minute, hour = fields[-5:-3]
        return not minute.startswith("*") and not hour.startswith("*")

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
        fires = self._wall_clock_fires(start) if self.fixed_time else self._real_time_fires(start)
        return (fire for fire in fires if fire > start)

    def skipped_between(self, start: datetime, end: datetime) -> list[datetime]:
        """The wall-clock times (naive, in the zone) of this schedule in (`start`, `end`] that a transition skipped.

        Only a fixed-time schedule has them; its policy fired them at the gap's end or not at all.
        """
        if not self.fixed_time:
            return []
        last = end.astimezone(self.zone).replace(tzinfo=None)
        skipped: list[datetime] = []
        for wall in CronSim(self.expression, start.astimezone(self.zone).replace(tzinfo=None)):
            if wall > last:
                break
            if _skipped(self.zone, wall):
                skipped.append(wall)
        return skipped

    def _real_time_fires(self, start: datetime) -> Iterator[datetime]:
        # cronsim walks a schedule with a `*` in the minute or hour field in real time, matching each instant's
        # wall-clock time in the zone: both passes of a repeated hour match, no instant of a skipped one does.
        return (fire.astimezone(UTC) for fire in CronSim(self.expression, start.astimezone(self.zone)))

    def _wall_clock_fires(self, start: datetime) -> Iterator[datetime]:
        """The fires of a fixed-time schedule from about `start`: its wall-clock times, each placed by the policy.

        cronsim walks naive wall-clock time (no zone, so no DST rules of its own); each time it yields becomes zero,
        one or two instants. Those are in order except the second occurrences of repeated times, which wait in a
        heap until the walk passes them. Started in the first pass of a repeated hour, the walk begins that much
        earlier in wall-clock time: the times already passed have a second occurrence still ahead.
        """
        local = start.astimezone(self.zone)
        ahead = local.replace(fold=1).astimezone(UTC) - start  # > 0 only inside the first pass of a repeated hour
        seconds: list[datetime] = []  # second occurrences not yet yielded
        previous: datetime | None = None
        for wall in CronSim(self.expression, local.replace(tzinfo=None) - max(ahead, timedelta(0))):
            first, second = self._occurrences(wall)
            if first is None:
                continue
            while seconds and seconds[0] <= first:
                earlier = heapq.heappop(seconds)
                if earlier < first:
                    yield earlier
            if first != previous:  # skipped times of one night, and a fire at the gap's end, are one fire
                yield first
                previous = first
            if second is not None:
                heapq.heappush(seconds, second)
        while seconds:
            yield heapq.heappop(seconds)

    def _occurrences(self, wall: datetime) -> tuple[datetime | None, datetime | None]:
        """The instants at which naive wall-clock time `wall` fires, under the policy: (first, second)."""
        if _skipped(self.zone, wall):
            if self.daylight_saving.skipped_time == "Skip":
                return None, None
            return _gap_end(self.zone, wall), None
        first = wall.replace(tzinfo=self.zone).astimezone(UTC)
        second = wall.replace(tzinfo=self.zone, fold=1).astimezone(UTC)
        if second != first and self.daylight_saving.repeated_time == "Both":
            return first, second
        return first, None


def _skipped(zone: ZoneInfo, wall: datetime) -> bool:
    """Whether no instant has naive wall-clock time `wall` in `zone` (a forward transition jumps over it)."""
    return wall.replace(tzinfo=zone).astimezone(UTC).astimezone(zone).replace(tzinfo=None) != wall


def _gap_end(zone: ZoneInfo, wall: datetime) -> datetime:
    """The first instant after the gap that skips naive `wall`: the first whose wall-clock time is not before it."""
    # Read with the offsets from either side of the gap, `wall` names an instant on either side of it; zones change
    # offsets on whole seconds, so the search is over whole seconds.
    before, after = sorted(int(wall.replace(tzinfo=zone, fold=fold).timestamp()) for fold in (0, 1))
    while after - before > 1:
        middle = (before + after) // 2
        if datetime.fromtimestamp(middle, zone).replace(tzinfo=None) < wall:
            before = middle
        else:
            after = middle
    return datetime.fromtimestamp(after, UTC)


def trigger_schedule(spec: CronTriggerSpec) -> CronSchedule:
    """A CronTrigger's schedule as the operator fires it: expression, time zone and daylightSaving policy (raises
    `ScheduleError` naming the field)."""
    policy = DaylightSaving(
        repeated_time=spec.daylight_saving.repeated_time.value, skipped_time=spec.daylight_saving.skipped_time.value
    )
    return CronSchedule.parse(spec.schedule, spec.time_zone, daylight_saving=policy)


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
