"""Fixtures of the end-to-end tests: the CRDs installed once, operators as real subprocesses, their logs on failure.

``crds`` applies ``crds/`` with kubectl (as users do) once per session and waits for Established. ``operators``
starts ``stargraph operator`` processes for one test and stops them afterwards; a failing test shows the tail of
every operator log it used.
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from stargraph.api import crdgen
from tests.support.chart import NO_ADMISSION_WEBHOOK, install_chart
from tests.support.controlplane import KubeCluster
from tests.support.operator import Kubectl, OperatorProcess, eventually

REPO = Path(__file__).resolve().parents[2]
CRDS = REPO / "crds"


CHART_NAMESPACE = "stargraph-e2e"
LEASE_NAME = "stargraph-e2e"
CHART_VALUES = {
    "watch": {"mode": "cluster"},
    "leaderElection": {"enabled": True, "leaseName": LEASE_NAME},
    # The third-party trigger kind of test_third_party_kind.py, granted the way a user would.
    "extraTriggerKinds": [{"group": "acme.example", "plural": "queuetriggers"}],
    **NO_ADMISSION_WEBHOOK,
}


@dataclass(frozen=True)
class OperatorIdentity:
    kubeconfig: Path
    lease_namespace: str
    lease_name: str


class Operators:
    """Starts operator processes against one cluster; `close()` stops whichever are still running."""

    def __init__(self, kubeconfig: Path, log_dir: Path) -> None:
        self._kubeconfig = kubeconfig
        self._log_dir = log_dir
        self.started: list[OperatorProcess] = []

    def start(
        self,
        name: str = "operator",
        *,
        extra_args: Sequence[str] = (),
        kubeconfig: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> OperatorProcess:
        process = OperatorProcess(
            kubeconfig or self._kubeconfig, self._log_dir, name=name, extra_args=extra_args, env=env
        )
        self.started.append(process)
        return process.start()

    def close(self) -> None:
        running = [process for process in self.started if process.returncode is None]
        for process in running:
            process.terminate()  # all at once: they drain in parallel
        for process in running:
            with contextlib.suppress(TimeoutError):  # stop() has killed it then
                process.stop(timeout=10.0)


@pytest.fixture(scope="session")
def kubectl(control_plane: KubeCluster, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    return Kubectl(control_plane.kubeconfig, tmp_path_factory.mktemp("kubectl-cache"))


@pytest.fixture(scope="session")
def crds(kubectl: Kubectl) -> None:
    """`kubectl apply -f crds/`, then every CRD Established."""
    kubectl.ok("apply", "-f", str(CRDS))
    names = [f"crd/{crd['metadata']['name']}" for crd in crdgen.generate_crds()]
    # A CRD just created may have no conditions yet, which `kubectl wait` reports as an error rather than waiting.
    eventually(
        lambda: kubectl.run("wait", "--for=condition=Established", "--timeout=10s", *names).returncode == 0 or None,
        timeout=30,
        what="the CRDs Established",
    )


@pytest.fixture(scope="session")
def operator_identity(crds: None, control_plane: KubeCluster) -> Iterator[OperatorIdentity]:
    """The Helm chart installed in cluster mode; every operator under test runs as its ServiceAccount.

    So the end-to-end tests double as the proof that the chart's RBAC is enough: any call the chart does not grant
    fails a test (and none beyond them can succeed).
    """
    with install_chart(control_plane, release="e2e", namespace=CHART_NAMESPACE, values=CHART_VALUES) as chart:
        yield OperatorIdentity(
            kubeconfig=chart.service_account_kubeconfig(),
            lease_namespace=CHART_NAMESPACE,
            lease_name=LEASE_NAME,
        )


@pytest.fixture
def operators(operator_identity: OperatorIdentity, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operators]:
    """Operator processes of this test only (restarts, kill -9, several at once)."""
    started = Operators(operator_identity.kubeconfig, tmp_path_factory.mktemp("operator-logs"))
    try:
        yield started
    finally:
        started.close()


@pytest.fixture(scope="module")
def operator(
    operator_identity: OperatorIdentity, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """One operator for the module, watching the whole cluster as the chart's ServiceAccount."""
    with OperatorProcess(
        operator_identity.kubeconfig, tmp_path_factory.mktemp("shared-operator"), name="shared-operator"
    ) as process:
        yield process


@pytest.fixture
def operator_survives(operator: OperatorProcess) -> Iterator[None]:
    """Whatever a test throws at it, the module's operator keeps running and ready (use it with `usefixtures`)."""
    yield
    assert operator.returncode is None, f"the operator exited with {operator.returncode}"
    assert operator.ready(), "the operator is no longer ready"


def _operators_of(item: pytest.Item) -> list[OperatorProcess]:
    found: list[OperatorProcess] = []
    for value in getattr(item, "funcargs", {}).values():
        if isinstance(value, OperatorProcess):
            found.append(value)
        elif isinstance(value, Operators):
            found.extend(value.started)
    return found


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report: pytest.TestReport = yield
    if report.failed:
        for process in _operators_of(item):
            report.sections.append((f"{process.name} log (last 60 lines of {process.log_file})", process.log_tail(60)))
    return report
