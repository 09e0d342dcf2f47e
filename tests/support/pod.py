"""A rendered Deployment's Pod run by podman the way a kubelet would run it: the image tests' node.

No kubelet runs next to the local control plane, so ``PodmanPod`` reads the Pod template of a Deployment as Helm
rendered it and does with each field what the kubelet does:

- the one container's ``image``, ``imagePullPolicy``, ``command`` and ``args``;
- ``env``: ``value``, and ``valueFrom.fieldRef`` resolved as the Pod's own fields (its namespace, name, node...);
- ``hostNetwork: true`` as ``--network host`` (required: the apiserver listens on this host's loopback), so
  names resolve as on the host whatever ``dnsPolicy`` says (there is no cluster DNS here);
- ``securityContext`` (the container's over the Pod's): ``runAsUser``/``runAsGroup``, ``runAsNonRoot`` checked,
  ``readOnlyRootFilesystem`` (without podman's own writable /tmp and /run), ``allowPrivilegeEscalation: false``,
  ``capabilities``, ``seccompProfile: RuntimeDefault`` (podman's default profile);
- ``emptyDir`` volumes as host directories (disk-backed, as the kubelet's are), mounted as ``volumeMounts`` say;
- the ServiceAccount token volume: ``token``, ``ca.crt`` and ``namespace`` read-only at
  ``/var/run/secrets/kubernetes.io/serviceaccount`` (with ``automountServiceAccountToken``);
- ``resources.limits`` as cgroup limits (requests only matter to a scheduler);
- ``startupProbe``, then ``livenessProbe`` and ``readinessProbe`` (httpGet, on loopback: a ``host`` other than
  127.0.0.1 is refused) polled at their periods for as long as it runs, every answer recorded;
- ``terminationGracePeriodSeconds`` as the time ``podman stop`` gives SIGTERM before SIGKILL.

Fields that only place a Pod on a node (affinity, tolerations, ...) mean nothing on one host and are skipped; any
other field raises ``UnsupportedSpec``, so a chart change the runner does not understand fails instead of being
left out. Not emulated: the Service environment variables the kubelet adds (``KUBERNETES_SERVICE_HOST`` and so on
must come from the spec, e.g. the chart's ``extraEnv``) and restarts (a failed liveness probe is recorded, and
``Prober.restart_due`` says the kubelet would have restarted the container).

    with PodmanPod(deployment, token=..., ca_pem=..., work_dir=tmp) as pod:
        httpx.get(pod.url + "/readyz")
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import secrets
import socket
import subprocess
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx

from tests.support.controlplane import _pid_alive
from tests.support.image import podman

__all__ = ["SERVICE_ACCOUNT_DIR", "PodmanPod", "Probe", "ProbeResult", "Prober", "UnsupportedSpec"]

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
# Every container started here carries the pid of the test process, so a later run removes those of a process that
# died without cleaning up (a container outlives the podman client that started it).
_OWNER_LABEL = "io.stargraph.test-owner"
# Fields that place a Pod on a node or pull its image from a registry: nothing to do on a single host.
_PLACEMENT = {
    "affinity",
    "imagePullSecrets",
    "nodeSelector",
    "priorityClassName",
    "tolerations",
    "topologySpreadConstraints",
}
_LOOPBACK = "127.0.0.1"
_PULL_POLICIES = {"Always": "always", "IfNotPresent": "missing", "Never": "never"}
_QUANTITY = re.compile(r"^([0-9.]+)(m|k|M|G|T|Ki|Mi|Gi|Ti)?$")
_FACTORS = {
    None: 1.0,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "Ki": 2.0**10,
    "Mi": 2.0**20,
    "Gi": 2.0**30,
    "Ti": 2.0**40,
}


class UnsupportedSpec(ValueError):
    """The Pod template uses something PodmanPod cannot do as a kubelet would."""


def _only(mapping: Mapping[str, Any], allowed: Iterable[str], where: str) -> Mapping[str, Any]:
    unknown = sorted(set(mapping) - set(allowed))
    if unknown:
        raise UnsupportedSpec(f"{where}: {', '.join(unknown)} not supported")
    return mapping


def _quantity(value: str | int | float) -> float:
    """A Kubernetes resource quantity ("512Mi", "500m", 2) as a number of units (bytes, cores)."""
    match = _QUANTITY.match(str(value))
    if not match:
        raise UnsupportedSpec(f"resource quantity {value!r} not supported")
    return float(match[1]) * _FACTORS[match[2]]


@dataclass(frozen=True, kw_only=True)
class Probe:
    """An httpGet probe of the container, with the kubelet's timing fields."""

    kind: str
    url: str
    period_seconds: float
    timeout_seconds: float
    failure_threshold: int

    @classmethod
    def from_spec(cls, kind: str, spec: Mapping[str, Any], ports: Mapping[str, int]) -> Probe:
        fields = ("httpGet", "periodSeconds", "timeoutSeconds", "failureThreshold", "initialDelaySeconds")
        _only(spec, fields, kind)
        if spec.get("initialDelaySeconds"):
            raise UnsupportedSpec(f"{kind}.initialDelaySeconds not supported")
        get = _only(spec["httpGet"], ("host", "path", "port", "scheme"), f"{kind}.httpGet")
        if get.get("scheme", "HTTP") != "HTTP":
            raise UnsupportedSpec(f"{kind}.httpGet.scheme {get['scheme']} not supported")
        # Without a host the kubelet probes the Pod's IP; in the host's network that is this host, reached here on
        # loopback. Any other host would be traffic off this machine.
        if get.get("host", _LOOPBACK) != _LOOPBACK:
            raise UnsupportedSpec(f"{kind}.httpGet.host {get['host']} not supported")
        port = get["port"]
        port = ports[port] if isinstance(port, str) else int(port)
        return cls(
            kind=kind,
            url=f"http://{_LOOPBACK}:{port}{get.get('path', '/')}",
            period_seconds=float(spec.get("periodSeconds", 10)),
            timeout_seconds=float(spec.get("timeoutSeconds", 1)),
            failure_threshold=int(spec.get("failureThreshold", 3)),
        )

    def check(self) -> int | None:
        """The status code answered, or None when nothing answered within the timeout."""
        try:
            return httpx.get(self.url, timeout=self.timeout_seconds).status_code
        except httpx.HTTPError:
            return None


@dataclass(frozen=True)
class ProbeResult:
    kind: str
    at: float
    """time.monotonic() of the answer."""
    status: int | None

    @property
    def success(self) -> bool:
        # The kubelet's rule for httpGet probes.
        return self.status is not None and 200 <= self.status < 400


class Prober:
    """Polls liveness and readiness probes at their periods in a thread, recording every answer."""

    def __init__(self, probes: Iterable[Probe]) -> None:
        self.probes = list(probes)
        self.results: list[ProbeResult] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="prober", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop polling (idempotent; a prober never started just stays stopped)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def of(self, kind: str) -> list[ProbeResult]:
        return [result for result in list(self.results) if result.kind == kind]

    def restart_due(self) -> bool:
        """Whether the liveness probe failed often enough in a row for the kubelet to restart the container."""
        for probe in self.probes:
            if probe.kind != "livenessProbe":
                continue
            run = 0
            for result in self.of(probe.kind):
                run = 0 if result.success else run + 1
                if run >= probe.failure_threshold:
                    return True
        return False

    def _run(self) -> None:
        due = {probe.kind: time.monotonic() for probe in self.probes}
        while not self._stop.is_set():
            for probe in self.probes:
                if time.monotonic() >= due[probe.kind]:
                    self.results.append(ProbeResult(probe.kind, time.monotonic(), probe.check()))
                    due[probe.kind] += probe.period_seconds
            self._stop.wait(max(0.0, min(due.values()) - time.monotonic()))


class PodmanPod:
    """The Pod of ``deployment`` (a rendered apps/v1 Deployment) as one podman container on the host network.

    ``token`` and ``ca_pem`` are what the kubelet would mount for the Pod's ServiceAccount; ``work_dir`` holds
    those files and the emptyDir volumes. ``start()`` returns once the startup probe and then the readiness probe
    succeeded; ``stop()`` is the kubelet's termination (SIGTERM, SIGKILL after the grace period).
    """

    def __init__(self, deployment: Mapping[str, Any], *, token: str, ca_pem: bytes, work_dir: Path) -> None:
        if deployment.get("kind") != "Deployment":
            raise UnsupportedSpec(f"expected a Deployment, got {deployment.get('kind')}")
        self.namespace: str = deployment["metadata"]["namespace"]
        self.name = f"{deployment['metadata']['name']}-podman-{secrets.token_hex(3)}"
        self._pod = _only(
            deployment["spec"]["template"]["spec"],
            {
                "containers",
                "dnsPolicy",
                "hostNetwork",
                "securityContext",
                "serviceAccountName",
                "automountServiceAccountToken",
                "terminationGracePeriodSeconds",
                "volumes",
                *_PLACEMENT,
            },
            "spec.template.spec",
        )
        if not self._pod.get("hostNetwork"):
            raise UnsupportedSpec("hostNetwork must be true: the apiserver is on this host's loopback")
        containers = self._pod["containers"]
        if len(containers) != 1:
            raise UnsupportedSpec(f"{len(containers)} containers; one is supported")
        self._container = _only(
            containers[0],
            {
                "name",
                "image",
                "imagePullPolicy",
                "command",
                "args",
                "env",
                "ports",
                "startupProbe",
                "livenessProbe",
                "readinessProbe",
                "resources",
                "securityContext",
                "volumeMounts",
            },
            "container",
        )
        self.ports: dict[str, int] = {port["name"]: port["containerPort"] for port in self._container.get("ports", [])}
        self.grace_seconds = int(self._pod.get("terminationGracePeriodSeconds", 30))
        self._token, self._ca_pem = token, ca_pem
        self.work_dir = work_dir
        self.prober = Prober(
            Probe.from_spec(kind, self._container[kind], self.ports)
            for kind in ("livenessProbe", "readinessProbe")
            if kind in self._container
        )
        self._started = False
        self.changes_at_start: list[str] = []

    @property
    def url(self) -> str:
        """Where the container's port named ``http`` answers."""
        return f"http://{_LOOPBACK}:{self.ports['http']}"

    def volume_dir(self, name: str) -> Path:
        """The host directory behind emptyDir volume ``name``."""
        return self.work_dir / "volumes" / name

    def run_args(self) -> list[str]:
        """The ``podman run`` arguments for the Pod (files and directories they name are created here)."""
        container = self._container
        args = ["run", "--detach", "--name", self.name, "--label", f"{_OWNER_LABEL}={os.getpid()}"]
        args += ["--network", "host", "--pull", _PULL_POLICIES[container.get("imagePullPolicy", "IfNotPresent")]]
        args += self._security_args()
        args += [f"--env={name}={value}" for name, value in self._env().items()]
        args += self._mount_args()
        args += self._limit_args()
        if "command" in container:
            args += ["--entrypoint", json.dumps(container["command"])]
        return [*args, container["image"], *container.get("args", [])]

    def _security_args(self) -> list[str]:
        pod_context = _only(
            self._pod.get("securityContext", {}),
            ("runAsNonRoot", "runAsUser", "runAsGroup", "seccompProfile"),
            "spec.securityContext",
        )
        own = _only(
            self._container.get("securityContext", {}),
            (
                "allowPrivilegeEscalation",
                "readOnlyRootFilesystem",
                "runAsNonRoot",
                "runAsUser",
                "runAsGroup",
                "capabilities",
                "seccompProfile",
            ),
            "container.securityContext",
        )
        context = {**pod_context, **own}
        args = []
        user, group = context.get("runAsUser"), context.get("runAsGroup")
        if context.get("runAsNonRoot") and not user:
            # The kubelet would accept a numeric non-root USER of the image too; the chart always sets the uid.
            raise UnsupportedSpec("runAsNonRoot needs a non-zero runAsUser here")
        if user is not None:
            args += ["--user", f"{user}:{group}" if group is not None else str(user)]
        elif group is not None:
            raise UnsupportedSpec("runAsGroup without runAsUser not supported")
        if context.get("readOnlyRootFilesystem"):
            # podman would otherwise mount writable tmpfs on /tmp, /var/tmp and /run: only the spec's volumes are.
            args += ["--read-only", "--read-only-tmpfs=false"]
        if context.get("allowPrivilegeEscalation") is False:
            args += ["--security-opt", "no-new-privileges"]
        capabilities = _only(context.get("capabilities", {}), ("add", "drop"), "capabilities")
        args += [arg for cap in capabilities.get("drop", []) for arg in ("--cap-drop", cap)]
        args += [arg for cap in capabilities.get("add", []) for arg in ("--cap-add", cap)]
        seccomp = context.get("seccompProfile", {"type": "RuntimeDefault"})
        if seccomp != {"type": "RuntimeDefault"}:
            raise UnsupportedSpec(f"seccompProfile {seccomp} not supported")
        return args

    def _env(self) -> dict[str, str]:
        fields = {
            "metadata.name": self.name,
            "metadata.namespace": self.namespace,
            "spec.serviceAccountName": self._pod.get("serviceAccountName", "default"),
            "spec.nodeName": socket.gethostname(),
            # In the host's network the Pod's IP is the host's.
            "status.podIP": "127.0.0.1",
            "status.hostIP": "127.0.0.1",
        }
        env: dict[str, str] = {}
        for entry in self._container.get("env", []):
            _only(entry, ("name", "value", "valueFrom"), f"env {entry.get('name')}")
            if "valueFrom" not in entry:
                value = str(entry.get("value", ""))
                if "$(" in value:
                    raise UnsupportedSpec(f"env {entry['name']}: $(VAR) references not supported")
                env[entry["name"]] = value
                continue
            source = _only(entry["valueFrom"], ("fieldRef",), f"env {entry['name']}.valueFrom")
            path = source["fieldRef"]["fieldPath"]
            if path not in fields:
                raise UnsupportedSpec(f"env {entry['name']}: fieldRef {path} not supported")
            env[entry["name"]] = fields[path]
        return env

    def _mount_args(self) -> list[str]:
        args = []
        if self._pod.get("automountServiceAccountToken", True):
            account = self.work_dir / "serviceaccount"
            account.mkdir(parents=True, exist_ok=True)
            for name, data in (
                ("token", self._token.encode()),
                ("ca.crt", self._ca_pem),
                ("namespace", self.namespace.encode()),
            ):
                (account / name).write_bytes(data)
                # The kubelet's default mode for these files: readable by the container's non-root user.
                (account / name).chmod(0o644)
            account.chmod(0o755)
            args += ["--mount", f"type=bind,source={account},destination={SERVICE_ACCOUNT_DIR},ro=true"]
        volumes: dict[str, Path] = {}
        for volume in self._pod.get("volumes", []):
            _only(volume, ("name", "emptyDir"), f"volume {volume['name']}")
            _only(volume["emptyDir"] or {}, ("sizeLimit",), f"volume {volume['name']}.emptyDir")
            host_dir = self.volume_dir(volume["name"])
            host_dir.mkdir(parents=True, exist_ok=True)
            host_dir.chmod(0o777)  # as the kubelet creates an emptyDir: any uid the container runs as may write
            volumes[volume["name"]] = host_dir
        for mount in self._container.get("volumeMounts", []):
            _only(mount, ("name", "mountPath", "readOnly"), f"volumeMount {mount['name']}")
            read_only = ",ro=true" if mount.get("readOnly") else ""
            args += [
                "--mount",
                f"type=bind,source={volumes[mount['name']]},destination={mount['mountPath']}{read_only}",
            ]
        return args

    def size_limit(self, volume: str) -> int | None:
        """The sizeLimit of emptyDir ``volume`` in bytes (the kubelet evicts a Pod whose volume grows beyond it)."""
        for entry in self._pod.get("volumes", []):
            if entry["name"] == volume and (entry["emptyDir"] or {}).get("sizeLimit") is not None:
                return int(_quantity(entry["emptyDir"]["sizeLimit"]))
        return None

    def _limit_args(self) -> list[str]:
        resources = _only(self._container.get("resources", {}), ("requests", "limits"), "resources")
        limits = _only(resources.get("limits", {}), ("cpu", "memory"), "resources.limits")
        args = []
        if "memory" in limits:
            args += ["--memory", str(int(_quantity(limits["memory"])))]
        if "cpu" in limits:
            args += ["--cpus", f"{_quantity(limits['cpu']):g}"]
        return args

    def start(self, *, timeout: float = 120.0) -> Self:
        """Run the container; return once the startup probe, then the readiness probe, succeeded."""
        assert not self._started, "a PodmanPod starts once"
        _remove_orphans()
        podman(*self.run_args())
        self._started = True
        # The mount points the runtime made in the root filesystem (for /etc/hosts, the token...) before the
        # process started; anything beyond them was written by the container itself.
        self.changes_at_start = self.changes()
        atexit.register(self.remove)
        try:
            self._wait_started(timeout=timeout)
            self.prober.start()
            self._wait_ready(timeout=timeout)
        except BaseException:
            self.remove()
            raise
        return self

    def _wait_started(self, *, timeout: float) -> None:
        spec = self._container.get("startupProbe")
        if spec is None:
            return
        probe = Probe.from_spec("startupProbe", spec, self.ports)
        deadline, failures = time.monotonic() + timeout, 0
        while True:
            self._require_running("before its startup probe succeeded")
            if ProbeResult(probe.kind, time.monotonic(), probe.check()).success:
                return
            failures += 1
            if failures >= probe.failure_threshold or time.monotonic() >= deadline:
                raise TimeoutError(f"startup probe failed {failures} times:\n{self.logs()}")
            time.sleep(probe.period_seconds)

    def _wait_ready(self, *, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not any(result.success for result in self.prober.of("readinessProbe")):
            self._require_running("before it was ready")
            if time.monotonic() >= deadline:
                raise TimeoutError(f"not ready within {timeout:g}s:\n{self.logs()}")
            time.sleep(0.1)

    def _require_running(self, when: str) -> None:
        if not self.running():
            raise RuntimeError(f"{self.name} exited with {self.exit_code()} {when}:\n{self.logs()}")

    def running(self) -> bool:
        return podman("inspect", "--format", "{{.State.Running}}", self.name).stdout.strip() == "true"

    def exit_code(self) -> int:
        return int(podman("inspect", "--format", "{{.State.ExitCode}}", self.name).stdout)

    def host_pid(self) -> int:
        """The container's main process as the host sees it."""
        return int(podman("inspect", "--format", "{{.State.Pid}}", self.name).stdout)

    def exec(self, *command: str) -> subprocess.CompletedProcess[str]:
        """Run ``command`` in the container (as its user); raises when it fails."""
        return podman("exec", self.name, *command)

    def logs(self, tail: int = 60) -> str:
        """The container's last ``tail`` lines of output, stdout and stderr in the order written."""
        return podman("logs", "--tail", str(tail), self.name, check=False, merge_stderr=True).stdout

    def log_records(self) -> list[dict[str, Any]]:
        """Its JSON log records so far; other lines are skipped."""
        records = []
        for line in podman("logs", self.name, merge_stderr=True).stdout.splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict):
                    records.append(record)
        return records

    def changes(self) -> list[str]:
        """What the container changed in its root filesystem (``podman diff``), mounted volumes aside."""
        return podman("diff", self.name).stdout.splitlines()

    def stop(self) -> int:
        """The kubelet's termination: SIGTERM, SIGKILL after the grace period. Returns the exit code."""
        podman("stop", "--time", str(self.grace_seconds), self.name, timeout=self.grace_seconds + 30)
        self.prober.stop()
        return self.exit_code()

    def remove(self) -> None:
        """Remove the container, stopped or not. Idempotent."""
        atexit.unregister(self.remove)
        self.prober.stop()
        podman("rm", "--force", "--time", "0", self.name, check=False)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.remove()


def _remove_orphans() -> None:
    listing = podman("ps", "--all", "--filter", f"label={_OWNER_LABEL}", "--format", "{{.ID}} {{.Labels}}")
    for line in listing.stdout.splitlines():
        container, _, labels = line.partition(" ")
        owner = re.search(rf"{re.escape(_OWNER_LABEL)}:(\d+)", labels)
        if owner and not _pid_alive(int(owner[1])):
            podman("rm", "--force", "--time", "0", container, check=False)
