"""The chart's own Pod on the test cluster's real kubelet: `helm install` with the image built here (imported into the
node's containerd, never pulled), placed on the kubelet node by the chart's ``nodeSelector`` and ``tolerations``,
Ready by the kubelet's own probes and connected with the ServiceAccount token and CA the kubelet projects. Then the
container slice (tests/image/container_slice.py) against it, and a drain whose outcome is read from the Pod's status.

Everything stays on loopback although the Pod's IP is this machine's other address (a host-network Pod has the
node's): the test reaches the operator at 127.0.0.1:<port>, the operator the apiserver at 127.0.0.1 (``extraEnv``),
and the kubelet probes 127.0.0.1 (the chart's probe host with ``hostNetwork``).
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tests.image.container_slice import (  # noqa: F401  (tests, run here against operator_url)
    test_a_cron_fire_creates_its_run,
    test_a_manual_run_needs_a_caller_the_apiserver_allows,
    test_a_signed_webhook_delivery_creates_its_run,
)
from tests.support.node import KubeletNode
from tests.support.pod import SERVICE_ACCOUNT_DIR
from tests.support.release_pod import ReleasePod

pytestmark = pytest.mark.cluster


@pytest.fixture
def operator_url(kubelet_pod: ReleasePod) -> str:
    """Where the container slice reaches the operator: the Pod's port, in this machine's network, on loopback."""
    return kubelet_pod.url


def test_the_pod_is_ready_on_the_kubelet_node_probed_on_loopback(
    kubelet_pod: ReleasePod, kubelet_node: KubeletNode, node_operator_image: str
) -> None:
    pod = kubelet_pod.pod
    print(f"{pod.metadata.name} Ready {kubelet_pod.ready_seconds:.1f}s after helm install")
    assert pod.spec.node_name == kubelet_node.name
    # Its IP is the node's, which is why the probes name their host: the kubelet would otherwise probe that address.
    assert pod.spec.host_network and pod.status.pod_ip == pod.status.host_ip
    (container,) = pod.spec.containers
    assert (container.image, container.image_pull_policy) == (node_operator_image, "Never")
    probes = (container.startup_probe, container.liveness_probe, container.readiness_probe)
    assert [probe.http_get.host for probe in probes] == ["127.0.0.1"] * len(probes)
    (status,) = pod.status.container_statuses
    assert (status.started, status.ready, status.restart_count) == (True, True, 0)


def _claims(token: str) -> dict[str, Any]:
    """What a JWT says, unverified: the apiserver verifies it, the test only reads whom it was issued for."""
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return claims


def test_the_kubelet_projects_the_service_account_token_and_ca(
    kubelet_pod: ReleasePod, kubelet_node: KubeletNode
) -> None:
    pod = kubelet_pod.pod
    (container,) = pod.spec.containers
    (mount,) = [mount for mount in container.volume_mounts if mount.mount_path == SERVICE_ACCOUNT_DIR]
    assert mount.read_only
    # What ServiceAccount admission added for the chart's automountServiceAccountToken: the kubelet's TokenRequest
    # for this Pod, the cluster's CA from the kube-root-ca.crt ConfigMap (the controller-manager publishes it), and
    # the namespace.
    (volume,) = [volume for volume in pod.spec.volumes if volume.name == mount.name]
    sources = volume.projected.sources
    assert [source.service_account_token.path for source in sources if source.service_account_token] == ["token"]
    assert [source.config_map.name for source in sources if source.config_map] == ["kube-root-ca.crt"]

    files = kubelet_node.pod_volume(pod, plugin="kubernetes.io~projected", name=volume.name)
    assert (files / "ca.crt").read_bytes() == kubelet_node.cp.ca_file.read_bytes()
    assert (files / "namespace").read_text() == pod.metadata.namespace
    claims = _claims((files / "token").read_text())
    assert claims["sub"] == f"system:serviceaccount:{pod.metadata.namespace}:{pod.spec.service_account_name}"
    # Bound to this Pod on this node: the token the kubelet asked for, not one the test minted.
    assert claims["kubernetes.io"]["pod"] == {"name": pod.metadata.name, "uid": pod.metadata.uid}
    assert claims["kubernetes.io"]["node"]["name"] == kubelet_node.name


def test_sigterm_drains_and_exits_0_within_the_grace_period(kubelet_pod: ReleasePod) -> None:
    """Last in the module: the Deployment scaled to 0, then the container's end as the kubelet reported it."""
    grace = kubelet_pod.pod.spec.termination_grace_period_seconds
    ended = kubelet_pod.scale_to_zero(timeout=grace + 30)
    print(f"{kubelet_pod.name}: exit {ended.exit_code} ({ended.reason}) {ended.seconds:.0f}s after its deletion")
    assert ended.grace_seconds == grace, ended  # deleted with the Pod's own grace period
    assert (ended.exit_code, ended.reason) == (0, "Completed"), kubelet_pod.logs()
    # Before the end of the grace period, so not killed: SIGKILL would have left 137 anyway.
    assert ended.finished_at < ended.deadline, ended
    # The liveness probe, on loopback, never failed long enough to restart it.
    assert ended.restart_count == 0, ended
