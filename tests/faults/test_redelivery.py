"""Redelivery under concurrency: identical deliveries split across two replicas, one Idempotency-Key raced.

50 identical signed deliveries, released at once, 25 to each of two `stargraph operator --leader-elect` replicas:
exactly one Run, exactly one 201, 49 times 200, every answer naming that Run. Then `POST /v1/runs` with one
Idempotency-Key and 20 different bodies, released at once: one 201, 19 times 422, one Run; and after the operator
restarts (its Run index rebuilt from the Runs' annotations) the same key with another body is still 422, with the
winning body 200 and the same Run. Counts come from every Run the apiserver lists.
"""

from __future__ import annotations

import functools
import json
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import httpx
import pytest
from kubernetes.client import ApiClient

from tests.e2e.conftest import OperatorIdentity, Operators
from tests.e2e.kube import create, cron_trigger, list_runs
from tests.e2e.leadership import elect_args
from tests.faults.leaks import LeakWatch
from tests.faults.targets import JSON, bearer, ready_hook
from tests.support.controlplane import KubeCluster
from tests.support.operator import OperatorProcess, eventually

pytestmark = pytest.mark.cluster

T = TypeVar("T")


def at_once(calls: list[Callable[[], T]]) -> list[T]:
    """Run every call in a thread of its own, all released together; their results in order."""
    start = threading.Barrier(len(calls))

    def released(call: Callable[[], T]) -> T:
        start.wait(timeout=30)
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(released, calls))


def test_fifty_identical_deliveries_across_two_replicas_make_one_run_one_201_and_49_200(
    operators: Operators,
    operator_identity: OperatorIdentity,
    kube_api: ApiClient,
    namespace: str,
    leak_watch: LeakWatch,
) -> None:
    replicas = [operators.start(name, extra_args=elect_args(operator_identity)) for name in ("a", "b")]
    hook = ready_hook(kube_api, namespace, "redelivered", leak_watch)

    def refuses_unsigned(replica: OperatorProcess) -> bool:
        """It knows the trigger: an unsigned delivery is refused (401), not unknown (404)."""
        return httpx.post(replica.url + hook.path, content=b"{}", headers=JSON).status_code == 401

    for replica in replicas:
        eventually(functools.partial(refuses_unsigned, replica), timeout=10, what=f"{replica.name} to know the hook")
    body = json.dumps({"ref": "refs/heads/main", "after": uuid.uuid4().hex}).encode()
    headers = hook.headers(body)

    def deliver(replica: OperatorProcess) -> Callable[[], httpx.Response]:
        return lambda: httpx.post(replica.url + hook.path, content=body, headers=headers, timeout=30)

    answers = at_once([deliver(replicas[i % 2]) for i in range(50)])

    statuses = Counter(answer.status_code for answer in answers)
    assert statuses == {201: 1, 200: 49}, [(a.status_code, a.text) for a in answers if a.status_code not in (200, 201)]
    names = {answer.json()["run"]["name"] for answer in answers}
    assert len(names) == 1, names
    created = [answer for answer in answers if answer.json()["created"]]
    assert [answer.status_code for answer in created] == [201]
    assert [run["metadata"]["name"] for run in list_runs(kube_api, namespace)] == list(names)
    leak_watch.assert_none_leaked(operators)


def test_one_idempotency_key_with_different_bodies_makes_one_run_before_and_after_a_restart(
    operators: Operators, control_plane: KubeCluster, kube_api: ApiClient, namespace: str, leak_watch: LeakWatch
) -> None:
    first = operators.start("runs")
    create(kube_api, namespace, cron_trigger("target", "0 0 1 1 *"))
    token = bearer(control_plane, kube_api, namespace, "caller", leak_watch, may_create_runs=True)
    key = str(uuid.uuid4())

    def post(operator: OperatorProcess, params: dict[str, Any], name: str = "target") -> httpx.Response:
        body = {"triggerRef": {"kind": "CronTrigger", "name": name, "namespace": namespace}, "params": params}
        headers = {"Idempotency-Key": key, "Authorization": f"Bearer {token}"}
        response = httpx.post(f"{operator.url}/v1/runs", json=body, headers=headers, timeout=30)
        if response.status_code >= 400:
            leak_watch.error_body(response.content)
        return response

    # The RoleBinding is in force once a Run of a trigger that does not exist is "not found" rather than forbidden.
    eventually(lambda: post(first, {}, name="absent").status_code == 404, timeout=10, what="RBAC in force")

    answers = at_once([functools.partial(post, first, {"n": n}) for n in range(20)])

    statuses = Counter(answer.status_code for answer in answers)
    assert statuses == {201: 1, 422: 19}, [(a.status_code, a.text) for a in answers]
    assert {a.json()["error"]["reason"] for a in answers if a.status_code == 422} == {"idempotency_key_reused"}
    [winner] = [n for n, answer in enumerate(answers) if answer.status_code == 201]
    name = answers[winner].json()["run"]["name"]
    [run] = list_runs(kube_api, namespace)
    assert run["metadata"]["name"] == name and run["spec"]["params"] == {"n": winner}

    assert first.stop() == 0
    restarted = operators.start("runs-restarted")
    other = post(restarted, {"n": 20})
    assert other.status_code == 422, other.text
    assert other.json()["error"]["reason"] == "idempotency_key_reused"
    same = post(restarted, {"n": winner})
    assert same.status_code == 200, same.text
    assert same.json() == {"run": {"name": name, "namespace": namespace}, "created": False}
    assert [run["metadata"]["name"] for run in list_runs(kube_api, namespace)] == [name]
    leak_watch.assert_none_leaked(operators)
