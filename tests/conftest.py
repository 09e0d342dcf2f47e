"""Shared fixtures. Cluster logic lives in tests/support; keep this file to fixture wiring.

``control_plane`` starts one local control plane per session, on first use (tests/support/controlplane.py).
Set ``STARGRAPH_TEST_KUBECONFIG`` to the path of an admin kubeconfig to run the cluster tests against that
existing cluster instead; nothing is started then, and it is left running.

``kubelet_node`` (a real kubelet, Pods run on this machine; needs root) and ``kwok_node`` (a fake node, Pods only
change status) join that control plane on first use (tests/support/node.py). Both are skipped against an
existing cluster.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator

import pytest
from kubernetes.client import ApiClient

from tests.support.controlplane import ControlPlane, KubeCluster, cluster_from_env, temporary_namespace
from tests.support.node import KubeletNode, KwokNode


@pytest.fixture(scope="session")
def control_plane() -> Iterator[KubeCluster]:
    with cluster_from_env() as cluster:
        yield cluster


def _local(cluster: KubeCluster) -> ControlPlane:
    if not isinstance(cluster, ControlPlane):
        pytest.skip("test nodes join only the local control plane, not the cluster of $STARGRAPH_TEST_KUBECONFIG")
    return cluster


@pytest.fixture(scope="session")
def kubelet_node(control_plane: KubeCluster) -> Iterator[KubeletNode]:
    """containerd + kubelet as Node ``stargraph-node``, with the test images imported (tests/support/images.py)."""
    if os.geteuid() != 0:
        pytest.skip("a kubelet node needs root")
    with KubeletNode(_local(control_plane)) as node:
        yield node


@pytest.fixture(scope="session")
def kwok_node(control_plane: KubeCluster) -> Iterator[KwokNode]:
    """Fake Node ``kwok-node`` run by kwok; Pods reach it with ``KWOK_PLACEMENT``."""
    with KwokNode(_local(control_plane)) as node:
        yield node


@pytest.fixture
def kube_api(control_plane: KubeCluster) -> Iterator[ApiClient]:
    """A new admin ``kubernetes.client.ApiClient``, closed after the test."""
    with control_plane.api_client() as api:
        yield api


@pytest.fixture
def namespace(kube_api: ApiClient, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace named after the test; deleted afterwards without waiting."""
    with temporary_namespace(kube_api, hint=request.node.name) as name:
        yield name


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    # A failing cluster test is often explained by the control plane's own logs; show their tails with it.
    report: pytest.TestReport = yield
    cluster = getattr(item, "funcargs", {}).get("control_plane")
    if report.failed and cluster is not None and (text := cluster.diagnostics()):
        report.sections.append(("control plane logs", text))
    return report
