"""Fixtures of the fault tests: those of the end-to-end tests, with the chart installed as a release of its own.

A fixture imported into another directory's conftest is a second fixture, with an instance of its own: the
end-to-end `operator_identity` re-exported here would install the chart a second time under the same release name
whenever both directories run in one session. So the fault tests run their operators as the ServiceAccount of a
release of their own (same values, its own namespace and Lease); the other fixtures are the end-to-end ones.
``leak_watch`` collects the secrets a test uses, to search its operators' logs and its error answers for them.
``proxy`` is a fault proxy in front of the apiserver, and ``proxied_kubeconfig`` the operators' kubeconfig that
sends every call through it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.e2e.conftest import (  # noqa: F401
    CHART_VALUES,
    OperatorIdentity,
    crds,
    kubectl,
    operators,
    pytest_runtest_makereport,
)
from tests.faults.leaks import LeakWatch, kubeconfig_token
from tests.support.chart import install_chart
from tests.support.controlplane import ControlPlane, KubeCluster
from tests.support.fault_proxy import FaultProxy, fault_proxy

RELEASE = "faults"
CHART_NAMESPACE = "stargraph-faults"
LEASE_NAME = "stargraph-faults"


@pytest.fixture(scope="session")
def operator_identity(crds: None, control_plane: KubeCluster) -> Iterator[OperatorIdentity]:  # noqa: F811
    """The chart installed in cluster mode as release `faults`; every operator under test runs as its ServiceAccount."""
    values = {**CHART_VALUES, "leaderElection": {"enabled": True, "leaseName": LEASE_NAME}}
    with install_chart(control_plane, release=RELEASE, namespace=CHART_NAMESPACE, values=values) as chart:
        yield OperatorIdentity(
            kubeconfig=chart.service_account_kubeconfig(), lease_namespace=CHART_NAMESPACE, lease_name=LEASE_NAME
        )


@pytest.fixture
def leak_watch(operator_identity: OperatorIdentity) -> LeakWatch:
    """Secrets and error bodies to search the operators' logs for; the operators' own token is always watched."""
    watch = LeakWatch()
    watch.secret(kubeconfig_token(operator_identity.kubeconfig), what="the operator's ServiceAccount token")
    return watch


@pytest.fixture
def proxy(control_plane: KubeCluster) -> Iterator[FaultProxy]:
    if not isinstance(control_plane, ControlPlane):
        pytest.skip("serves the apiserver's certificate: needs the project's own control plane")
    with fault_proxy(
        upstream=control_plane.server,
        ca_file=control_plane.ca_file,
        cert_file=control_plane.serving_cert_file,
        key_file=control_plane.serving_key_file,
    ) as running:
        yield running


@pytest.fixture
def proxied_kubeconfig(proxy: FaultProxy, operator_identity: OperatorIdentity, tmp_path: Path) -> Path:
    """The operators' kubeconfig with the fault proxy as the server: watches, creates, status and Events go through."""
    config = yaml.safe_load(operator_identity.kubeconfig.read_text())
    for cluster in config["clusters"]:
        cluster["cluster"]["server"] = proxy.url
    kubeconfig = tmp_path / "through-proxy.kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(config))
    return kubeconfig
