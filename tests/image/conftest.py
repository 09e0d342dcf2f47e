"""Fixtures of the image tests: the image built by hack/build-image.sh, and the chart's Deployment running from it.

``operator_image`` builds the image once per session (seconds when the script's cache is current). ``image_release``
installs the chart as a release of its own, with the values a host-network install next to this control plane
needs: the image just built (never pulled), ``hostNetwork``, a free port, and the apiserver's loopback address in
``extraEnv`` (nothing routes the kubernetes Service's ClusterIP here). ``operator_pod`` runs the release's
Deployment, as ``helm install`` rendered it, with podman (tests/support/pod.py), authenticated by a TokenRequest
token of the release's ServiceAccount mounted where the kubelet mounts it. A failing test shows the container's log.
"""

from __future__ import annotations

import base64
from collections.abc import Generator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.e2e.conftest import crds, kubectl  # noqa: F401  (fixtures)
from tests.support.chart import InstalledChart, install_chart
from tests.support.controlplane import KubeCluster, kubeconfig_context
from tests.support.image import operator_image as build_operator_image
from tests.support.operator import free_port
from tests.support.pod import PodmanPod

RELEASE = "image"
NAMESPACE = "stargraph-image"


@pytest.fixture(scope="session")
def operator_image() -> str:
    """The image's name, built from the working tree by hack/build-image.sh."""
    return build_operator_image()


@pytest.fixture(scope="session")
def image_release(crds: None, control_plane: KubeCluster, operator_image: str) -> Iterator[InstalledChart]:  # noqa: F811
    server = urlsplit(kubeconfig_context(control_plane.kubeconfig)[0]["server"])
    repository, _, tag = operator_image.rpartition(":")
    values = {
        "image": {"repository": repository, "tag": tag, "pullPolicy": "Never"},
        "hostNetwork": True,
        "operator": {"port": free_port()},
        "extraEnv": [
            {"name": "KUBERNETES_SERVICE_HOST", "value": server.hostname},
            {"name": "KUBERNETES_SERVICE_PORT", "value": str(server.port)},
        ],
    }
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


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report: pytest.TestReport = yield
    pod = getattr(item, "funcargs", {}).get("operator_pod")
    if report.failed and isinstance(pod, PodmanPod):
        report.sections.append((f"{pod.name} log (last 60 lines)", pod.logs(60)))
    return report
