"""The Helm chart against a test cluster: Helm itself (built by ``hack/build-helm.sh``), and installed releases.

``install_chart`` installs ``charts/stargraph`` into a cluster, never with ``--wait`` (the operator's Pods start only
where the values place them on the kubelet test node, see tests/support/release_pod.py; no other node takes them),
and hands back an ``InstalledChart`` whose ``service_account_kubeconfig()`` authenticates as the chart's own
ServiceAccount. Running ``stargraph operator`` locally with that kubeconfig runs it with exactly the permissions the
chart grants:

    @pytest.fixture(scope="session")
    def chart_identity(control_plane):
        with install_chart(control_plane, release="e2e", namespace="stargraph-e2e",
                           values={"watch": {"mode": "cluster"}}) as chart:
            yield chart.service_account_kubeconfig()

The ``helm`` fixture (import ``helm_fixture`` into a test module) is one ``Helm`` for the session's cluster.
Helm keeps its configuration, cache and repositories in a private directory per ``Helm`` object, so tests never
read or write the user's ``~/.config/helm``.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import pytest
import yaml
from kubernetes.client import CoreV1Api, V1Namespace, V1ObjectMeta
from kubernetes.client.exceptions import ApiException

from tests.support.controlplane import KubeCluster

__all__ = [
    "CHART_DIR",
    "NO_ADMISSION_WEBHOOK",
    "Helm",
    "HelmError",
    "InstalledChart",
    "helm_binary",
    "helm_fixture",
    "install_chart",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "charts" / "stargraph"
BUILD_SCRIPT = REPO_ROOT / "hack" / "build-helm.sh"

NO_ADMISSION_WEBHOOK: dict[str, Any] = {"admissionWebhook": {"enabled": False}}
"""Values for a release whose triggers are written while no Pod serves its webhook: no Service address routes on the
test machine (no kube-proxy), so the chart's webhook configuration would make every trigger write wait out its
timeout before being admitted. tests/e2e/test_admission.py registers webhooks that reach the operator on loopback."""


class HelmError(RuntimeError):
    """A helm command failed; the message holds the command and its stderr."""

    def __init__(self, args: Sequence[str], result: subprocess.CompletedProcess[str]) -> None:
        super().__init__(f"helm {' '.join(args)} exited {result.returncode}:\n{result.stderr.strip()}")
        self.stderr = result.stderr
        self.stdout = result.stdout


@functools.cache
def helm_binary() -> Path:
    """The pinned helm binary: built on first use (minutes, cold), found at once afterwards."""
    out = subprocess.run([str(BUILD_SCRIPT)], check=True, stdout=subprocess.PIPE, text=True).stdout
    return Path(out.strip().splitlines()[-1])


class Helm:
    """``helm`` against one cluster's admin kubeconfig, with a private Helm home."""

    def __init__(self, kubeconfig: Path, *, binary: Path | None = None) -> None:
        self.kubeconfig = kubeconfig
        self.binary = binary or helm_binary()
        self._home = Path(tempfile.mkdtemp(prefix="stargraph-helm-"))
        self._env = {
            **os.environ,
            "HELM_CONFIG_HOME": str(self._home / "config"),
            "HELM_CACHE_HOME": str(self._home / "cache"),
            "HELM_DATA_HOME": str(self._home / "data"),
            "KUBECONFIG": str(kubeconfig),
        }

    def run(self, *args: str, check: bool = True, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.binary), *args], env=self._env, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise HelmError(args, result)
        return result

    def values_file(self, values: Mapping[str, Any]) -> Path:
        """``values`` written to a file for ``-f`` (``--set`` cannot express lists of objects or nulls)."""
        path = Path(tempfile.mkstemp(prefix="values-", suffix=".yaml", dir=self._home)[1])
        path.write_text(yaml.safe_dump(dict(values)))
        return path

    def template(self, release: str, *, namespace: str, values: Mapping[str, Any] | None = None) -> str:
        """The rendered manifests, as `helm install` would send them (CRDs included)."""
        values_file = self.values_file(values or {})
        args = ["template", release, str(CHART_DIR), "--namespace", namespace, "--include-crds", "-f", str(values_file)]
        return self.run(*args).stdout

    def lint(self, values: Mapping[str, Any] | None = None) -> subprocess.CompletedProcess[str]:
        """`helm lint --strict`; not raising: the caller checks the outcome (a bad value must fail)."""
        return self.run("lint", "--strict", str(CHART_DIR), "-f", str(self.values_file(values or {})), check=False)

    def close(self) -> None:
        shutil.rmtree(self._home, ignore_errors=True)


@pytest.fixture(name="helm", scope="session")
def helm_fixture(control_plane: KubeCluster) -> Iterator[Helm]:
    """Helm for the session's cluster; builds the pinned binary on first use. Import it into a test module to use."""
    helm = Helm(control_plane.kubeconfig)
    try:
        yield helm
    finally:
        helm.close()


class InstalledChart:
    """A release of the chart in a cluster. ``uninstall()`` (or leaving the ``with`` block) removes it."""

    def __init__(
        self, cluster: KubeCluster, helm: Helm, *, release: str, namespace: str, owns_namespace: bool, own_helm: bool
    ) -> None:
        self.cluster = cluster
        self.helm = helm
        self.release = release
        self.namespace = namespace
        self._owns_namespace = owns_namespace
        self._own_helm = own_helm
        self._uninstalled = False

    def manifests(self) -> list[dict[str, Any]]:
        """The objects of the release's current revision (CRDs are not part of a release)."""
        text = self.helm.run("get", "manifest", self.release, "--namespace", self.namespace).stdout
        return [doc for doc in yaml.safe_load_all(text) if doc]

    @property
    def service_account_name(self) -> str:
        accounts = [doc for doc in self.manifests() if doc["kind"] == "ServiceAccount"]
        if len(accounts) != 1:
            raise RuntimeError(f"release {self.release} has {len(accounts)} ServiceAccounts; expected one")
        name: str = accounts[0]["metadata"]["name"]
        return name

    def service_account_kubeconfig(self, *, path: Path | None = None, expiration_seconds: int = 3600) -> Path:
        """A kubeconfig with a TokenRequest token for the chart's ServiceAccount: the operator's in-cluster identity."""
        return self.cluster.service_account_kubeconfig(
            namespace=self.namespace, name=self.service_account_name, path=path, expiration_seconds=expiration_seconds
        )

    def service_account_token(self, *, expiration_seconds: int = 3600) -> str:
        """A TokenRequest token for the chart's ServiceAccount, as the kubelet mounts into the operator's Pod."""
        return self.cluster.service_account_token(
            namespace=self.namespace, name=self.service_account_name, expiration_seconds=expiration_seconds
        )

    def upgrade(self, values: Mapping[str, Any]) -> str:
        """`helm upgrade` to ``values`` (replacing, not merging with, the previous ones); returns Helm's output."""
        values_file = self.helm.values_file(values)
        args = ["upgrade", self.release, str(CHART_DIR), "--namespace", self.namespace, "-f", str(values_file)]
        return self.helm.run(*args).stdout

    def uninstall(self) -> None:
        """`helm uninstall`, then delete the namespace if ``install_chart`` created it. Idempotent."""
        if self._uninstalled:
            return
        self._uninstalled = True
        try:
            self.helm.run("uninstall", self.release, "--namespace", self.namespace)
            if self._owns_namespace:
                with self.cluster.api_client() as api:
                    CoreV1Api(api).delete_namespace(self.namespace, propagation_policy="Background")
        finally:
            if self._own_helm:
                self.helm.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.uninstall()


def install_chart(
    cluster: KubeCluster,
    *,
    release: str,
    namespace: str,
    values: Mapping[str, Any] | None = None,
    helm: Helm | None = None,
    namespace_labels: Mapping[str, str] | None = None,
) -> InstalledChart:
    """`helm install` the chart as ``release`` into ``namespace`` (created, and deleted on uninstall, if missing).

    A namespace created here carries ``namespace_labels`` (e.g. the Pod Security level its Pods need). Namespaces
    named in ``values["watch"]["namespaces"]`` must exist already, as they must for a user.
    """
    own_helm = helm is None
    helm = helm or Helm(cluster.kubeconfig)
    owns_namespace = False
    try:
        with cluster.api_client() as api:
            try:
                metadata = V1ObjectMeta(name=namespace, labels=dict(namespace_labels or {}))
                CoreV1Api(api).create_namespace(V1Namespace(metadata=metadata))
                owns_namespace = True
            except ApiException as e:
                if e.status != 409:
                    raise
        # Never --wait: unless the values place them on the tainted kubelet test node, no node runs the Pods, and the
        # Deployment never becomes available.
        values_file = helm.values_file(values or {})
        helm.run("install", release, str(CHART_DIR), "--namespace", namespace, "-f", str(values_file))
    except BaseException:
        if owns_namespace:
            with cluster.api_client() as api:
                CoreV1Api(api).delete_namespace(namespace, propagation_policy="Background")
        if own_helm:
            helm.close()
        raise
    return InstalledChart(
        cluster, helm, release=release, namespace=namespace, owns_namespace=owns_namespace, own_helm=own_helm
    )
