"""A chart release's operator Pod on the kubelet test node, followed through the apiserver.

``ReleasePod(chart, node).wait_ready(timeout=...)`` waits until the release's Deployment has one Pod, on ``node``,
Ready by the kubelet's own probes, and keeps it (``pod``, ``url``, ``ready_seconds``). ``scale_to_zero()`` is what
a scale-down or a rollout does to it: the Deployment goes to 0 replicas, the ReplicaSet controller deletes the Pod
with its grace period, the kubelet sends SIGTERM; the Pod is watched until the kubelet reports its container
terminated, and that report (``Termination``) is the outcome: a container's end can only be read from the Pod's
status here, as the apiserver cannot reach the kubelet for ``kubectl logs``. ``logs()`` reads the kubelet's log
files instead, for a failing test's report.

    with install_chart(cluster, release="r", namespace="ns", values={**KUBELET_PLACEMENT, ...}) as chart:
        pod = ReleasePod(chart, kubelet_node).wait_ready(timeout=90)
        httpx.get(pod.url + "/readyz")
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Self

from kubernetes import watch
from kubernetes.client import AppsV1Api, CoreV1Api, V1Pod

from tests.support.chart import InstalledChart
from tests.support.controlplane import poll_until
from tests.support.node import KubeletNode

__all__ = ["ReleasePod", "Termination"]

_INSTANCE = "app.kubernetes.io/instance"


@dataclass(frozen=True, kw_only=True)
class Termination:
    """How the Pod's container ended, as the kubelet reported it in the Pod's status."""

    exit_code: int
    reason: str
    finished_at: datetime
    deadline: datetime
    """The Pod's deletionTimestamp: the end of the grace period, when the kubelet would send SIGKILL."""
    grace_seconds: int
    restart_count: int

    @property
    def seconds(self) -> float:
        """From the deletion (SIGTERM) to the exit, in the whole seconds the apiserver keeps of both."""
        return (self.finished_at - (self.deadline - timedelta(seconds=self.grace_seconds))).total_seconds()


def _is_ready(pod: V1Pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))


class ReleasePod:
    """The one Pod of ``chart``'s Deployment, which its values place on the kubelet test ``node``."""

    def __init__(self, chart: InstalledChart, node: KubeletNode) -> None:
        self.chart = chart
        self.node = node
        self._pod: V1Pod | None = None
        self.ready_seconds = 0.0
        """How long wait_ready() waited for the Pod to be Ready."""

    @property
    def pod(self) -> V1Pod:
        """The Pod as it was when it became Ready."""
        if self._pod is None:
            raise RuntimeError("no Pod yet: call wait_ready()")
        return self._pod

    @property
    def name(self) -> str:
        name: str = self.pod.metadata.name
        return name

    @property
    def url(self) -> str:
        """Where the container's port named ``http`` answers: loopback, as the Pod is in this machine's network."""
        (container,) = self.pod.spec.containers
        (port,) = [port.container_port for port in container.ports if port.name == "http"]
        return f"http://127.0.0.1:{port}"

    def _pods(self) -> list[V1Pod]:
        with self.chart.cluster.api_client() as api:
            selector = f"{_INSTANCE}={self.chart.release}"
            pods: list[V1Pod] = CoreV1Api(api).list_namespaced_pod(self.chart.namespace, label_selector=selector).items
        return pods

    def wait_ready(self, *, timeout: float) -> Self:
        """Wait until the Deployment has exactly one Pod and it is Ready; fail with its status and Events if not."""
        started = time.monotonic()

        def ready() -> V1Pod | None:
            pods = self._pods()
            return pods[0] if len(pods) == 1 and _is_ready(pods[0]) else None

        try:
            self._pod = poll_until(ready, timeout=timeout, interval=0.2, what=f"the Pod of {self.chart.release}")
        except TimeoutError as e:
            raise TimeoutError(f"{e}\n{self.describe()}") from None
        self.ready_seconds = time.monotonic() - started
        return self

    def describe(self) -> str:
        """The release's Pods (phase, conditions, container states, log tails) and its namespace's Events."""
        lines = []
        for pod in self._pods():
            conditions = [f"{c.type}={c.status}" for c in pod.status.conditions or []]
            lines.append(f"Pod {pod.metadata.name} on {pod.spec.node_name}: {pod.status.phase} {conditions}")
            for status in pod.status.container_statuses or []:
                lines.append(f"  {status.name}: {status.state} restarts={status.restart_count}")
                lines.append(self.node.container_log(pod, status.name, tail=20))
        with self.chart.cluster.api_client() as api:
            events = CoreV1Api(api).list_namespaced_event(self.chart.namespace).items
        lines += [f"Event {e.involved_object.kind}/{e.involved_object.name}: {e.reason} {e.message}" for e in events]
        return "\n".join(lines)

    def logs(self, tail: int = 60) -> str:
        """The operator container's last ``tail`` lines, from the kubelet's log files."""
        (container,) = self.pod.spec.containers
        return self.node.container_log(self.pod, container.name, tail=tail)

    def scale_to_zero(self, *, timeout: float) -> Termination:
        """Scale the Deployment to 0 and watch the Pod until the kubelet reports its container terminated."""
        namespace = self.chart.namespace
        (deployment,) = [doc["metadata"]["name"] for doc in self.chart.manifests() if doc["kind"] == "Deployment"]
        field_selector = f"metadata.name={self.name}"
        with self.chart.cluster.api_client() as api:
            core = CoreV1Api(api)
            # Watched from before the scale-down, so no change of the Pod is missed: the kubelet deletes it for good
            # right after reporting its container terminated.
            since = core.list_namespaced_pod(namespace, field_selector=field_selector).metadata.resource_version
            AppsV1Api(api).patch_namespaced_deployment_scale(deployment, namespace, {"spec": {"replicas": 0}})
            changes = watch.Watch().stream(  # type: ignore[no-untyped-call]
                core.list_namespaced_pod,
                namespace,
                field_selector=field_selector,
                resource_version=since,
                timeout_seconds=int(timeout),
            )
            deletion: tuple[datetime, int] | None = None
            for change in changes:
                pod: V1Pod = change["object"]
                # The first deletion carries the grace period; the kubelet's final one (grace 0) resets both.
                if deletion is None and pod.metadata.deletion_timestamp is not None:
                    deletion = (pod.metadata.deletion_timestamp, pod.metadata.deletion_grace_period_seconds)
                ended = [s for s in pod.status.container_statuses or [] if s.state.terminated is not None]
                if deletion is not None and ended:
                    (status,) = ended
                    return Termination(
                        exit_code=status.state.terminated.exit_code,
                        reason=status.state.terminated.reason,
                        finished_at=status.state.terminated.finished_at,
                        deadline=deletion[0],
                        grace_seconds=deletion[1],
                        restart_count=status.restart_count,
                    )
        raise TimeoutError(f"Pod {namespace}/{self.name}: no terminated container reported within {timeout:g}s")
