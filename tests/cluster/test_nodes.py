"""Pods run: Jobs on the real kubelet node and on the KWOK fake node end as their containers do.

The kubelet node runs the test image for real (``exit 0``, ``exit 3``); the fake node plays the same outcomes from
annotations (tests/support/kwok/stages.yaml). The last test stops a second kubelet node with a Pod running and
finds nothing of it left on the machine: no process, mount, cgroup or file.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client import ApiClient, BatchV1Api, CoreV1Api, V1Pod

from tests.support.controlplane import ControlPlane, KubeCluster, poll_until
from tests.support.images import TESTJOB_IMAGE
from tests.support.node import (
    KUBELET_PLACEMENT,
    KWOK_PLACEMENT,
    KubeletNode,
    KwokNode,
    job_manifest,
    task_cgroups,
    wait_for_job,
)

pytestmark = pytest.mark.cluster

EXIT_CODE = 3


def run_job(api: ApiClient, namespace: str, manifest: dict[str, Any], *, timeout: float = 60) -> tuple[str, V1Pod]:
    """Create the Job, wait until it finishes; return its final condition and its (only) Pod."""
    name = manifest["metadata"]["name"]
    BatchV1Api(api).create_namespaced_job(namespace, manifest)
    condition = wait_for_job(api, namespace=namespace, name=name, timeout=timeout)
    pods = CoreV1Api(api).list_namespaced_pod(namespace, label_selector=f"job-name={name}").items
    assert len(pods) == 1, [p.metadata.name for p in pods]
    return condition, pods[0]


def exit_code(pod: V1Pod) -> int:
    (status,) = pod.status.container_statuses
    return int(status.state.terminated.exit_code)


def test_job_completes_on_the_kubelet_node(kubelet_node: KubeletNode, kube_api: ApiClient, namespace: str) -> None:
    condition, pod = run_job(kube_api, namespace, job_manifest("succeeds", args=["exit", "0"]))
    assert (condition, pod.status.phase, exit_code(pod)) == ("Complete", "Succeeded", 0)
    assert pod.spec.node_name == kubelet_node.name


def test_job_fails_with_its_exit_code_on_the_kubelet_node(
    kubelet_node: KubeletNode, kube_api: ApiClient, namespace: str
) -> None:
    condition, pod = run_job(kube_api, namespace, job_manifest("fails", args=["exit", str(EXIT_CODE)]))
    assert (condition, pod.status.phase, exit_code(pod)) == ("Failed", "Failed", EXIT_CODE)
    assert pod.spec.node_name == kubelet_node.name


def test_job_completes_on_the_kwok_node(kwok_node: KwokNode, kube_api: ApiClient, namespace: str) -> None:
    manifest = job_manifest("succeeds", args=["exit", "0"], placement=KWOK_PLACEMENT)
    condition, pod = run_job(kube_api, namespace, manifest)
    assert (condition, pod.status.phase, exit_code(pod)) == ("Complete", "Succeeded", 0)
    assert pod.spec.node_name == kwok_node.name


def test_job_annotated_to_fail_fails_on_the_kwok_node_after_its_run_time(
    kwok_node: KwokNode, kube_api: ApiClient, namespace: str
) -> None:
    annotations = {"kwok.stargraph.io/exit-code": str(EXIT_CODE), "kwok.stargraph.io/run-for": "2s"}
    manifest = job_manifest("fails", args=["exit", "0"], placement=KWOK_PLACEMENT, annotations=annotations)
    started = time.monotonic()
    condition, pod = run_job(kube_api, namespace, manifest)
    assert (condition, pod.status.phase, exit_code(pod)) == ("Failed", "Failed", EXIT_CODE)
    assert time.monotonic() - started >= 2
    assert pod.spec.node_name == kwok_node.name


def test_an_image_pull_fails_on_loopback(kubelet_node: KubeletNode, kube_api: ApiClient, namespace: str) -> None:
    # The test images are imported; any other image would be pulled, and the pull must never leave the machine.
    core = CoreV1Api(kube_api)
    container = {"name": "c", "image": "stargraph.invalid/absent:1", "imagePullPolicy": "Always"}
    pod = {"metadata": {"name": "pull"}, "spec": {"hostNetwork": True, "containers": [container], **KUBELET_PLACEMENT}}
    core.create_namespaced_pod(namespace, pod)

    def pull_error() -> str | None:
        statuses = core.read_namespaced_pod("pull", namespace).status.container_statuses or []
        waiting = [s.state.waiting for s in statuses if s.state.waiting and s.state.waiting.message]
        return waiting[0].message if waiting else None

    message = poll_until(pull_error, timeout=30, interval=0.2, what="the pull to fail")
    assert "127.0.0.1:9" in message, message


def _process(pid: int) -> str:
    with contextlib.suppress(OSError):
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        return f"{pid} {state} {command}"
    return f"{pid} gone"


def _mounts_under(directory: Path) -> list[str]:
    return [line for line in Path("/proc/self/mounts").read_text().splitlines() if str(directory) in line]


def test_a_stopped_kubelet_node_leaves_nothing_behind(
    control_plane: KubeCluster, kubelet_node: KubeletNode, kube_api: ApiClient, namespace: str
) -> None:
    # kubelet_node: the images are built and this node's start is the warm one of the session.
    assert isinstance(control_plane, ControlPlane)
    core = CoreV1Api(kube_api)
    with KubeletNode(control_plane, name="stargraph-node-teardown") as node:
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "sleeper"},
            "spec": {
                "nodeName": node.name,
                "hostNetwork": True,
                "containers": [
                    {"name": "sleep", "image": TESTJOB_IMAGE, "imagePullPolicy": "Never", "args": ["sleep", "600"]}
                ],
            },
        }
        core.create_namespaced_pod(namespace, pod)
        poll_until(
            lambda: core.read_namespaced_pod("sleeper", namespace).status.phase == "Running",
            timeout=30,
            what="the sleeper Pod to run",
        )
        directory, pids, containers = node.directory, node.pids(), node.running_containers()
        # unshare, node_init, 2 x nsenter, containerd, kubelet, then per Pod a shim, pause and the sleeper.
        assert len(pids) >= 9, pids
        assert len(containers) == 2, containers  # the sandbox and the sleeper
        assert [cgroup for c in containers for cgroup in task_cgroups(c) if cgroup.exists()]
    assert [_process(pid) for pid in pids if Path(f"/proc/{pid}").exists()] == []
    assert _mounts_under(directory) == []
    assert not directory.exists()
    assert [cgroup for c in containers for cgroup in task_cgroups(c) if cgroup.exists()] == []
