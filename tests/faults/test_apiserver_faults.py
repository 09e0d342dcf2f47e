"""Faults on the way to kube-apiserver, injected by a TLS-terminating proxy the operator talks through.

The operator's only connection to the apiserver goes through `FaultProxy`: a 429 with Retry-After, a 500, a reset
connection and, worst of all, a create the apiserver committed whose answer never arrived. Each slot still gets
exactly one Run, and the lost answer is settled by the 409 on the Run's deterministic name (the operator's own
`dedupes{stage="sink"}` count says so). A Run name already held by an object that is not the fire's Run is
reported (Event and metric) and the object is left exactly as it was.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from kubernetes.client import ApiClient, CustomObjectsApi, EventsV1Api

from stargraph.api.v1alpha1 import GROUP, VERSION
from stargraph.fires.keys import cron_idempotency_key, format_fire_time, trigger_id
from stargraph.runs.naming import run_name
from tests.e2e.conftest import Operators
from tests.e2e.kube import create, cron_trigger, every, list_runs, parse_time, runs_per_fire, squatter
from tests.support.fault_proxy import FaultProxy
from tests.support.operator import OperatorProcess, eventually

pytestmark = pytest.mark.cluster

SLOT = 2


@pytest.fixture
def operator(operators: Operators, proxied_kubeconfig: Path) -> OperatorProcess:
    """An operator whose every API call (watches, creates, status, Events) goes through the fault proxy."""
    return operators.start("operator", kubeconfig=proxied_kubeconfig)


def metric(process: OperatorProcess, name: str, **labels: str) -> float:
    """One sample of the operator's /metrics (0 when the series does not exist yet)."""
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    pattern = re.compile(rf"^{re.escape(name)}(\{{{re.escape(wanted)}\}})? (\S+)$", re.MULTILINE)
    found = pattern.search(httpx.get(f"{process.url}/metrics", timeout=5).text)
    return float(found.group(2)) if found else 0.0


def runs_path(namespace: str) -> str:
    return rf"^/apis/{re.escape(GROUP)}/{VERSION}/namespaces/{re.escape(namespace)}/runs(\?|$)"


def test_429_500_reset_and_a_lost_answer_on_run_creates_never_duplicate_a_run(
    proxy: FaultProxy, operator: OperatorProcess, kube_api: ApiClient, namespace: str
) -> None:
    body = create(kube_api, namespace, cron_trigger("flaky", f"*/{SLOT} * * * * *", startingDeadlineSeconds=60))
    created = parse_time(body["metadata"]["creationTimestamp"])
    eventually(lambda: len(list_runs(kube_api, namespace)) >= 1, timeout=20, what="the first Run")
    settled_before = metric(operator, "stargraph_dedupes_total", stage="sink")
    for fault in ("429", "500", "reset", "lose_response"):
        proxy.arm(method="POST", path=runs_path(namespace), fault=fault)
    eventually(lambda: proxy.armed() == 0, timeout=30, what="every fault met a Run create")
    after = datetime.now(UTC) + timedelta(seconds=2 * SLOT)
    eventually(
        lambda: max(parse_time(run["spec"]["scheduledFire"]) for run in list_runs(kube_api, namespace)) >= after,
        timeout=20,
        what="Runs after the faults",
    )
    assert [(fault, status) for (_, _, fault, status) in proxy.record] == [
        ("429", None),
        ("500", None),
        ("reset", None),
        ("lose_response", 201),  # the apiserver created that Run; the operator never heard so
    ]
    counted = runs_per_fire(list_runs(kube_api, namespace))
    assert max(counted.values()) == 1, counted.most_common(3)
    fires = sorted(fire for (_, fire) in counted)
    first = created.replace(microsecond=0) + timedelta(seconds=SLOT - created.second % SLOT)
    assert fires == every(SLOT, first, fires[-1]), "a slot has no Run"
    # The retry after the lost answer met the Run it had created: settled by the 409, not created twice.
    assert metric(operator, "stargraph_dedupes_total", stage="sink") >= settled_before + 1


def test_an_object_holding_a_runs_name_is_reported_and_never_adopted(
    proxy: FaultProxy, operator: OperatorProcess, kube_api: ApiClient, namespace: str
) -> None:
    start = datetime.now(UTC).replace(microsecond=0)
    # A slot 8-10 s ahead: the trigger is running by then.
    target = start + timedelta(seconds=8 + SLOT - start.second % SLOT)
    key = cron_idempotency_key(trigger_id("cron", namespace, "squatted"), target)
    name = run_name(trigger_name="squatted", idempotency_key=key)
    objects = CustomObjectsApi(kube_api)
    before = objects.create_namespaced_custom_object(GROUP, VERSION, namespace, "runs", squatter(name))
    create(kube_api, namespace, cron_trigger("squatted", f"*/{SLOT} * * * * *", startingDeadlineSeconds=60))

    def conflict_event() -> bool:
        events = EventsV1Api(kube_api).list_namespaced_event(namespace).items
        return any(e.reason == "RunNameConflict" and e.regarding.name == "squatted" for e in events)

    eventually(conflict_event, timeout=30, what="a RunNameConflict Event")
    assert metric(operator, "stargraph_run_create_refusals_total", reason="run_name_conflict") == 1
    after = objects.get_namespaced_custom_object(GROUP, VERSION, namespace, "runs", name)
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]  # not touched at all
    assert not after["metadata"].get("ownerReferences")

    # The slots around it have their Runs: one refused fire stops nothing.
    def fires_of_the_trigger() -> list[datetime]:
        owned = [run for run in list_runs(kube_api, namespace) if run["metadata"]["name"] != name]
        return [fire for (_, fire) in runs_per_fire(owned)]

    eventually(
        lambda: target + timedelta(seconds=SLOT) in fires_of_the_trigger(),
        timeout=20,
        what=f"the Run of the slot after {format_fire_time(target)}",
    )
    assert target not in fires_of_the_trigger()
