"""The container slice: what the operator must do wherever its image runs as the chart's Deployment says, judged by
the Runs the apiserver holds and the answers given: a cron fire, a signed webhook delivery, a manual run that only
a caller the apiserver allows may start.

The tests are collected from the modules that import them, one per place the container runs, each defining the
fixture ``operator_url`` (where its operator answers, the operator running): tests/image/test_operator_container.py
(podman standing in for the kubelet) and tests/image/test_operator_on_the_kubelet.py (the chart's own Pod on the
kubelet test node). That module's marks apply, and its last test stops the operator.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
from kubernetes.client import ApiClient

from stargraph.api.v1alpha1 import GROUP
from stargraph.fires.keys import body_sha256, cron_idempotency_key, webhook_idempotency_key
from stargraph.runs.naming import run_name
from stargraph.triggers.signatures import SignatureScheme, sign
from tests.e2e.kube import (
    create,
    cron_trigger,
    fire_of,
    get,
    is_ready,
    list_runs,
    parse_time,
    put_secret,
    webhook_trigger,
)
from tests.support.controlplane import KubeCluster
from tests.support.operator import Kubectl, eventually

__all__ = [
    "test_a_cron_fire_creates_its_run",
    "test_a_manual_run_needs_a_caller_the_apiserver_allows",
    "test_a_signed_webhook_delivery_creates_its_run",
]


@pytest.mark.usefixtures("operator_url")
def test_a_cron_fire_creates_its_run(kube_api: ApiClient, namespace: str) -> None:
    trigger = create(kube_api, namespace, cron_trigger("tick", "* * * * * *", runTemplate={"graph": "image"}))
    runs = eventually(lambda: list_runs(kube_api, namespace), timeout=15, what="a Run of the cron trigger")
    run = runs[0]
    fire = fire_of(run)
    key = cron_idempotency_key(f"cron:{namespace}/tick", fire)
    assert run["metadata"]["name"] == run_name(trigger_name="tick", idempotency_key=key)
    assert run["metadata"]["ownerReferences"][0]["uid"] == trigger["metadata"]["uid"]
    assert run["spec"]["graph"] == "image"
    assert fire >= parse_time(trigger["metadata"]["creationTimestamp"])


def test_a_signed_webhook_delivery_creates_its_run(operator_url: str, kube_api: ApiClient, namespace: str) -> None:
    put_secret(kube_api, namespace, "hook-secret", {"secret": "image-secret"})
    create(kube_api, namespace, webhook_trigger("hook", "hook-secret", runTemplate={"graph": "on-push"}))

    def ready() -> dict[str, Any] | None:
        trigger = get(kube_api, namespace, "webhooktriggers", "hook")
        return trigger if is_ready(trigger) else None

    trigger = eventually(ready, timeout=10, what="the WebhookTrigger Ready")
    url = operator_url + trigger["status"]["path"]
    body = json.dumps({"ref": "refs/heads/main"}).encode()
    headers = {"content-type": "application/json"}

    unsigned = httpx.post(url, content=body, headers=headers)
    assert unsigned.status_code == 401, unsigned.text
    signature = sign(scheme=SignatureScheme.HMAC_SHA256, key=b"image-secret", body=body)
    delivered = httpx.post(url, content=body, headers={**headers, **signature})
    assert delivered.status_code == 201, delivered.text

    key = webhook_idempotency_key(f"webhook:{namespace}/hook", body_sha256(body))
    name = run_name(trigger_name="hook", idempotency_key=key)
    assert delivered.json()["run"] == {"name": name, "namespace": namespace}
    run = get(kube_api, namespace, "runs", name)
    assert run is not None, "answered 201 without the Run"
    assert run["metadata"]["labels"][f"{GROUP}/source"] == "webhook"
    assert [r["metadata"]["name"] for r in list_runs(kube_api, namespace)] == [name]


def test_a_manual_run_needs_a_caller_the_apiserver_allows(
    operator_url: str, kube_api: ApiClient, namespace: str, control_plane: KubeCluster, kubectl: Kubectl
) -> None:
    create(kube_api, namespace, cron_trigger("nightly", "0 0 1 1 *"))
    token = control_plane.service_account_token(namespace=namespace, name="caller")
    key = str(uuid.uuid4())

    def post() -> httpx.Response:
        return httpx.post(
            f"{operator_url}/v1/runs",
            headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key},
            json={"triggerRef": {"kind": "CronTrigger", "name": "nightly", "namespace": namespace}},
            timeout=30,
        )

    # TokenReview and SubjectAccessReview, asked by the container as the chart's ServiceAccount.
    refused = post()
    assert refused.status_code == 403, refused.text
    kubectl.ok("create", "role", "run-creator", "--verb=create", f"--resource=runs.{GROUP}", "-n", namespace)
    kubectl.ok(
        "create",
        "rolebinding",
        "run-creator",
        "--role=run-creator",
        f"--serviceaccount={namespace}:caller",
        "-n",
        namespace,
    )

    def created() -> httpx.Response | None:
        response = post()
        assert response.status_code in (201, 403), response.text
        return response if response.status_code == 201 else None

    answer = eventually(created, timeout=10, what="201 once the RoleBinding is in force")
    name = run_name(trigger_name="nightly", idempotency_key=key)
    assert answer.json() == {"run": {"name": name, "namespace": namespace}, "created": True}
    run = get(kube_api, namespace, "runs", name)
    assert run is not None and run["spec"]["source"] == "manual"
