"""The operator from its image, run exactly as the chart's Deployment says (tests/support/pod.py), against the real
control plane: a slice of the end-to-end tests, judged by the Runs the apiserver holds and the answers given.

The container has no kubeconfig: it connects through the in-cluster path (``KUBERNETES_SERVICE_HOST``/``_PORT`` and
the mounted ServiceAccount token and CA), with only the permissions the chart grants its ServiceAccount. One
container serves the module; the last test stops it as the kubelet would and reads its exit code.
"""

from __future__ import annotations

import itertools
import json
import time
import uuid
from pathlib import Path
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
from tests.support.pod import SERVICE_ACCOUNT_DIR, PodmanPod

pytestmark = pytest.mark.cluster


def test_connects_in_cluster_with_only_the_mounted_service_account(operator_pod: PodmanPod) -> None:
    args = operator_pod.run_args()
    assert not any("kubeconfig" in arg.lower() for arg in args), args
    assert "--env=KUBERNETES_SERVICE_HOST=127.0.0.1" in args
    assert any(arg.endswith(f"destination={SERVICE_ACCOUNT_DIR},ro=true") for arg in args), args
    listing = operator_pod.exec("ls", SERVICE_ACCOUNT_DIR).stdout.split()
    assert sorted(listing) == ["ca.crt", "namespace", "token"]


def test_a_cron_fire_creates_its_run(operator_pod: PodmanPod, kube_api: ApiClient, namespace: str) -> None:
    trigger = create(kube_api, namespace, cron_trigger("tick", "* * * * * *", runTemplate={"graph": "image"}))
    runs = eventually(lambda: list_runs(kube_api, namespace), timeout=15, what="a Run of the cron trigger")
    run = runs[0]
    fire = fire_of(run)
    key = cron_idempotency_key(f"cron:{namespace}/tick", fire)
    assert run["metadata"]["name"] == run_name(trigger_name="tick", idempotency_key=key)
    assert run["metadata"]["ownerReferences"][0]["uid"] == trigger["metadata"]["uid"]
    assert run["spec"]["graph"] == "image"
    assert fire >= parse_time(trigger["metadata"]["creationTimestamp"])


def test_a_signed_webhook_delivery_creates_its_run(
    operator_pod: PodmanPod, kube_api: ApiClient, namespace: str
) -> None:
    put_secret(kube_api, namespace, "hook-secret", {"secret": "image-secret"})
    create(kube_api, namespace, webhook_trigger("hook", "hook-secret", runTemplate={"graph": "on-push"}))

    def ready() -> dict[str, Any] | None:
        trigger = get(kube_api, namespace, "webhooktriggers", "hook")
        return trigger if is_ready(trigger) else None

    trigger = eventually(ready, timeout=10, what="the WebhookTrigger Ready")
    url = operator_pod.url + trigger["status"]["path"]
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
    operator_pod: PodmanPod, kube_api: ApiClient, namespace: str, control_plane: KubeCluster, kubectl: Kubectl
) -> None:
    create(kube_api, namespace, cron_trigger("nightly", "0 0 1 1 *"))
    token = control_plane.service_account_token(namespace=namespace, name="caller")
    key = str(uuid.uuid4())

    def post() -> httpx.Response:
        return httpx.post(
            f"{operator_pod.url}/v1/runs",
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


def test_runs_as_65532_with_no_capability_and_a_read_only_root(operator_pod: PodmanPod) -> None:
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{operator_pod.host_pid()}/status").read_text().splitlines()
    )
    assert status["Uid"].split() == ["65532"] * 4
    assert status["Gid"].split() == ["65532"] * 4
    assert int(status["CapEff"], 16) == int(status["CapPrm"], 16) == 0
    assert status["NoNewPrivs"].strip() == "1"
    assert status["Seccomp"].strip() == "2"  # a seccomp filter: podman's default profile, the RuntimeDefault
    mounts = {
        fields[4]: fields[5].split(",")
        for fields in (
            line.split() for line in Path(f"/proc/{operator_pod.host_pid()}/mountinfo").read_text().splitlines()
        )
    }
    assert "ro" in mounts["/"], mounts["/"]
    assert "rw" in mounts["/tmp"], mounts["/tmp"]
    # /var/run is a link to /run in both bases, so the kernel names the token's mount point from /run.
    (account,) = [
        options for point, options in mounts.items() if point.endswith("/secrets/kubernetes.io/serviceaccount")
    ]
    assert "ro" in account, account


def test_probes_answer_as_the_spec_says(operator_pod: PodmanPod) -> None:
    for probe in operator_pod.prober.probes:
        results = operator_pod.prober.of(probe.kind)
        assert results, f"no {probe.kind} yet"
        # Not ready before the first success is start-up; after it, every answer must be a success.
        first = next(i for i, result in enumerate(results) if result.success)
        assert probe.kind == "readinessProbe" or first == 0, results
        assert all(result.status == 200 for result in results[first:]), [result.status for result in results]
        gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(results)]
        # Loose enough for a busy machine, tight enough to tell the rendered periods (5 s, 10 s) apart.
        assert all(abs(gap - probe.period_seconds) < 0.3 * probe.period_seconds for gap in gaps), (probe.kind, gaps)
    assert not operator_pod.prober.restart_due()


def test_sigterm_drains_and_exits_0_within_the_grace_period(operator_pod: PodmanPod) -> None:
    """Last in the module: the kubelet's termination, then what the container left behind."""
    started = time.monotonic()
    exit_code = operator_pod.stop()
    took = time.monotonic() - started
    assert exit_code == 0, operator_pod.logs()
    assert took < operator_pod.grace_seconds, f"took {took:.1f}s of a {operator_pod.grace_seconds}s grace period"
    # Over its whole run the root filesystem took no write (read-only), and the /tmp volume stayed within its limit.
    assert operator_pod.changes() == operator_pod.changes_at_start
    used = sum(path.stat().st_size for path in operator_pod.volume_dir("tmp").rglob("*") if path.is_file())
    limit = operator_pod.size_limit("tmp")
    assert limit is not None and used <= limit, (used, limit)
