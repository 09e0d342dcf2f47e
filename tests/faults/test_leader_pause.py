"""A leader frozen (SIGSTOP) for longer than its Lease, then thawed (SIGCONT) with its connections still open.

A frozen process cannot step down, so "the old leader stops before the new one starts" cannot be the guarantee
here. What is guaranteed: the other replica takes the Lease only after it expired, counted from the frozen
leader's last renewal; once thawed, the old leader finds its renew deadline long past (or the Lease held by the
other) and stops leading without ever leading again; whatever its overdue cron tasks submit meanwhile meets the
Runs that already exist, so every fire has exactly one Run. The order is read from the leadership records the two
replicas logged themselves, the counts from every Run the apiserver lists.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from kubernetes.client import ApiClient

from tests.e2e.conftest import OperatorIdentity, Operators
from tests.e2e.kube import every, list_runs, runs_per_fire
from tests.e2e.leadership import LEASE, electing_pair, firing_every_second, leadership, leading, only
from tests.support.operator import eventually

pytestmark = pytest.mark.cluster

PAUSE = LEASE["duration"] + 3.0
"""Seconds the leader stays frozen: long enough for its Lease to expire and the other replica to take it."""


def test_a_leader_paused_past_its_lease_steps_down_on_resume_and_no_fire_has_two_runs(
    operators: Operators, operator_identity: OperatorIdentity, kube_api: ApiClient, namespace: str
) -> None:
    old, new = electing_pair(operators, operator_identity)
    firing_every_second(kube_api, namespace, "paused")

    old.pause()
    frozen = time.monotonic()
    try:
        new_started = eventually(lambda: only(new, "started leading"), timeout=PAUSE, what="the other to take over")
        time.sleep(max(0.0, PAUSE - (time.monotonic() - frozen)))
    finally:
        resumed = datetime.now(UTC)  # before SIGCONT: the thawed process may log before this test reads the clock
        old.resume()
    old_stopped = eventually(lambda: only(old, "stopped leading"), timeout=10, what="the old leader to step down")

    # The new leader waited for the old Lease to expire: a full lease duration after the frozen leader's last
    # renewal, both as the two replicas recorded them.
    assert old_stopped.renew_time is not None, old_stopped
    assert new_started.at - old_stopped.renew_time >= timedelta(seconds=LEASE["duration"]), (old_stopped, new_started)
    # The old leader stepped down by itself, promptly after it could run again, not because it was shut down.
    assert resumed <= old_stopped.at <= resumed + timedelta(seconds=LEASE["retry"] + 2), (resumed, old_stopped)
    assert old_stopped.reason in ("renew deadline passed", f"held by {new_started.identity}"), old_stopped

    # The new leader fires on; every second from the first Run on has exactly one Run, the frozen seconds included.
    after = resumed + timedelta(seconds=2)
    eventually(lambda: max(fire for _, fire in runs_per_fire(list_runs(kube_api, namespace))) > after, timeout=10)
    counted = runs_per_fire(list_runs(kube_api, namespace))
    duplicates = {f"{name}@{fire.isoformat()}": n for (name, fire), n in counted.items() if n > 1}
    assert not duplicates, f"fires with more than one Run: {duplicates}"
    fired = sorted(fire for _, fire in counted)
    assert fired == every(1, fired[0], fired[-1]), sorted(set(every(1, fired[0], fired[-1])) - set(fired))
    assert leading(new) and not leading(old)
    assert [record.event for record in leadership(old)] == ["started leading", "stopped leading"], leadership(old)
    assert [record.event for record in leadership(new)] == ["started leading"], leadership(new)
