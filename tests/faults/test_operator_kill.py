"""kill -9 of the operator ~100 ms into a burst of 300 cron fires due at the same second, then a restart.

When the process dies some Runs of the burst exist and some do not, and little of the triggers' status has been
written. After the restart every (trigger, fire) has exactly one Run, or has none and is counted once in the
trigger's `status.missedSchedules`: never both, never neither. Half the triggers have a starting deadline the
restart comes too late for (a Run missing at the kill stays missing and is counted), half one it easily meets (a
Run missing at the kill is created after the restart, and nothing is counted). Counts come from every Run and
every trigger the apiserver lists.
"""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from kubernetes.client import ApiClient

from stargraph.fires.keys import format_fire_time
from tests.e2e.conftest import Operators
from tests.e2e.kube import create, cron_trigger, list_cron_triggers, list_runs, runs_per_fire
from tests.support.operator import eventually

pytestmark = pytest.mark.cluster

TRIGGERS = 300
SHORT_DEADLINE, LONG_DEADLINE = 2, 120  # startingDeadlineSeconds of the two halves
SETUP = 12.0
"""Seconds from creating the triggers to their fire: enough to create 300 and have the operator apply them."""
KILL_AFTER = timedelta(milliseconds=100)

Outcome = tuple[Counter[tuple[str, datetime]], dict[str, int]]
"""Runs per (trigger, fire), and `status.missedSchedules` per trigger."""


def once_at(when: datetime) -> str:
    """A schedule (6 fields, UTC) whose only fire for a year is `when`, so the burst is the test's only fire."""
    return f"{when.second} {when.minute} {when.hour} {when.day} {when.month} *"


def sleep_until(when: datetime) -> None:
    time.sleep(max(0.0, (when - datetime.now(UTC)).total_seconds()))


def outcome(kube_api: ApiClient, namespace: str) -> Outcome:
    missed = {
        trigger["metadata"]["name"]: int((trigger.get("status") or {}).get("missedSchedules") or 0)
        for trigger in list_cron_triggers(kube_api, namespace)
    }
    return runs_per_fire(list_runs(kube_api, namespace)), missed


def settled(kube_api: ApiClient, namespace: str, *, quiet: float, timeout: float) -> Outcome:
    """The outcome once it has not changed for `quiet` seconds: late Runs and late status writes included."""
    deadline = time.monotonic() + timeout
    last, since = outcome(kube_api, namespace), time.monotonic()
    while time.monotonic() - since < quiet:
        assert time.monotonic() < deadline, f"Runs and missedSchedules still changing after {timeout:g}s"
        time.sleep(0.25)
        now = outcome(kube_api, namespace)
        if now != last:
            last, since = now, time.monotonic()
    return last


def test_kill_9_during_a_burst_of_300_fires_then_restart_leaves_one_run_or_one_missed_per_fire(
    operators: Operators, kube_api: ApiClient, namespace: str
) -> None:
    first = operators.start("first")
    fire = (datetime.now(UTC) + timedelta(seconds=SETUP)).replace(microsecond=0)
    deadlines = {f"burst-{i:03d}": SHORT_DEADLINE if i % 2 else LONG_DEADLINE for i in range(TRIGGERS)}

    def create_trigger(name: str) -> None:
        create(kube_api, namespace, cron_trigger(name, once_at(fire), startingDeadlineSeconds=deadlines[name]))

    with ThreadPoolExecutor(4) as pool:  # the client's connection pool holds 4
        list(pool.map(create_trigger, deadlines))

    def armed() -> bool:
        triggers = list_cron_triggers(kube_api, namespace)
        due = [t for t in triggers if (t.get("status") or {}).get("nextScheduleTime") == format_fire_time(fire)]
        assert len(due) == TRIGGERS, f"{len(due)} of {TRIGGERS} triggers armed"
        return True

    until_fire = (fire - datetime.now(UTC)).total_seconds()
    eventually(armed, timeout=until_fire - 1, interval=0.5, what="every trigger armed before the burst")

    sleep_until(fire + KILL_AFTER)
    first.kill()
    at_kill = len(list_runs(kube_api, namespace))
    # The restart comes after the short deadline has passed for the burst, long before the long one.
    sleep_until(fire + timedelta(seconds=SHORT_DEADLINE + 1))
    operators.start("restarted")

    def accounted() -> bool:
        runs, missed = outcome(kube_api, namespace)
        neither = [name for name in deadlines if not runs[(name, fire)] and not missed[name]]
        assert not neither, f"{len(neither)} fires have neither a Run nor a missed count, e.g. {neither[:3]}"
        return True

    eventually(accounted, timeout=30, interval=0.5, what="every fire to have its Run or be counted missed")
    runs, missed = settled(kube_api, namespace, quiet=2.0, timeout=20)

    context = f"{at_kill} of {TRIGGERS} Runs existed at the kill"
    never_due = set(runs) - {(name, fire) for name in deadlines}
    assert not never_due, f"Runs of fires never due: {sorted(never_due)[:3]}"
    duplicates = {name: n for (name, _), n in runs.items() if n > 1}
    assert not duplicates, f"fires with more than one Run: {duplicates}; {context}"
    counted_although_run = sorted(name for name in deadlines if runs[(name, fire)] and missed[name])
    assert not counted_although_run, (
        f"{len(counted_although_run)} fires have their Run and are counted missed as well, "
        f"e.g. {counted_although_run[:3]}; {context}"
    )
    not_retried = sorted(name for name, d in deadlines.items() if d == LONG_DEADLINE and not runs[(name, fire)])
    assert not not_retried, f"{len(not_retried)} fires within their deadline got no Run, e.g. {not_retried[:3]}"
    without_run = [name for name in deadlines if not runs[(name, fire)]]
    assert sum(missed.values()) == len(without_run), (
        f"missedSchedules sum to {sum(missed.values())}, {len(without_run)} fires have no Run; {context}"
    )
