"""Nodes for the local control plane, so that Pods run: a real kubelet on this machine, and KWOK fake nodes.

``KubeletNode`` runs containerd and a kubelet (built by ``hack/build-node.sh``) against a ``ControlPlane``; its
Pods are real processes. It needs root. There is no Pod network: every Pod must set ``hostNetwork: true`` (the
CNI configuration holds only the ``loopback`` plugin, which is enough for the node to report Ready), images come
from ``import_image`` (``imagePullPolicy: Never``; a pull goes to a closed port on loopback and fails), and a Pod's
outcome is read from its status: the apiserver cannot reach the kubelet (``kubectl logs`` fails), which listens on
127.0.0.1 only, while the Node reports this machine's non-loopback address (the kubelet refuses a loopback one).

``KwokNode`` is a fake Node whose Pods only change status, driven by kwok and the project's stages
(``tests/support/kwok/stages.yaml``): for benchmarks with thousands of Jobs, where no process should start.

Both start kube-scheduler on the control plane: Jobs create Pods without ``nodeName``. Both are tainted, so only
Pods with ``KUBELET_PLACEMENT`` or ``KWOK_PLACEMENT`` (``job_manifest`` adds one) are scheduled there. Their
processes are components of the control plane (``ControlPlane.spawn``), so a failing test shows their logs too.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Self

import yaml
from kubernetes.client import ApiClient, BatchV1Api, CoreV1Api, V1Pod
from kubernetes.client.exceptions import ApiException

from tests.support.controlplane import (
    REPO_ROOT,
    ControlPlane,
    ControlPlaneError,
    _free_port,
    _signal_group,
    poll_until,
    run_build_script,
)
from tests.support.images import PAUSE_IMAGE, TESTJOB_IMAGE, build_images
from tests.support.node_init import READY_FILE

__all__ = [
    "KUBELET_PLACEMENT",
    "KWOK_PLACEMENT",
    "KubeletNode",
    "KwokNode",
    "NodeError",
    "job_manifest",
    "wait_for_job",
]

log = logging.getLogger(__name__)

BUILD_SCRIPT = REPO_ROOT / "hack" / "build-node.sh"
NODE_INIT = Path(__file__).resolve().parent / "node_init.py"
KWOK_STAGES = Path(__file__).resolve().parent / "kwok" / "stages.yaml"
CNI_BIN_DIR = Path("/usr/lib/cni")  # Debian's containernetworking-plugins
_CGROUP_ROOT = Path("/sys/fs/cgroup")


def _placement(key: str, value: str) -> dict[str, Any]:
    """Pod spec fields that select the Nodes labelled and tainted ``key=value``, and tolerate the taint."""
    return {
        "nodeSelector": {key: value},
        "tolerations": [{"key": key, "operator": "Equal", "value": value, "effect": "NoSchedule"}],
    }


# Each node is tainted so that only Pods meant for it land there: the chart's or the operator's Pods, scheduled
# once a node exists, would otherwise start (or, with images we never import, fail) on the kubelet node.
_KUBELET_MARK = ("stargraph.io/node", "kubelet")
KUBELET_PLACEMENT = _placement(*_KUBELET_MARK)
# KWOK's conventions: kwok manages the Nodes with this annotation, and tests select them by label and taint.
_KWOK_MARK = ("kwok.x-k8s.io/node", "fake")
KWOK_PLACEMENT = _placement(*_KWOK_MARK)
# Where containerd would send a registry request: the discard port on loopback, closed, so a pull fails at once
# instead of leaving the machine.
_NO_REGISTRY = "http://127.0.0.1:9"


class NodeError(ControlPlaneError):
    """A test node could not be built, started or made Ready."""


def _wait_ready(cp: ControlPlane, name: str, *, timeout: float) -> float:
    """Wait until Node ``name`` is Ready; return the seconds it took."""
    started = time.monotonic()

    def ready() -> bool:
        with cp.api_client() as api:
            try:
                node = CoreV1Api(api).read_node(name)
            except ApiException as e:
                if e.status == 404:
                    return False
                raise
        conditions = (node.status and node.status.conditions) or []
        return any(c.type == "Ready" and c.status == "True" for c in conditions)

    try:
        poll_until(ready, timeout=timeout, interval=0.2, what=f"Node {name} to be Ready")
    except TimeoutError as e:
        raise NodeError(f"{e}\n{cp.diagnostics()}") from None
    return time.monotonic() - started


def _delete_node(cp: ControlPlane, name: str) -> None:
    # Best effort: at the end of a session the apiserver may be gone already.
    with contextlib.suppress(ApiException, OSError), cp.api_client() as api:
        CoreV1Api(api).delete_node(name)


def task_cgroups(container_id: str) -> list[Path]:
    """Where a container's cgroups are: containerd 1.6 puts them at /k8s.io/<id> (its CRI namespace) in every
    hierarchy, whatever the kubelet's cgroupRoot."""
    return [hierarchy / "k8s.io" / container_id for hierarchy in _CGROUP_ROOT.iterdir()]


def _remove_task_cgroups(container_ids: list[str]) -> None:
    """Remove the cgroups of the containers that still ran when their node was killed (runc removes the others)."""
    cgroups = [cgroup for container_id in container_ids for cgroup in task_cgroups(container_id)]
    # The k8s.io parents last, and only once empty: another containerd on the machine may be using them.
    for cgroup in [*cgroups, *(hierarchy / "k8s.io" for hierarchy in _CGROUP_ROOT.iterdir())]:
        with contextlib.suppress(OSError):
            cgroup.rmdir()


class KubeletNode:
    """containerd + kubelet on this machine, registered as Node ``name`` with ``cp``; needs root.

    Both run in PID and mount namespaces of their own (``node_init.py``): stopping the node kills everything it
    started, containers included, and its mounts vanish with the namespace, even if the test session dies.
    """

    def __init__(self, cp: ControlPlane, *, name: str = "stargraph-node", ready_timeout: float = 60.0) -> None:
        self.cp = cp
        self.name = name
        self._ready_timeout = ready_timeout
        self._dir = Path(tempfile.mkdtemp(prefix="node-", dir=cp.tmpdir))
        self._unshare: subprocess.Popen[bytes] | None = None
        self._init_pid: int | None = None
        """PID 1 of the node's namespaces, node_init.py, as seen from here."""
        self._inside: list[subprocess.Popen[bytes]] = []
        """The nsenter processes whose children (containerd, kubelet) run in the namespaces."""
        self.ready_seconds = 0.0
        """How long start() waited, from launching containerd to the Node being Ready."""

    @property
    def directory(self) -> Path:
        """The node's files: configuration, containerd's root and state, the kubelet's root directory."""
        return self._dir

    def running_containers(self) -> list[str]:
        """Ids of the containers (Pod sandboxes included) that containerd runs: it keeps a task directory each."""
        tasks = self._dir / "containerd" / "state" / "io.containerd.runtime.v2.task" / "k8s.io"
        return sorted(task.name for task in tasks.iterdir()) if tasks.is_dir() else []

    def pids(self) -> list[int]:
        """Every process of the node: containerd, the kubelet, the shims and the containers, and their parents here."""
        found: list[int] = []
        pending = [p.pid for p in (self._unshare, *self._inside) if p is not None]
        while pending:
            pid = pending.pop()
            found.append(pid)
            with contextlib.suppress(OSError):
                pending += [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        return found

    @property
    def socket(self) -> Path:
        """containerd's socket (``ctr --address``, ``crictl --runtime-endpoint``)."""
        return self._dir / "containerd.sock"

    def start(self) -> Self:
        """Build what is missing, start containerd and the kubelet, import the test images, wait for Ready."""
        if os.geteuid() != 0:
            raise NodeError("a kubelet node needs root (containerd, mounts, cgroups)")
        try:
            bin_dir = run_build_script(BUILD_SCRIPT)
            images = build_images(self._dir)
            started = time.monotonic()
            init_pid = self._init_pid = self._start_namespaces()
            self._start_containerd(init_pid)
            self.import_image(images)
            self._start_kubelet(init_pid, bin_dir / "kubelet")
            self.cp.start_scheduler()
            _wait_ready(self.cp, self.name, timeout=self._ready_timeout)
            self.ready_seconds = time.monotonic() - started
            log.info("kubelet node %s Ready in %.2fs", self.name, self.ready_seconds)
        except BaseException:
            self.stop()
            raise
        return self

    def _in_namespaces(self, init_pid: int, name: str, command: list[str]) -> subprocess.Popen[bytes]:
        process = self.cp.spawn(name, ["nsenter", f"--target={init_pid}", "--mount", "--pid", "--", *command])
        self._inside.append(process)
        return process

    def _start_namespaces(self) -> int:
        """Start node_init.py as PID 1 of new namespaces; return its pid as seen from here."""
        # --kill-child: the namespace (and all in it) dies with unshare, which dies with this process.
        self._unshare = self.cp.spawn(
            "node-init",
            [
                "unshare",
                "--pid",
                "--fork",
                "--mount-proc",
                "--propagation",
                "private",
                "--kill-child",
                sys.executable,
                # Isolated: the script's own directory on sys.path would shadow the standard library (operator.py).
                "-I",
                str(NODE_INIT),
                str(self._dir),
            ],
        )
        unshare = self._unshare.pid
        children = Path(f"/proc/{unshare}/task/{unshare}/children")

        def ready() -> int | None:
            if self._unshare is not None and self._unshare.poll() is not None:
                raise NodeError(f"node namespaces failed:\n{self.cp.log_tail('node-init')}")
            pids = children.read_text().split() if (self._dir / READY_FILE).exists() else []
            return int(pids[0]) if pids else None

        return poll_until(ready, timeout=10, what="the node's namespaces")

    def _start_containerd(self, init_pid: int) -> None:
        state = self._dir / "containerd"
        cni = self._dir / "cni"
        cni.mkdir()
        (cni / "99-loopback.conf").write_text(json.dumps({"cniVersion": "0.3.1", "name": "lo", "type": "loopback"}))
        cri = {
            "sandbox_image": PAUSE_IMAGE,
            # Containers get the oom_score_adj the kubelet asks for only when it is not below containerd's own;
            # where a negative one is refused (as in some sandboxes), every Pod sandbox would fail to start.
            "restrict_oom_score_adj": True,
            "stream_server_address": "127.0.0.1",
            "containerd": {
                "default_runtime_name": "runc",
                "runtimes": {
                    "runc": {"runtime_type": "io.containerd.runc.v2", "options": {"SystemdCgroup": False}},
                },
            },
            "cni": {"bin_dir": str(CNI_BIN_DIR), "conf_dir": str(cni)},
        }
        config = {
            "version": 2,
            "root": str(state / "root"),
            "state": str(state / "state"),
            "grpc": {"address": str(self.socket)},
            "metrics": {"address": ""},
            # Snapshotters this machine cannot use; disabled so that the log shows only what matters.
            "disabled_plugins": [
                f"io.containerd.snapshotter.v1.{name}" for name in ("aufs", "btrfs", "devmapper", "zfs")
            ],
            "plugins": {
                "io.containerd.grpc.v1.cri": cri,
                # Its default is /opt/containerd, outside the node's directory.
                "io.containerd.internal.v1.opt": {"path": str(state / "opt")},
            },
        }
        path = self._dir / "containerd.toml"
        path.write_text(_toml(config))
        proxy = [f"{name}={_NO_REGISTRY}" for name in ("HTTP_PROXY", "HTTPS_PROXY")]
        command = ["env", *proxy, "NO_PROXY=", "containerd", "--config", str(path)]
        containerd = self._in_namespaces(init_pid, "containerd", command)

        def answers() -> bool:
            if containerd.poll() is not None:
                raise NodeError(f"containerd exited:\n{self.cp.log_tail('containerd')}")
            return self._ctr("version", check=False).returncode == 0

        poll_until(answers, timeout=20, interval=0.1, what="containerd")

    @property
    def _kubelet_dir(self) -> Path:
        return self._dir / "kubelet"

    def _start_kubelet(self, init_pid: int, binary: Path) -> None:
        root = self._kubelet_dir
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            # Loopback only, so anonymous access with AlwaysAllow reaches nobody but this machine.
            "address": "127.0.0.1",
            "port": _free_port(),
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": _free_port(),
            "authentication": {"anonymous": {"enabled": True}, "webhook": {"enabled": False}},
            "authorization": {"mode": "AlwaysAllow"},
            "containerRuntimeEndpoint": f"unix://{self.socket}",
            # No systemd here, and cgroup v1: plain cgroupfs, no QoS or allocatable hierarchy to manage.
            "cgroupDriver": "cgroupfs",
            "failCgroupV1": False,
            "cgroupsPerQOS": False,
            "enforceNodeAllocatable": [],
            "failSwapOn": False,
            # Pods get no nameserver: a Pod here has no business resolving names.
            "resolvConf": "",
            "podLogsDir": str(root / "pod-logs"),
            "volumePluginDir": str(root / "volume-plugins"),
            # Imported images cannot be pulled again: never collect them, whatever the disk holds.
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
        }
        path = self._dir / "kubelet.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        # The admin kubeconfig: the apiserver authorises with RBAC only, which grants the system:nodes group nothing.
        args = ["--config", str(path), "--kubeconfig", str(self.cp.kubeconfig), "--hostname-override", self.name]
        args += ["--root-dir", str(root / "root"), "--cert-dir", str(root / "pki")]
        mark = "=".join(_KUBELET_MARK)
        args += [f"--node-labels={mark}", f"--register-with-taints={mark}:NoSchedule"]
        self._in_namespaces(init_pid, "kubelet", [str(binary), *args])

    def _ctr(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ctr", "--address", str(self.socket), "--namespace", "k8s.io", *args],
            check=check,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def import_image(self, tarball: Path) -> None:
        """Import a docker-archive or OCI tarball into the node's containerd, for ``imagePullPolicy: Never``."""
        try:
            self._ctr("images", "import", str(tarball))
        except subprocess.CalledProcessError as e:
            raise NodeError(f"ctr images import {tarball} failed: {e.stderr}") from e

    def pod_volume(self, pod: V1Pod, *, plugin: str, name: str) -> Path:
        """Where the kubelet mounted volume ``name`` of ``pod`` (``plugin``: ``kubernetes.io~projected``...), as seen
        from this process: through the node's mount namespace, since secret and projected volumes are tmpfs mounts
        made there."""
        if self._init_pid is None:
            raise NodeError(f"node {self.name} is not running")
        mounted = self._kubelet_dir / "root" / "pods" / pod.metadata.uid / "volumes" / plugin / name
        return Path(f"/proc/{self._init_pid}/root") / mounted.relative_to("/")

    def container_log(self, pod: V1Pod, container: str, *, tail: int = 60) -> str:
        """The last ``tail`` lines container ``container`` of ``pod`` wrote, as containerd keeps them (time, stream,
        text), read from the kubelet's log directory: the apiserver cannot reach the kubelet for ``kubectl logs``."""
        meta = pod.metadata
        directory = self._kubelet_dir / "pod-logs" / f"{meta.namespace}_{meta.name}_{meta.uid}" / container
        # One file per start of the container (0.log, 1.log...), in the order of the restarts.
        logs = sorted(directory.glob("*.log"), key=lambda path: int(path.stem) if path.stem.isdigit() else -1)
        lines = [line for log in logs for line in log.read_text(errors="replace").splitlines()]
        return "\n".join(lines[-tail:])

    def stop(self) -> None:
        """Kill everything the node runs, remove its cgroups, files and Node object. Idempotent."""
        running = self.running_containers()
        if self._unshare is not None:
            if self._init_pid is not None and self._unshare.poll() is None:
                # The kernel kills the rest of the namespace with its PID 1, and unshare, its parent, reaps it.
                os.kill(self._init_pid, signal.SIGKILL)
            else:
                _signal_group(self._unshare, signal.SIGKILL)
            self._unshare.wait()
            self._unshare = self._init_pid = None
        # Each nsenter returns as soon as its child, killed with the namespace, is gone.
        for process in self._inside:
            process.wait(timeout=10)
        self._inside.clear()
        _remove_task_cgroups(running)
        _delete_node(self.cp, self.name)
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class KwokNode:
    """A fake Node ``name`` (label and taint ``kwok.x-k8s.io/node=fake``) and kwok playing its Pods' lifecycle."""

    def __init__(self, cp: ControlPlane, *, name: str = "kwok-node", ready_timeout: float = 30.0) -> None:
        self.cp = cp
        self.name = name
        self._ready_timeout = ready_timeout
        self._kwok: subprocess.Popen[bytes] | None = None
        self.ready_seconds = 0.0

    def start(self) -> Self:
        try:
            kwok = run_build_script(BUILD_SCRIPT) / "kwok"
            started = time.monotonic()
            # Before any Pod is bound to it: the Pod GC deletes Pods whose Node does not exist.
            with self.cp.api_client() as api:
                CoreV1Api(api).create_node(self._manifest())
            self._kwok = self.cp.spawn(
                "kwok",
                [
                    str(kwok),
                    "--kubeconfig",
                    str(self.cp.kubeconfig),
                    "--config",
                    str(KWOK_STAGES),
                    f"--manage-nodes-with-annotation-selector={'='.join(_KWOK_MARK)}",
                    # Only written into the Node's status, but any client that tried it would stay on this machine.
                    "--node-ip=127.0.0.1",
                    "--node-lease-duration-seconds=40",
                ],
            )
            self.cp.start_scheduler()
            _wait_ready(self.cp, self.name, timeout=self._ready_timeout)
            self.ready_seconds = time.monotonic() - started
        except BaseException:
            self.stop()
            raise
        return self

    def _manifest(self) -> dict[str, Any]:
        key, value = _KWOK_MARK
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.name,
                "annotations": {key: value},
                "labels": {key: value, "kubernetes.io/hostname": self.name, "kubernetes.io/os": "linux"},
            },
            "spec": {"taints": [{"key": key, "value": value, "effect": "NoSchedule"}]},
        }

    def stop(self) -> None:
        """Stop kwok and delete the Node. Idempotent."""
        if self._kwok is not None:
            _signal_group(self._kwok, signal.SIGKILL)
            self._kwok.wait()
            self._kwok = None
        _delete_node(self.cp, self.name)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _toml(table: dict[str, Any], prefix: str = "") -> str:
    """The TOML for ``table`` (strings, numbers, booleans, lists of strings, nested tables): enough for
    containerd's configuration, without a TOML writer among the dependencies."""
    lines, nested = [], []
    for key, value in table.items():
        if isinstance(value, dict):
            nested.append((key, value))
        else:
            lines.append(f"{key} = {json.dumps(value)}")
    text = "\n".join(lines) + "\n"
    for key, value in nested:
        name = f"{prefix}.{json.dumps(key) if '.' in key else key}".lstrip(".")
        text += f"\n[{name}]\n" + _toml(value, name)
    return text


def job_manifest(
    name: str,
    *,
    args: list[str],
    placement: dict[str, Any] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A batch/v1 Job running the test image once with ``args`` (``["exit", "3"]``, ``["sleep", "5"]``...).

    ``placement`` adds to the Pod spec: the kubelet node's by default, ``KWOK_PLACEMENT`` for the fake node;
    ``annotations`` go on the Pod (the KWOK stages read theirs there). No retries (``backoffLimit: 0``), no
    restarts, host network.
    """
    pod_spec: dict[str, Any] = {
        "hostNetwork": True,
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": 5,
        "containers": [{"name": "job", "image": TESTJOB_IMAGE, "imagePullPolicy": "Never", "args": args}],
        **(KUBELET_PLACEMENT if placement is None else placement),
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {"metadata": {"annotations": annotations or {}}, "spec": pod_spec},
        },
    }


def wait_for_job(api: ApiClient, *, namespace: str, name: str, timeout: float) -> str:
    """Wait until Job ``name`` is finished; return its final condition's type (``Complete`` or ``Failed``)."""

    def finished() -> str | None:
        status = BatchV1Api(api).read_namespaced_job_status(name, namespace).status
        for condition in (status and status.conditions) or []:
            if condition.type in ("Complete", "Failed") and condition.status == "True":
                return str(condition.type)
        return None

    return poll_until(finished, timeout=timeout, interval=0.1, what=f"Job {namespace}/{name} to finish")
