"""Fixtures of the image tests: the image built by hack/build-image.sh, and the chart's Deployment running from it.

``operator_image`` builds the image once per session (seconds when the script's cache is current). ``image_release``
installs the chart as a release of its own, with the values a host-network install next to this control plane
needs: the image just built (never pulled), ``hostNetwork``, a free port, and the apiserver's loopback address in
``extraEnv`` (nothing routes the kubernetes Service's ClusterIP here). ``operator_pod`` runs the release's
Deployment, as ``helm install`` rendered it, with podman (tests/support/pod.py), authenticated by a TokenRequest
token of the release's ServiceAccount mounted where the kubelet mounts it.

``kubelet_pod`` is the same chart on the real kubelet: the image exported by podman and imported into the node's
containerd (``node_operator_image``, once per session), the chart installed with the node's placement in a namespace
Pod Security lets use the host's network, its Pod Ready by the kubelet's probes, with the token the kubelet projects.
One install serves a module; uninstalling it afterwards stops the Pod if a test did not. A failing test shows the
container's log (for the kubelet's Pod, read from the node's log files).
"""

from __future__ import annotations

import base64
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.e2e.conftest import crds, kubectl  # noqa: F401  (fixtures)
from tests.support.chart import NO_ADMISSION_WEBHOOK, InstalledChart, install_chart
from tests.support.controlplane import KubeCluster, kubeconfig_context
from tests.support.image import operator_image as build_operator_image
from tests.support.image import podman
from tests.support.node import KUBELET_PLACEMENT, KubeletNode
from tests.support.operator import free_port
from tests.support.pod import PodmanPod
from tests.support.release_pod import ReleasePod

RELEASE = "image"
NAMESPACE = "stargraph-image"
KUBELET_RELEASE = "kubelet"
KUBELET_NAMESPACE = "stargraph-kubelet"


@pytest.fixture(scope="session")
def operator_image() -> str:
    """The image's name, built from the working tree by hack/build-image.sh."""
    return build_operator_image()


def _host_network_values(control_plane: KubeCluster, image: str) -> dict[str, Any]:
    """Chart values for an operator in this machine's network next to the control plane, running ``image``."""
    server = urlsplit(kubeconfig_context(control_plane.kubeconfig)[0]["server"])
    repository, _, tag = image.rpartition(":")
    return {
        "image": {"repository": repository, "tag": tag, "pullPolicy": "Never"},
        "hostNetwork": True,
        "operator": {"port": free_port()},
        **NO_ADMISSION_WEBHOOK,
        "extraEnv": [
            {"name": "KUBERNETES_SERVICE_HOST", "value": server.hostname},
            {"name": "KUBERNETES_SERVICE_PORT", "value": str(server.port)},
        ],
    }


@pytest.fixture(scope="session")
def image_release(crds: None, control_plane: KubeCluster, operator_image: str) -> Iterator[InstalledChart]:  # noqa: F811
    values = _host_network_values(control_plane, operator_image)
    with install_chart(control_plane, release=RELEASE, namespace=NAMESPACE, values=values) as chart:
        yield chart


def _ca_pem(control_plane: KubeCluster) -> bytes:
    """The CA the apiserver's serving certificate chains to, as the kubelet puts it in the Pod (ca.crt)."""
    cluster, _ = kubeconfig_context(control_plane.kubeconfig)
    if "certificate-authority-data" in cluster:
        return base64.b64decode(cluster["certificate-authority-data"])
    return Path(cluster["certificate-authority"]).read_bytes()


@pytest.fixture(scope="module")
def operator_pod(
    image_release: InstalledChart, control_plane: KubeCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PodmanPod]:
    """The release's Deployment as a running container, ready by its own probes; removed after the module."""
    (deployment,) = [doc for doc in image_release.manifests() if doc["kind"] == "Deployment"]
    with PodmanPod(
        deployment,
        token=image_release.service_account_token(),
        ca_pem=_ca_pem(control_plane),
        work_dir=tmp_path_factory.mktemp("pod"),
    ) as pod:
        yield pod


@pytest.fixture(scope="session")
def node_operator_image(
    kubelet_node: KubeletNode, operator_image: str, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """The operator image, in the kubelet node's containerd (no registry: a docker-archive podman writes)."""
    archive = tmp_path_factory.mktemp("node-image") / "operator.tar"
    podman("save", "--format", "docker-archive", "--output", str(archive), operator_image, timeout=300)
    kubelet_node.import_image(archive)
    archive.unlink()
    return operator_image


@pytest.fixture(scope="module")
def kubelet_pod(
    crds: None,  # noqa: F811
    control_plane: KubeCluster,
    kubelet_node: KubeletNode,
    node_operator_image: str,
) -> Iterator[ReleasePod]:
    """The chart installed with the image on the kubelet node, and its Pod once Ready."""
    values = {**_host_network_values(control_plane, node_operator_image), **KUBELET_PLACEMENT}
    with install_chart(
        control_plane,
        release=KUBELET_RELEASE,
        namespace=KUBELET_NAMESPACE,
        values=values,
        # Host networking is a host namespace, which only the "privileged" level allows.
        namespace_labels={"pod-security.kubernetes.io/enforce": "privileged"},
    ) as chart:
        yield ReleasePod(chart, kubelet_node).wait_ready(timeout=120)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report: pytest.TestReport = yield
    funcargs = getattr(item, "funcargs", {})
    for pod in (funcargs.get("operator_pod"), funcargs.get("kubelet_pod")):
        if report.failed and isinstance(pod, PodmanPod | ReleasePod):
            report.sections.append((f"{pod.name} log (last 60 lines)", pod.logs(60)))
    return report
