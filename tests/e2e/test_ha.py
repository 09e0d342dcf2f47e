"""High availability: two `stargraph operator --leader-elect` processes on the real apiserver.

One leads (fires cron schedules), both serve webhooks. Killing the leader with SIGKILL hands firing to the other
within the lease duration, and the fires missed meanwhile are created exactly once. A leader cut off from the
apiserver (its connections go through a TCP proxy the test cuts) stops firing before the other may take over, and
what it had not written when cut off never lands over its successor's status. A leader shutting down (a rolling
update) writes its last reports before it releases the Lease, so the successor's fire ledger continues it.
The order of a hand-over is read from the leadership records the replicas log, duplicates from every Run listed.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from kubernetes.client import ApiClient

from tests.e2e.conftest import OperatorIdentity, Operators
from tests.e2e.kube import (
    create,
    cron_trigger,
    every,
    fire_of,
    fires,
    get,
    list_runs,
    parse_time,
    recorded_statuses,
    runs_per_fire,
)
from tests.e2e.leadership import LEASE, elect_args, electing_pair, firing_every_second, leadership, leading, only
from tests.support.operator import eventually
from tests.support.proxy import TcpProxy

pytestmark = pytest.mark.cluster


def run_fires(kube_api: ApiClient, namespace: str) -> list[datetime]:
    return fires(list_runs(kube_api, namespace))


def test_kill_9_of_the_leader_hands_over_and_missed_fires_are_created_once(
    operators: Operators, operator_identity: OperatorIdentity, kube_api: ApiClient, namespace: str
) -> None:
    leader, follower = electing_pair(operators, operator_identity)
    firing_every_second(kube_api, namespace, "ha")

    leader.kill()
    killed = time.monotonic()
    eventually(lambda: leading(follower) or None, timeout=LEASE["duration"] + 5, what="the follower to lead")
    assert time.monotonic() - killed <= LEASE["duration"] + 2 * LEASE["retry"] + 2

    # A few fires after the take-over, every second from the first Run on has exactly one Run: the fires the
    # leader missed while dead were caught up, none twice.
    after = time.time()
    eventually(lambda: run_fires(kube_api, namespace)[-1].timestamp() > after + 2 or None, timeout=15, what="new fires")
    scheduled = run_fires(kube_api, namespace)
    assert scheduled == every(1, scheduled[0], scheduled[-1]), [f.isoformat() for f in scheduled]


class ThreadedProxy:
    """`TcpProxy` on its own loop in a thread, for a synchronous test to cut."""

    def __init__(self, host: str, port: int) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="proxy", daemon=True)
        self.proxy = TcpProxy(host, port)

    def __enter__(self) -> ThreadedProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.proxy.start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.proxy.stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def cut(self) -> None:
        self._loop.call_soon_threadsafe(self.proxy.cut)

    def heal(self) -> None:
        self._loop.call_soon_threadsafe(self.proxy.heal)


@pytest.fixture
def proxied_kubeconfig(operator_identity: OperatorIdentity, tmp_path: Path) -> Iterator[tuple[Path, ThreadedProxy]]:
    """The operator's own kubeconfig, but through a proxy the test can cut."""
    config = yaml.safe_load(operator_identity.kubeconfig.read_text())
    server = urlsplit(config["clusters"][0]["cluster"]["server"])
    with ThreadedProxy(server.hostname or "127.0.0.1", server.port or 443) as proxy:
        config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{proxy.proxy.port}"
        path = tmp_path / "proxied.kubeconfig"
        path.write_text(yaml.safe_dump(config))
        yield path, proxy


def test_a_partitioned_leader_stops_firing_before_the_other_takes_over(
    operators: Operators,
    operator_identity: OperatorIdentity,
    kube_api: ApiClient,
    namespace: str,
    proxied_kubeconfig: tuple[Path, ThreadedProxy],
) -> None:
    kubeconfig, proxy = proxied_kubeconfig
    a = operators.start("a", extra_args=elect_args(operator_identity), kubeconfig=kubeconfig)
    eventually(lambda: leading(a) or None, timeout=10, what="a to lead")
    b = operators.start("b", extra_args=elect_args(operator_identity))
    trigger = create(kube_api, namespace, cron_trigger("ha", "* * * * * *"))
    eventually(lambda: len(run_fires(kube_api, namespace)) >= 2 or None, timeout=15, what="Runs from a")

    proxy.cut()
    cut = datetime.now(UTC)
    a_stopped = eventually(lambda: only(a, "stopped leading"), timeout=LEASE["renew"] + 5, what="a to step down")
    b_started = eventually(lambda: only(b, "started leading"), timeout=LEASE["duration"] + 5, what="b to lead")
    # The order is the one the two replicas logged, not the one this test's polling happened to notice.
    assert a_stopped.at < b_started.at, f"the cut-off leader must stop first: {a_stopped} vs {b_started}"
    assert a_stopped.reason == "renew deadline passed", a_stopped
    assert a_stopped.at - cut <= timedelta(seconds=LEASE["renew"] + LEASE["retry"] + 2), (cut, a_stopped)
    assert a_stopped.renew_time is not None
    assert b_started.at - a_stopped.renew_time >= timedelta(seconds=LEASE["duration"]), (a_stopped, b_started)
    # b fires from now on; nothing was fired twice around the hand-over, counted over every Run there is.
    after = time.time()
    eventually(lambda: run_fires(kube_api, namespace)[-1].timestamp() > after + 1 or None, timeout=10, what="b's fires")
    duplicates = {fire: n for fire, n in runs_per_fire(list_runs(kube_api, namespace)).items() if n > 1}
    assert not duplicates, duplicates
    assert [r.event for r in leadership(a)] == ["started leading", "stopped leading"], leadership(a)
    # Healed, a drains and exits as usual (cut off, its shutdown would wait on the apiserver until killed).
    proxy.heal()
    assert a.stop() == 0
    # What a had not written when it was cut off never lands over b's newer status.
    assert_schedule_time_never_went_back(kube_api, namespace, trigger)


def test_a_rolling_update_hands_the_fire_ledger_over_whole(
    operators: Operators, operator_identity: OperatorIdentity, kube_api: ApiClient, namespace: str
) -> None:
    leader, follower = electing_pair(operators, operator_identity)
    trigger = create(
        kube_api, namespace, cron_trigger("ledger", "* * * * * *", startingDeadlineSeconds=60, catchUp="All")
    )
    eventually(lambda: len(run_fires(kube_api, namespace)) >= 3 or None, timeout=15, what="Runs from the leader")

    assert leader.stop() == 0  # SIGTERM, as a rolling update does
    stopped = time.time()
    eventually(lambda: leading(follower) or None, timeout=LEASE["duration"] + 5, what="the follower to lead")
    eventually(
        lambda: run_fires(kube_api, namespace)[-1].timestamp() > stopped + 3 or None, timeout=15, what="new fires"
    )

    runs = {fire_of(run): run["metadata"]["name"] for run in list_runs(kube_api, namespace)}

    def ledger() -> list[dict[str, Any]] | None:
        obj = get(kube_api, namespace, "crontriggers", "ledger") or {}
        entries = list((obj.get("status") or {}).get("recentFires") or [])
        # Settled once its newest entry is the newest Run's fire (status writes follow the Runs).
        return entries if entries and parse_time(entries[0]["scheduledTime"]) >= max(runs) else None

    entries = eventually(ledger, timeout=15, what="the ledger up to the newest Run")
    runs = {fire_of(run): run["metadata"]["name"] for run in list_runs(kube_api, namespace)}
    fires = sorted(parse_time(entry["scheduledTime"]) for entry in entries)
    stepped_down = only(leader, "stopped leading")
    assert stepped_down is not None and stepped_down.reason == "shutting down", leadership(leader)
    assert fires[0] < stepped_down.at - timedelta(seconds=1), "the ledger does not reach back to the old leader's fires"
    assert fires == every(1, fires[0], fires[-1]), [f.isoformat() for f in fires]
    assert all(entry.get("runName") == runs.get(parse_time(entry["scheduledTime"])) for entry in entries), entries
    # Each fire is recorded by the replica that created its Run: the new leader found at most the one Run the old
    # leader was creating as it stopped, rather than re-trying fires whose records were not written yet.
    found = [entry["scheduledTime"] for entry in entries if entry["outcome"] == "AlreadyExisted"]
    assert len(found) <= 1, found
    assert_schedule_time_never_went_back(kube_api, namespace, trigger)


def assert_schedule_time_never_went_back(api: ApiClient, namespace: str, trigger: dict[str, Any]) -> None:
    """Every `status.lastScheduleTime` the apiserver recorded for the trigger, in its order, only moved forward."""
    name, newest = trigger["metadata"]["name"], max(run_fires(api, namespace))

    def written() -> bool:
        status = (get(api, namespace, "crontriggers", name) or {}).get("status") or {}
        return bool(status.get("lastScheduleTime")) and parse_time(status["lastScheduleTime"]) >= newest

    eventually(lambda: written() or None, timeout=15, what="the trigger's status up to its newest Run")
    since = trigger["metadata"]["resourceVersion"]
    recorded = recorded_statuses(api, namespace, "crontriggers", name, since)
    times = [parse_time(status["lastScheduleTime"]) for status in recorded if status.get("lastScheduleTime")]
    assert len(times) >= 2 and times == sorted(times), [t.isoformat() for t in times]
