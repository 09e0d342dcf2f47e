"""A CronTrigger's fire ledger (`status.recentFires`): its last fires and what became of each.

The ledger answers "which fire ran, and what happened to each slot" from the object itself, so `kubectl get -o
yaml` and `kubectl stargraph history` need nothing but the trigger. Its rules:

- **Order:** newest nominal time first (the top of `kubectl get -o yaml` is the latest fire); the oldest beyond
  `RECENT_FIRES_LIMIT` are dropped. An outcome that arrives late (a catch-up fire created after a newer one was
  missed) is put in its place by nominal time, not at the top.
- **One entry per fire:** a second outcome for the same nominal time replaces the first.
- **A bulk miss is one entry:** catch-up after a long outage reports `missed(count, latest)`; that becomes one
  `Missed` entry at `latest` with `count`, so a day of missed seconds does not push every other fire out.
- **Durable without extra requests:** the ledger lives only in status. The operator keeps it in memory for the
  triggers it fires and puts the whole list into the status patch it writes for the outcome anyway (a merge patch
  replaces a list, and the status writer coalesces patches per object, so a burst of fires writes one list). A
  process that starts firing a trigger (a start, a new leader) reads the list back from the object's status and
  adds to it; nothing is lost but what a killed process had not written yet.

Entries are kept in their wire form (the `FireRecord` shape of `stargraph.api.v1alpha1`), each with its parsed
time for ordering; this module does no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from stargraph.api.v1alpha1 import RECENT_FIRES_LIMIT, FireOutcome
from stargraph.fires.keys import format_fire_time

__all__ = ["FireLedger", "fire_record"]

Entry = dict[str, Any]


def fire_record(
    outcome: FireOutcome,
    fire: datetime,
    *,
    now: datetime,
    run_name: str | None = None,
    count: int | None = None,
    reason: str | None = None,
    message: str | None = None,
) -> Entry:
    """One entry of `status.recentFires`: the fire `fire` ended as `outcome` at `now`."""
    entry: Entry = {
        "scheduledTime": format_fire_time(fire),
        "outcome": outcome.value,
        "delayMilliseconds": max(0, int((now - fire).total_seconds() * 1000)),
    }
    optional = {"runName": run_name, "count": count, "reason": reason, "message": message}
    entry.update((name, value) for name, value in optional.items() if value is not None)
    return entry


@dataclass
class FireLedger:
    """The last `limit` fires of one trigger, newest first."""

    limit: int = RECENT_FIRES_LIMIT
    _entries: list[tuple[datetime, Entry]] = field(default_factory=list)

    @classmethod
    def from_status(cls, items: object, *, limit: int = RECENT_FIRES_LIMIT) -> FireLedger:
        """The ledger a status holds; entries without a readable `scheduledTime` are dropped (the CRD's schema
        rules them out, so only a hand-edited status has them)."""
        ledger = cls(limit=limit)
        for item in items if isinstance(items, list) else ():
            when = _time(item.get("scheduledTime")) if isinstance(item, dict) else None
            if when is not None:
                ledger.add(when, item)
        return ledger

    def add(self, fire: datetime, entry: Entry) -> None:
        """Put `entry` (for nominal time `fire`) in its place, replacing an earlier entry for the same fire."""
        entries = self._entries
        position = 0
        while position < len(entries) and entries[position][0] > fire:
            position += 1
        if position < len(entries) and entries[position][0] == fire:
            entries[position] = (fire, entry)
        else:
            entries.insert(position, (fire, entry))
            del entries[self.limit :]

    def status(self) -> list[Entry]:
        """The value of `status.recentFires`."""
        return [entry for _, entry in self._entries]


def _time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return when if when.tzinfo is not None else None
