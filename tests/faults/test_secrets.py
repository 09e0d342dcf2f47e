"""WebhookTrigger Secrets going away, losing a key, coming back, and the Secrets no trigger names.

A deleted Secret revokes its signing secret within seconds: the trigger goes Stalled and its path answers 404, so
a delivery signed with the deleted secret creates nothing. Re-creating the Secret (or adding the key back) makes
the trigger Ready again with the new value. A large Secret nobody names (a Helm release's) is never read: the
operator's own count of Secret reads proves it, with the operator confined to one namespace by the chart's
`namespaces` mode, so every Secret it could read is this test's.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from kubernetes.client import ApiClient, CoreV1Api, V1ObjectMeta, V1Secret
from prometheus_client.parser import text_string_to_metric_families

from stargraph.triggers.signatures import SignatureScheme, sign
from tests.e2e.conftest import Operators
from tests.e2e.kube import condition, create, get, is_ready, list_runs, put_secret, webhook_trigger
from tests.support.chart import NO_ADMISSION_WEBHOOK, Helm, helm_fixture, install_chart
from tests.support.controlplane import KubeCluster
from tests.support.operator import OperatorProcess, eventually

__all__ = ["helm_fixture"]  # the `helm` fixture, used by the test of unnamed Secrets

pytestmark = pytest.mark.cluster

JSON = {"content-type": "application/json"}
REVOKED_WITHIN = 5.0
"""Seconds from a Secret's deletion (or a key's removal) to the trigger reporting it: a few, never a resync."""


@pytest.fixture
def operator(operators: Operators) -> OperatorProcess:
    """An operator watching the whole cluster as the chart's ServiceAccount (cluster mode)."""
    return operators.start("secrets-operator")


def deliver(operator: OperatorProcess, namespace: str, name: str, body: bytes, key: str) -> httpx.Response:
    headers = {**JSON, **sign(scheme=SignatureScheme.HMAC_SHA256, key=key.encode(), body=body)}
    return httpx.post(f"{operator.url}/v1/hooks/{namespace}/{name}", content=body, headers=headers)


def body(n: int) -> bytes:
    return json.dumps({"delivery": n}).encode()


def run_names(api: ApiClient, namespace: str) -> set[str]:
    return {run["metadata"]["name"] for run in list_runs(api, namespace)}


def wait_ready(api: ApiClient, namespace: str, name: str) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        obj = get(api, namespace, "webhooktriggers", name)
        return obj if is_ready(obj) else None

    return eventually(ready, timeout=10, what=f"webhooktrigger {name} Ready")


def ready_hook(api: ApiClient, namespace: str, *, secret: str) -> None:
    """WebhookTrigger `hook`, verifying with `secret` from Secret `hook-secret`, applied and Ready."""
    put_secret(api, namespace, "hook-secret", {"secret": secret})
    create(api, namespace, webhook_trigger("hook", "hook-secret"))
    wait_ready(api, namespace, "hook")


def wait_stalled(api: ApiClient, namespace: str, name: str, reason: str) -> dict[str, Any]:
    def stalled() -> dict[str, Any] | None:
        obj = get(api, namespace, "webhooktriggers", name)
        found = condition(obj, "Stalled")
        return obj if found.get("status") == "True" and found.get("reason") == reason else None

    return eventually(stalled, timeout=REVOKED_WITHIN, interval=0.05, what=f"webhooktrigger {name} Stalled {reason}")


def secret_reads(operator: OperatorProcess) -> float:
    text = httpx.get(f"{operator.url}/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "stargraph_secret_reads_total":
                return sample.value
    raise AssertionError("no stargraph_secret_reads_total in /metrics")


def test_deleted_secret_stalls_the_trigger_within_seconds_and_its_old_signatures_get_404(
    operator: OperatorProcess, kube_api: ApiClient, namespace: str
) -> None:
    ready_hook(kube_api, namespace, secret="leaked")
    accepted = deliver(operator, namespace, "hook", body(1), "leaked")
    assert accepted.status_code == 201, accepted.text
    runs = run_names(kube_api, namespace)
    assert runs == {accepted.json()["run"]["name"]}

    deleted_at = time.monotonic()
    CoreV1Api(kube_api).delete_namespaced_secret("hook-secret", namespace)
    obj = wait_stalled(kube_api, namespace, "hook", "SecretNotFound")
    assert time.monotonic() - deleted_at < REVOKED_WITHIN
    stalled = condition(obj, "Stalled")
    assert stalled["message"] == f"spec.secretRef.name: Secret {namespace}/hook-secret does not exist"
    assert condition(obj, "Ready")["status"] == "False"
    assert not obj["status"].get("path")

    revoked = deliver(operator, namespace, "hook", body(2), "leaked")
    assert revoked.status_code == 404, revoked.text
    assert revoked.json()["error"]["reason"] == "unknown_trigger"
    redelivered = deliver(operator, namespace, "hook", body(1), "leaked")  # not even the known Run is answered
    assert redelivered.status_code == 404, redelivered.text
    assert run_names(kube_api, namespace) == runs


def test_removed_key_stalls_the_trigger_and_adding_it_back_makes_it_ready(
    operator: OperatorProcess, kube_api: ApiClient, namespace: str
) -> None:
    put_secret(kube_api, namespace, "keys", {"current": "one", "next": "two"})
    create(
        kube_api, namespace, webhook_trigger("hook", "keys", secretRef={"name": "keys", "keys": ["current", "next"]})
    )
    wait_ready(kube_api, namespace, "hook")
    assert deliver(operator, namespace, "hook", body(1), "two").status_code == 201

    put_secret(kube_api, namespace, "keys", {"current": "one"})
    obj = wait_stalled(kube_api, namespace, "hook", "SecretKeyMissing")
    assert condition(obj, "Stalled")["message"] == f"spec.secretRef.keys: Secret {namespace}/keys has no key 'next'"
    refused = deliver(operator, namespace, "hook", body(2), "one")
    assert refused.status_code == 404, refused.text
    runs = run_names(kube_api, namespace)
    assert len(runs) == 1

    put_secret(kube_api, namespace, "keys", {"current": "one", "next": "three"})
    wait_ready(kube_api, namespace, "hook")
    accepted = deliver(operator, namespace, "hook", body(3), "three")
    assert accepted.status_code == 201, accepted.text
    assert run_names(kube_api, namespace) == runs | {accepted.json()["run"]["name"]}


def test_recreated_secret_makes_the_trigger_ready_and_a_delivery_creates_a_run(
    operator: OperatorProcess, kube_api: ApiClient, namespace: str
) -> None:
    ready_hook(kube_api, namespace, secret="old")
    CoreV1Api(kube_api).delete_namespaced_secret("hook-secret", namespace)
    wait_stalled(kube_api, namespace, "hook", "SecretNotFound")
    assert deliver(operator, namespace, "hook", body(1), "old").status_code == 404
    assert run_names(kube_api, namespace) == set()

    put_secret(kube_api, namespace, "hook-secret", {"secret": "new"})
    obj = wait_ready(kube_api, namespace, "hook")
    assert obj["status"]["path"] == f"/v1/hooks/{namespace}/hook"
    assert condition(obj, "Stalled")["status"] == "False"
    accepted = deliver(operator, namespace, "hook", body(2), "new")
    assert accepted.status_code == 201, accepted.text
    assert run_names(kube_api, namespace) == {accepted.json()["run"]["name"]}
    old = deliver(operator, namespace, "hook", body(3), "old")
    assert old.status_code == 401, old.text


@pytest.fixture
def namespaced_operator(
    control_plane: KubeCluster, helm: Helm, operators: Operators, namespace: str
) -> Iterator[OperatorProcess]:
    """The chart in `namespaces` mode for this test's namespace only, and an operator running as its identity."""
    release = f"sec-{os.urandom(3).hex()}"
    with install_chart(
        control_plane,
        release=release,
        namespace=f"{release}-system",
        values={"watch": {"mode": "namespaces", "namespaces": [namespace]}, **NO_ADMISSION_WEBHOOK},
        helm=helm,
    ) as chart:
        yield operators.start(
            "namespaced-operator",
            kubeconfig=chart.service_account_kubeconfig(),
            extra_args=["--watch-namespace", namespace],
        )


def put_large_secret(api: ApiClient, namespace: str, name: str, size: int) -> None:
    """A Secret shaped like a Helm release's: one key, `size` bytes of incompressible data."""
    data = {"release": base64.b64encode(os.urandom(size)).decode()}
    secret = V1Secret(metadata=V1ObjectMeta(name=name, labels={"owner": "helm"}), type="helm.sh/release.v1", data=data)
    core = CoreV1Api(api)
    if core.list_namespaced_secret(namespace, field_selector=f"metadata.name={name}").items:
        core.replace_namespaced_secret(name, namespace, secret)
    else:
        core.create_namespaced_secret(namespace, secret)


def test_an_unrelated_large_secret_is_never_read(
    namespaced_operator: OperatorProcess, kube_api: ApiClient, namespace: str
) -> None:
    operator = namespaced_operator
    ready_hook(kube_api, namespace, secret="first")
    assert deliver(operator, namespace, "hook", body(1), "first").status_code == 201
    before = secret_reads(operator)
    assert before >= 1, "the trigger was armed without reading its Secret"

    release = "sh.helm.release.v1.big.v1"
    for _ in range(3):  # created, then updated twice, 500 KiB each time
        put_large_secret(kube_api, namespace, release, 500 * 1024)
    # Rotating the named Secret afterwards: its change reaches the operator on the same watch, after the large
    # Secret's three, so once the new value is accepted the operator has seen (and skipped) all of those.
    put_secret(kube_api, namespace, "hook-secret", {"secret": "second"})

    def rotated() -> bool:
        response = deliver(operator, namespace, "hook", body(2), "second")
        assert response.status_code in (201, 401), response.text
        return response.status_code == 201

    eventually(rotated, timeout=10, interval=0.1, what="the rotated secret accepted")
    assert secret_reads(operator) - before == 1, "a Secret other than the rotated one was read"
