"""The schedule syntax of a Kubernetes CronJob, read with the same meaning, as expressions cronsim evaluates.

A CronJob's `spec.schedule` is parsed by robfig/cron v3's standard parser (what kube-apiserver validates with and
kube-controller-manager fires by). `cronsim_expression` reads a schedule by those rules and rewrites it into an
expression with the same fire times for cronsim, which stargraph evaluates:

- the macros `@yearly` (`@annually`), `@monthly`, `@weekly`, `@daily` (`@midnight`) and `@hourly`, lower case only;
- month names (`jan`-`dec`) and weekday names (`sun`-`sat`), any case; weekdays are 0-6;
- `*` or `?` for every value, `A-B` ranges, `/S` steps (`N/S` means `N-max/S`), comma lists;
- day of month and day of week: when either field holds a plain `*` or `?` (a step over 1 does not count), a day
  must match both; otherwise it matches either. cronsim decides the same by whether a field *starts with* `*`, so
  the rewrite spells a stepped star out as a range (`*/2` in day of month becomes `1-31/2`).

A sixth field in front is stargraph's seconds field, read like the minutes. A schedule the CronJob parser refuses is
handed to cronsim unchanged, so stargraph's extensions keep working: the seconds field, `L`, `W`, `#`, and 7 for
Sunday. Two CronJob forms are refused: a `TZ=` or `CRON_TZ=` prefix (with the apiserver's message: the time zone
belongs in `timeZone`), and `@every DURATION`, whose fires a CronJob counts from its creation or its last fire, a
state that a schedule alone cannot carry. `@reboot` is refused by CronJob too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["EVERY_MESSAGE", "MACROS", "TZ_MESSAGE", "CronSyntaxError", "cronsim_expression"]

MACROS: Mapping[str, str] = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
"""The macros a CronJob accepts, with the five fields each stands for."""

TZ_MESSAGE = "cannot use TZ or CRON_TZ in schedule, use timeZone field instead"
"""kube-apiserver's message for a CronJob schedule containing `TZ`, given for a CronTrigger the same way."""

EVERY_MESSAGE = (
    "@every is not supported: a CronJob counts its fires from its creation or its last fire; "
    'write the interval as a cron expression ("*/30 * * * *")'
)


class CronSyntaxError(ValueError):
    """A schedule refused by CronJob's rules that cronsim must not read either (the message says why)."""


class _NotCronJobSyntax(ValueError):
    """The CronJob parser refuses the schedule; cronsim may still read it (stargraph's extensions)."""


@dataclass(frozen=True, slots=True)
class _Field:
    low: int
    high: int
    names: Mapping[str, int]
    is_day: bool = False


_MONTHS = {
    name: number
    for number, name in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1
    )
}
_WEEKDAYS = {name: number for number, name in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}
_SECOND = _Field(0, 59, {})
_FIVE = (
    _Field(0, 59, {}),
    _Field(0, 23, {}),
    _Field(1, 31, {}, is_day=True),
    _Field(1, 12, _MONTHS),
    _Field(0, 6, _WEEKDAYS, is_day=True),
)
# Go's strconv.Atoi, which the CronJob parser reads numbers with: an optional sign, then ASCII digits.
_GO_INT = re.compile(r"[+-]?[0-9]+", re.ASCII)


def cronsim_expression(schedule: str) -> str:
    """The expression cronsim reads `schedule` with, with the meaning a CronJob gives it where it has one."""
    if "TZ" in schedule:
        raise CronSyntaxError(TZ_MESSAGE)
    if schedule.startswith("@"):
        if schedule.startswith("@every "):
            raise CronSyntaxError(EVERY_MESSAGE)
        if schedule not in MACROS:
            raise CronSyntaxError(f"unrecognized descriptor: {schedule} (known: {', '.join(MACROS)})")
        return MACROS[schedule]
    fields = schedule.split()
    layout = {5: _FIVE, 6: (_SECOND, *_FIVE)}.get(len(fields))
    if layout is None:
        return schedule
    try:
        parsed = [_parse_field(text, field) for text, field in zip(fields, layout, strict=True)]
    except _NotCronJobSyntax:
        return schedule
    return " ".join(parsed)


def _parse_field(text: str, field: _Field) -> str:
    """The field rewritten for cronsim."""
    # Empty list items are skipped, as CronJob's parser does; a field of nothing but commas never fires, which
    # cronsim cannot say, so it stays refused.
    items = [item for item in text.split(",") if item]
    if not items:
        raise _NotCronJobSyntax(text)
    parts: list[str] = []
    starred = False
    for item in items:
        part, star = _parse_item(item, field)
        parts.append(part)
        starred = starred or star
    # A field with CronJob's star mark becomes a plain `*` (its values are all of them anyway), so cronsim's
    # "starts with *" test ANDs the two day fields exactly when a CronJob does.
    return "*" if starred else ",".join(parts)


def _parse_item(item: str, field: _Field) -> tuple[str, bool]:
    range_and_step = item.split("/")
    if len(range_and_step) > 2:
        raise _NotCronJobSyntax(item)
    low_high = range_and_step[0].split("-")
    star = low_high[0] in ("*", "?")
    if star:
        # CronJob ignores whatever follows a star's hyphen (`*-5` is `*`).
        start, end = field.low, field.high
    else:
        if len(low_high) > 2:
            raise _NotCronJobSyntax(item)
        start = _number(low_high[0], field)
        end = _number(low_high[-1], field)
    step = 1
    if len(range_and_step) == 2:
        step = _number(range_and_step[1], None)
        if len(low_high) == 1:
            end = field.high
        star = star and step <= 1
    if start < field.low or end > field.high or start > end or step == 0:
        raise _NotCronJobSyntax(item)
    if star:
        return "*", True
    if step > 1 and start == field.low and end == field.high and not field.is_day:
        return f"*/{step}", False
    if step > 1:
        return f"{start}-{end}/{step}", False
    return (f"{start}-{end}" if start < end else str(start)), False


def _number(text: str, field: _Field | None) -> int:
    if field is not None and text.lower() in field.names:
        return field.names[text.lower()]
    if not _GO_INT.fullmatch(text):
        raise _NotCronJobSyntax(text)
    value = int(text)
    if value < 0:
        raise _NotCronJobSyntax(text)
    return value
