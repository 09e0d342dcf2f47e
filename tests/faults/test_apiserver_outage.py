"""kube-apiserver killed, restarted or frozen under a running operator: every fire is accounted for exactly once.

The control plane's own kube-apiserver is stopped (SIGKILL, then started again on the same port and etcd data, as
in a crash or an upgrade) or frozen (SIGSTOP for longer than the operator's request timeout, then SIGCONT). A
CronTrigger firing every 2 s runs through it. Afterwards every slot from its first fire on has exactly one Run, or
is counted in `status.missedSchedules` because the outage outlasted its `startingDeadlineSeconds`, never both and
never neither. What each side recorded is compared: the Runs (listed from the apiserver, one per fire by spec and
by annotation) and the trigger's status.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from kubernetes.client import ApiClient, EventsV1Api

from stargraph.triggers.signatures import SignatureScheme, sign
from tests.e2e.conftest import Operators
from tests.e2e.kube import (
    condition,
    create,
    cron_trigger,
    every,
    get,
    list_runs,
    parse_time,
    put_secret,
    runs_per_fire,
    webhook_trigger,
)
from tests.support.controlplane import ControlPlane, KubeCluster
from tests.support.operator import OperatorProcess, eventually

pytestmark = pytest.mark.cluster

SLOT = 2
SCHEDULE = f"*/{SLOT} * * * * *"
API_TIMEOUT = 3.0
"""The operator's per-request timeout here, so that a freeze of a few seconds outlasts it."""
JSON = {"content-type": "application/json"}


@pytest.fixture
def cluster(control_plane: KubeCluster) -> ControlPlane:
    if not isinstance(control_plane, ControlPlane):
        pytest.skip("stops and freezes kube-apiserver: needs the project's own control plane")
    return control_plane


@pytest.fixture
def operator(operators: Operators) -> Iterator[OperatorProcess]:
    yield operators.start("operator", extra_args=["--api-timeout", str(API_TIMEOUT)])


def now() -> datetime:
    return datetime.now(UTC)


def slots_after(created: datetime, until: datetime) -> list[datetime]:
    """The schedule's slots after the trigger's creation, up to `until`."""
    first = created.replace(microsecond=0) + timedelta(seconds=SLOT - created.second % SLOT)
    return every(SLOT, first, until)


def accounted(api: ApiClient, namespace: str, name: str, *, until: datetime) -> tuple[list[datetime], int, Any]:
    """(fires that have a Run, missedSchedules, the trigger); fails on any fire with two Runs."""
    counted = runs_per_fire(list_runs(api, namespace))
    assert max(counted.values(), default=1) == 1, f"a fire has more than one Run: {counted.most_common(3)}"
    trigger = get(api, namespace, "crontriggers", name)
    assert trigger is not None
    missed = int((trigger.get("status") or {}).get("missedSchedules") or 0)
    return sorted(fire for (trigger_name, fire) in counted if trigger_name == name and fire <= until), missed, trigger


def wait_all_accounted(api: ApiClient, namespace: str, name: str, slots: list[datetime]) -> tuple[list[datetime], int]:
    """Wait until every slot has a Run or is counted missed; return (fires with a Run, missed)."""

    def complete() -> tuple[list[datetime], int] | None:
        fires, missed, _ = accounted(api, namespace, name, until=slots[-1])
        return (fires, missed) if len(fires) + missed >= len(slots) else None

    return eventually(complete, timeout=30, interval=0.5, what="every slot has its Run or is counted missed")


def start_trigger(api: ApiClient, namespace: str, name: str, **spec: Any) -> datetime:
    body = create(api, namespace, cron_trigger(name, SCHEDULE, catchUp="All", catchUpLimit=100, **spec))
    created = parse_time(body["metadata"]["creationTimestamp"])
    # Two Runs before the fault: the operator is firing this trigger.
    eventually(lambda: len(list_runs(api, namespace)) >= 2, timeout=20, what="the first two Runs")
    return created


def test_apiserver_down_shorter_than_the_deadline_every_slot_gets_exactly_one_run(
    cluster: ControlPlane, operator: OperatorProcess, kube_api: ApiClient, namespace: str
) -> None:
    created = start_trigger(kube_api, namespace, "short", startingDeadlineSeconds=120)
    down_at = now()
    with cluster.apiserver_down():
        time.sleep(10)
    up_at = now()
    slots = slots_after(created, up_at + timedelta(seconds=4))
    fires, missed = wait_all_accounted(kube_api, namespace, "short", slots)
    assert fires == slots, f"slots without a Run: {sorted(set(slots) - set(fires))}"
    assert missed == 0
    outage = [slot for slot in slots if down_at < slot < up_at]
    assert len(outage) >= 4, f"the outage covered only {outage}"
    # lastScheduleTime names the newest fire, which has its Run.
    eventually(
        lambda: (
            parse_time((get(kube_api, namespace, "crontriggers", "short") or {})["status"]["lastScheduleTime"])
            >= slots[-1]
        ),
        timeout=10,
        what="lastScheduleTime caught up",
    )
    assert operator.ready()


def test_apiserver_down_longer_than_the_deadline_creates_the_slots_inside_it_and_counts_the_rest(
    cluster: ControlPlane, operator: OperatorProcess, kube_api: ApiClient, namespace: str
) -> None:
    deadline = 5
    created = start_trigger(kube_api, namespace, "long", startingDeadlineSeconds=deadline)
    down_at = now()
    with cluster.apiserver_down():
        time.sleep(16)
        restarting_at = now()  # from here on it may answer (it does before /readyz says so)
    up_at = now()
    slots = slots_after(created, up_at + timedelta(seconds=6))
    fires, missed = wait_all_accounted(kube_api, namespace, "long", slots)
    lost = sorted(set(slots) - set(fires))
    # Exact: each slot has its Run or is counted, never both (a Run's fire is never counted missed).
    assert len(fires) + missed == len(slots), f"{len(fires)} Runs + {missed} missed for {len(slots)} slots"
    # The apiserver was down from before these fires until after their deadlines: they cannot have Runs.
    certainly_lost = [slot for slot in slots if slot > down_at and slot + timedelta(seconds=deadline) < restarting_at]
    assert len(certainly_lost) >= 4 and set(certainly_lost) <= set(lost)
    # Whatever was still inside its deadline a retry interval after the recovery was created.
    assert all(slot < up_at + timedelta(seconds=3 - deadline) for slot in lost), lost
    trigger = get(kube_api, namespace, "crontriggers", "long") or {}
    assert parse_time(trigger["status"]["lastMissedScheduleTime"]) == lost[-1]

    def missed_event_posted() -> bool:
        events = EventsV1Api(kube_api).list_namespaced_event(namespace).items
        return any(event.reason == "MissedSchedule" and event.regarding.name == "long" for event in events)

    # Counted while the apiserver was down: the Event was posted once it was back.
    eventually(missed_event_posted, timeout=20, what="a MissedSchedule Event")


def test_apiserver_frozen_longer_than_the_request_timeout_every_slot_gets_exactly_one_run(
    cluster: ControlPlane, operator: OperatorProcess, kube_api: ApiClient, namespace: str
) -> None:
    created = start_trigger(kube_api, namespace, "frozen", startingDeadlineSeconds=120)
    frozen_at = now()
    with cluster.apiserver_frozen():
        time.sleep(3 * API_TIMEOUT)
    thawed_at = now()
    slots = slots_after(created, thawed_at + timedelta(seconds=4))
    fires, missed = wait_all_accounted(kube_api, namespace, "frozen", slots)
    assert fires == slots, f"slots without a Run: {sorted(set(slots) - set(fires))}"
    assert missed == 0
    assert len([slot for slot in slots if frozen_at < slot < thawed_at]) >= 3
    assert operator.ready()


def test_deliveries_while_the_apiserver_is_down_get_503_with_retry_after_and_the_retry_gets_the_run(
    cluster: ControlPlane, operator: OperatorProcess, kube_api: ApiClient, namespace: str
) -> None:
    put_secret(kube_api, namespace, "hook-secret", {"secret": "s3cret"})
    create(kube_api, namespace, webhook_trigger("hook", "hook-secret"))
    url = f"{operator.url}/v1/hooks/{namespace}/hook"
    eventually(
        lambda: condition(get(kube_api, namespace, "webhooktriggers", "hook"), "Ready").get("status") == "True",
        what="the WebhookTrigger Ready",
    )
    body = b'{"delivery": "during-outage"}'
    headers = {**JSON, **sign(scheme=SignatureScheme.HMAC_SHA256, key=b"s3cret", body=body)}
    with cluster.apiserver_down():
        during = httpx.post(url, content=body, headers=headers, timeout=30)
        assert during.status_code == 503, during.text
        assert int(during.headers["retry-after"]) > 0
        assert during.json()["error"]["reason"] in {"run_not_created", "run_pending"}
        run_request = httpx.post(
            f"{operator.url}/v1/runs",
            json={"triggerRef": {"kind": "WebhookTrigger", "name": "hook", "namespace": namespace}},
            headers={"authorization": "Bearer any", "idempotency-key": "7f4df2b4-5bd4-4e45-9d3e-6a9a3bb52a11"},
            timeout=30,
        )
        assert run_request.status_code == 503, run_request.text
        assert "retry-after" in run_request.headers
    assert list_runs(kube_api, namespace) == []  # nothing was answered 2xx, and nothing exists

    def retried() -> httpx.Response | None:
        response = httpx.post(url, content=body, headers=headers, timeout=30)
        assert response.status_code != 500, response.text
        return response if response.status_code in (200, 201) else None

    answer = eventually(retried, timeout=30, interval=1.0, what="the sender's retry succeeds")
    runs = list_runs(kube_api, namespace)
    assert [run["metadata"]["name"] for run in runs] == [answer.json()["run"]["name"]]


def test_after_an_outage_longer_than_a_minute_the_operator_still_reconciles_and_fires(
    cluster: ControlPlane, operator: OperatorProcess, kube_api: ApiClient, namespace: str
) -> None:
    created = start_trigger(kube_api, namespace, "before", startingDeadlineSeconds=300)
    with cluster.apiserver_down():
        time.sleep(65)  # longer than any client's retries of a single request
    up_at = now()
    # A trigger created after the outage is watched, reconciled and fired: no watch gave up for good.
    create(kube_api, namespace, cron_trigger("after", SCHEDULE))
    eventually(
        lambda: condition(get(kube_api, namespace, "crontriggers", "after"), "Ready").get("status") == "True",
        timeout=20,
        what="the trigger created after the outage Ready",
    )
    eventually(
        lambda: any(name == "after" for (name, _) in runs_per_fire(list_runs(kube_api, namespace))),
        timeout=20,
        what="a Run of the trigger created after the outage",
    )
    slots = slots_after(created, up_at + timedelta(seconds=2))
    fires, missed = wait_all_accounted(kube_api, namespace, "before", slots)
    assert missed == 0 and fires == slots
    assert operator.ready()
