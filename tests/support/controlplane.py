"""A throwaway Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager) for tests and benchmarks.

There is no Docker engine or kind on the machines we test on, so, like controller-runtime's
envtest, we run the real binaries (built by ``hack/build-controlplane.sh``) on loopback ports in a temporary
directory with a freshly generated PKI. No kubelet runs here, so Pods never start; tests that need them add a node
(tests/support/node.py), which starts kube-scheduler on demand (``start_scheduler``).

    with ControlPlane() as cp:
        with cp.api_client() as api:
            ...

``python -m tests.support.controlplane`` keeps one running for manual use and prints the ``KUBECONFIG`` to
export. ``ExistingCluster`` offers the same API for a cluster someone else runs.
"""

from __future__ import annotations

import argparse
import atexit
import base64
import contextlib
import ctypes
import datetime
import ipaddress
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self, TypeVar

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from kubernetes.client import (
    ApiClient,
    AuthenticationV1TokenRequest,
    CoreV1Api,
    V1Namespace,
    V1ObjectMeta,
    V1ServiceAccount,
    V1TokenRequestSpec,
)
from kubernetes.client.exceptions import ApiException
from kubernetes.config import new_client_from_config

__all__ = [
    "ControlPlane",
    "ControlPlaneError",
    "ExistingCluster",
    "KubeCluster",
    "api_client",
    "cluster_from_env",
    "kubeconfig_context",
    "poll_until",
    "temporary_namespace",
]

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "hack" / "build-controlplane.sh"
TEST_KUBECONFIG_ENV = "STARGRAPH_TEST_KUBECONFIG"
_TMP_PREFIX = "stargraph-cp-"
_NAME = "stargraph"
_CORE = ("etcd", "kube-apiserver", "kube-controller-manager")
# Long enough for a manual session with the CLI; the files are deleted on stop anyway.
_CERT_VALIDITY = datetime.timedelta(days=30)

T = TypeVar("T")


class ControlPlaneError(RuntimeError):
    """The control plane could not be built, started or reached."""


def poll_until(condition: Callable[[], T | None], *, timeout: float, interval: float = 0.05, what: str) -> T:
    """Call ``condition`` until it returns something other than None/False; raise TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result is not None and result is not False:
            return result
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def api_client(kubeconfig: Path) -> ApiClient:
    """A new ``kubernetes`` ApiClient for ``kubeconfig``; never touches the client's global default config."""
    # persist_config=False: the loader must not write refreshed credentials back into our kubeconfigs.
    client: ApiClient = new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(kubeconfig), persist_config=False
    )
    return client


def kubeconfig_context(kubeconfig: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The cluster and user entries of ``kubeconfig``'s current context, with file references made absolute."""
    config = yaml.safe_load(kubeconfig.read_text())

    def named(kind: str, name: str) -> dict[str, Any]:
        for entry in config.get(kind) or []:
            if entry["name"] == name:
                return dict(entry.get(kind[:-1]) or {})
        raise ControlPlaneError(f"{kubeconfig}: no {kind[:-1]} named {name!r}")

    context = named("contexts", config["current-context"])
    cluster, user = named("clusters", context["cluster"]), named("users", context["user"])
    # Relative paths in a kubeconfig are relative to the file, which breaks once the entry is copied elsewhere.
    for entry in (cluster, user):
        for key in ("certificate-authority", "client-certificate", "client-key", "tokenFile"):
            if key in entry:
                entry[key] = str(kubeconfig.parent / entry[key])
    return cluster, user


def _write_kubeconfig(path: Path, *, cluster: dict[str, Any], user: dict[str, Any]) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": _NAME, "cluster": cluster}],
        "users": [{"name": _NAME, "user": user}],
        "contexts": [{"name": _NAME, "context": {"cluster": _NAME, "user": _NAME}}],
        "current-context": _NAME,
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
    return path


@contextmanager
def temporary_namespace(api: ApiClient, *, hint: str) -> Iterator[str]:
    """Create a uniquely named namespace (derived from ``hint``) and delete it afterwards without waiting."""
    slug = re.sub(r"[^a-z0-9]+", "-", hint.lower()).strip("-")[:48].rstrip("-")
    name = f"t-{slug}-{secrets.token_hex(3)}"
    core = CoreV1Api(api)
    core.create_namespace(V1Namespace(metadata=V1ObjectMeta(name=name, labels={"stargraph.io/test": "true"})))
    try:
        yield name
    finally:
        core.delete_namespace(name, propagation_policy="Background")


class KubeCluster:
    """What tests need from any cluster: an admin kubeconfig, clients, and service-account kubeconfigs."""

    def __init__(self, kubeconfig: Path, scratch: Path) -> None:
        self._kubeconfig = kubeconfig
        self._scratch = scratch

    @property
    def kubeconfig(self) -> Path:
        """Admin kubeconfig."""
        return self._kubeconfig

    def api_client(self) -> ApiClient:
        """A new admin ApiClient; close it (or use it as a context manager)."""
        return api_client(self.kubeconfig)

    def diagnostics(self) -> str:
        """Text worth showing when a test against this cluster fails."""
        return ""

    def service_account_kubeconfig(
        self, *, namespace: str, name: str, path: Path | None = None, expiration_seconds: int = 3600
    ) -> Path:
        """Write a kubeconfig that authenticates as ServiceAccount ``namespace/name`` (created if missing).

        The bearer token comes from ``service_account_token``.
        """
        token = self.service_account_token(namespace=namespace, name=name, expiration_seconds=expiration_seconds)
        cluster, _ = kubeconfig_context(self.kubeconfig)
        path = path or self._scratch / f"sa-{namespace}-{name}.kubeconfig"
        return _write_kubeconfig(path, cluster=cluster, user={"token": token})

    def service_account_token(self, *, namespace: str, name: str, expiration_seconds: int = 3600) -> str:
        """A TokenRequest token of ServiceAccount ``namespace/name`` (created if missing), for the apiserver.

        The apiserver rejects ``expiration_seconds`` < 600.
        """
        with self.api_client() as api:
            core = CoreV1Api(api)
            try:
                core.create_namespaced_service_account(namespace, V1ServiceAccount(metadata=V1ObjectMeta(name=name)))
            except ApiException as e:
                if e.status != 409:
                    raise
            # Empty audiences: the token is for the apiserver itself.
            request = AuthenticationV1TokenRequest(
                spec=V1TokenRequestSpec(audiences=[], expiration_seconds=expiration_seconds)
            )
            status = core.create_namespaced_service_account_token(name, namespace, request).status
        if status is None or not status.token:
            raise ControlPlaneError(f"TokenRequest for {namespace}/{name} returned no token")
        return status.token

    def stop(self) -> None:
        """Release what this object holds."""
        shutil.rmtree(self._scratch, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class ExistingCluster(KubeCluster):
    """A cluster run by someone else, reached through an admin ``kubeconfig``; stop() leaves it running."""

    def __init__(self, kubeconfig: Path) -> None:
        super().__init__(kubeconfig.resolve(), Path(tempfile.mkdtemp(prefix="stargraph-kubeconfigs-")))


def cluster_from_env() -> KubeCluster:
    """The cluster named by ``$STARGRAPH_TEST_KUBECONFIG`` if set, else a freshly started ControlPlane."""
    existing = os.environ.get(TEST_KUBECONFIG_ENV)
    if existing:
        return ExistingCluster(Path(existing))
    return ControlPlane().start()


@dataclass(frozen=True)
class _Pki:
    ca_cert: Path
    ca_key: Path
    serving_cert: Path
    serving_key: Path
    admin_cert: Path
    admin_key: Path
    sa_private: Path
    sa_public: Path


_PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def _pem_key(key: _PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _issue(
    *,
    subject: x509.Name,
    key: _PrivateKey,
    issuer: tuple[x509.Name, _PrivateKey] | None,
    usage: x509.ObjectIdentifier | None,
    alt_names: Sequence[x509.GeneralName] = (),
) -> x509.Certificate:
    """Issue a certificate for ``key``; ``issuer=None`` self-signs a CA, ``usage`` is the leaf's extended usage."""
    issuer_name, issuer_key = issuer or (subject, key)
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        # Backdated a little so a clock that is slightly behind does not reject a brand-new certificate.
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _CERT_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if issuer is None:
        usages = {"key_cert_sign": True, "crl_sign": True}
    else:
        usages = {"key_cert_sign": False, "crl_sign": False}
    builder = builder.add_extension(
        x509.KeyUsage(
            digital_signature=True,
            content_commitment=False,
            key_encipherment=issuer is not None,
            data_encipherment=False,
            key_agreement=False,
            encipher_only=False,
            decipher_only=False,
            **usages,
        ),
        critical=True,
    )
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if alt_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(alt_names)), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write_pki(directory: Path) -> _Pki:
    """CA, apiserver serving cert, admin client cert and service-account key pair, as PEM files."""
    directory.mkdir(mode=0o700)
    pki = _Pki(
        *(
            directory / f
            for f in (
                "ca.crt",
                "ca.key",
                "apiserver.crt",
                "apiserver.key",
                "admin.crt",
                "admin.key",
                "sa.key",
                "sa.pub",
            )
        )
    )

    def name(common_name: str, organization: str | None = None) -> x509.Name:
        attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
        if organization:
            attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
        return x509.Name(attributes)

    # The apiserver verifies the client certificate's signature on every request, uncached: with an ECDSA CA
    # that was 12% of its CPU in bench/raw_create.py, so the CA signs with RSA (verification ~5x cheaper).
    # Leaf keys are ECDSA only because generating RSA keys is slow.
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = name("stargraph-test-ca")
    ca = _issue(subject=ca_name, key=ca_key, issuer=None, usage=None)
    serving_key = ec.generate_private_key(ec.SECP256R1())
    serving = _issue(
        subject=name("kube-apiserver"),
        key=serving_key,
        issuer=(ca_name, ca_key),
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        alt_names=[x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")],
    )
    admin_key = ec.generate_private_key(ec.SECP256R1())
    admin = _issue(
        subject=name("stargraph-admin", "system:masters"),
        key=admin_key,
        issuer=(ca_name, ca_key),
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
    )
    # Service-account tokens are signed RS256 by default, hence RSA here.
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    for path, data in (
        (pki.ca_cert, ca.public_bytes(serialization.Encoding.PEM)),
        (pki.ca_key, _pem_key(ca_key)),
        (pki.serving_cert, serving.public_bytes(serialization.Encoding.PEM)),
        (pki.serving_key, _pem_key(serving_key)),
        (pki.admin_cert, admin.public_bytes(serialization.Encoding.PEM)),
        (pki.admin_key, _pem_key(admin_key)),
        (pki.sa_private, _pem_key(sa_key)),
        (
            pki.sa_public,
            sa_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
        ),
    ):
        path.write_bytes(data)
        path.chmod(0o600)
    return pki


def _free_port() -> int:
    # Racy by nature (the port is free now, not necessarily when the process binds it), as in envtest.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _die_with_parent(parent_pid: int) -> Callable[[], None]:
    """A preexec_fn that makes the child get SIGKILL when the thread that started it dies (even by kill -9)."""

    def preexec() -> None:
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
        # The parent may have died between fork and prctl; then nobody would ever send the signal.
        if os.getppid() != parent_pid:
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_orphaned_tmpdirs() -> None:
    """Delete temp dirs (etcd data included) left by earlier runs whose Python process was killed -9."""
    for path in Path(tempfile.gettempdir()).glob(f"{_TMP_PREFIX}*"):
        match = re.fullmatch(rf"{_TMP_PREFIX}(\d+)-.*", path.name)
        if match and not _pid_alive(int(match[1])):
            shutil.rmtree(path, ignore_errors=True)


def run_build_script(script: Path, *args: str) -> Path:
    """Run a ``hack/build-*.sh`` script (a no-op when built) and return the path it prints last."""
    try:
        out = subprocess.run([str(script), *args], check=True, stdout=subprocess.PIPE, text=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        raise ControlPlaneError(f"{script} failed: {e}") from e
    return Path(out.strip().splitlines()[-1])


class ControlPlane(KubeCluster):
    """etcd + kube-apiserver + kube-controller-manager on loopback ports, all files in one temp dir.

    Call ``start()`` (or use it as a context manager) from a thread that outlives the control plane, normally
    the main thread: Linux sends the parent-death signal when the *thread* that started a child exits.
    """

    def __init__(self, *, ready_timeout: float = 60.0) -> None:
        self._ready_timeout = ready_timeout
        self._tmpdir = Path(tempfile.mkdtemp(prefix=f"{_TMP_PREFIX}{os.getpid()}-"))
        super().__init__(self._tmpdir / "admin.kubeconfig", self._tmpdir)
        self._pki = _write_pki(self._tmpdir / "pki")
        self._port = _free_port()
        self._processes: dict[str, subprocess.Popen[bytes]] = {}
        self._apiserver: tuple[Path, list[str]] = (Path(), [])
        self._controller_manager: tuple[Path, list[str]] = (Path(), [])
        """Binary and arguments of each, kept to start it again."""
        self._stopped = False
        atexit.register(self.stop)

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self._port}"

    @property
    def pids(self) -> dict[str, int]:
        """Process id of each running component, by binary name."""
        return {name: process.pid for name, process in self._processes.items() if process.poll() is None}

    @property
    def tmpdir(self) -> Path:
        return self._tmpdir

    @property
    def ca_file(self) -> Path:
        return self._pki.ca_cert

    @property
    def serving_cert_file(self) -> Path:
        """The apiserver's certificate (for 127.0.0.1, signed by the CA): a proxy on loopback can serve it too."""
        return self._pki.serving_cert

    @property
    def serving_key_file(self) -> Path:
        return self._pki.serving_key

    @property
    def admin_cert_file(self) -> Path:
        return self._pki.admin_cert

    @property
    def admin_key_file(self) -> Path:
        return self._pki.admin_key

    def log_file(self, name: str) -> Path:
        return self._tmpdir / "logs" / f"{name}.log"

    def log_tail(self, name: str, lines: int = 40) -> str:
        """The last ``lines`` lines of the log of process ``name`` (etcd, kube-apiserver, ...)."""
        try:
            text = self.log_file(name).read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> Self:
        return self.start()

    def diagnostics(self) -> str:
        return "\n".join(
            f"--- {name} (last 40 lines of {self.log_file(name)})\n{self.log_tail(name)}" for name in self._processes
        )

    def start(self) -> Self:
        """Start the processes and return once the apiserver is ready and the controllers are working."""
        if self._stopped:
            raise ControlPlaneError("a stopped ControlPlane cannot be restarted")
        if self._processes:
            return self
        _remove_orphaned_tmpdirs()
        try:
            bin_dir = run_build_script(BUILD_SCRIPT)
            started = time.monotonic()
            self._launch(bin_dir)
            log.info("control plane ready in %.2fs at %s", time.monotonic() - started, self.server)
        except BaseException:
            self.stop()
            raise
        return self

    def _launch(self, bin_dir: Path) -> None:
        pki, tmp = self._pki, self._tmpdir
        etcd_url, peer_url = f"http://127.0.0.1:{_free_port()}", f"http://127.0.0.1:{_free_port()}"
        _write_kubeconfig(
            self.kubeconfig,
            cluster={"server": self.server, "certificate-authority-data": _b64(pki.ca_cert)},
            user={"client-certificate-data": _b64(pki.admin_cert), "client-key-data": _b64(pki.admin_key)},
        )
        self._spawn(
            bin_dir / "etcd",
            [
                "--name",
                _NAME,
                "--data-dir",
                str(tmp / "etcd"),
                "--listen-client-urls",
                etcd_url,
                "--advertise-client-urls",
                etcd_url,
                "--listen-peer-urls",
                peer_url,
                "--initial-advertise-peer-urls",
                peer_url,
                "--initial-cluster",
                f"{_NAME}={peer_url}",
                # Test data is disposable; fsync would dominate every write's latency.
                "--unsafe-no-fsync",
            ],
        )
        # The apiserver retries etcd until it answers, so it need not wait for etcd to be up.
        self._apiserver = (
            bin_dir / "kube-apiserver",
            [
                "--etcd-servers",
                etcd_url,
                "--bind-address",
                "127.0.0.1",
                "--advertise-address",
                "127.0.0.1",
                "--secure-port",
                str(self._port),
                # The default reconciler would publish 127.0.0.1 as the kubernetes Service endpoint, which it refuses.
                "--endpoint-reconciler-type",
                "none",
                "--service-account-issuer",
                self.server,
                "--service-account-key-file",
                str(pki.sa_public),
                "--service-account-signing-key-file",
                str(pki.sa_private),
                "--authorization-mode",
                "RBAC",
                "--client-ca-file",
                str(pki.ca_cert),
                "--tls-cert-file",
                str(pki.serving_cert),
                "--tls-private-key-file",
                str(pki.serving_key),
                # Only configuration: nothing routes Service IPs, but the apiserver requires a range to allocate from.
                "--service-cluster-ip-range",
                "10.96.0.0/16",
            ],
        )
        self._spawn(*self._apiserver)
        self._wait_for("kube-apiserver /readyz", self._admin_tls(), "/readyz")
        # Started only now: it checks /healthz once a second and exits after 10 s, so starting it earlier gains
        # nothing and could make it give up on a slow machine.
        self._controller_manager = (
            bin_dir / "kube-controller-manager",
            [
                "--kubeconfig",
                str(self.kubeconfig),
                "--leader-elect=false",
                "--bind-address",
                "127.0.0.1",
                "--secure-port",
                "0",
                "--controllers",
                "*",
                "--service-account-private-key-file",
                str(pki.sa_private),
                "--root-ca-file",
                str(pki.ca_cert),
                "--cluster-signing-cert-file",
                str(pki.ca_cert),
                "--cluster-signing-key-file",
                str(pki.ca_key),
                "--use-service-account-credentials=false",
                # Its default is under /usr/libexec, which the controller-manager would otherwise create.
                "--flex-volume-plugin-dir",
                str(tmp / "flexvolume"),
            ],
        )
        self._spawn(*self._controller_manager)
        # The serviceaccount controller creating `default` shows the controller-manager is doing its job.
        context = self._admin_tls()
        self._wait_for("the default namespace", context, "/api/v1/namespaces/default")
        self._wait_for("the default ServiceAccount", context, "/api/v1/namespaces/default/serviceaccounts/default")

    def _admin_tls(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self._pki.ca_cert))
        context.load_cert_chain(str(self._pki.admin_cert), str(self._pki.admin_key))
        return context

    @contextmanager
    def apiserver_down(self) -> Iterator[None]:
        """kube-apiserver killed (SIGKILL: connections are refused or reset) for the body of the ``with``.

        On exit it starts again on the same port with the same etcd data, as after a crash or an upgrade, and the
        block returns once it is ready (and the controller-manager, should it have given up meanwhile, runs again).
        """
        process = self._processes["kube-apiserver"]
        _signal_group(process, signal.SIGKILL)
        process.wait()
        try:
            yield
        finally:
            self._spawn(*self._apiserver, append=True)
            self._wait_for("kube-apiserver /readyz after its restart", self._admin_tls(), "/readyz")
            if self._processes["kube-controller-manager"].poll() is not None:
                self._spawn(*self._controller_manager, append=True)

    @contextmanager
    def apiserver_frozen(self) -> Iterator[None]:
        """kube-apiserver stopped (SIGSTOP) for the body of the ``with``: connections stay open, nothing answers.

        That is a hung apiserver (or a network black hole), which only clients with timeouts survive. On exit it
        continues (SIGCONT) and the block returns once it answers ``/readyz`` again.
        """
        process = self._processes["kube-apiserver"]
        _signal_group(process, signal.SIGSTOP)
        try:
            yield
        finally:
            _signal_group(process, signal.SIGCONT)
            self._wait_for("kube-apiserver /readyz after SIGCONT", self._admin_tls(), "/readyz")

    def start_scheduler(self) -> None:
        """Start kube-scheduler (built on first use) unless it runs: Pods without ``nodeName``, a Job's, need it."""
        if "kube-scheduler" in self.pids:
            return
        bin_dir = run_build_script(BUILD_SCRIPT, "kube-scheduler")
        # --secure-port 0: it serves nothing, so it takes no port and needs no serving certificate.
        args = ["--kubeconfig", str(self.kubeconfig), "--leader-elect=false", "--secure-port", "0"]
        self._spawn(bin_dir / "kube-scheduler", args)

    def spawn(self, name: str, command: Sequence[str], *, append: bool = False) -> subprocess.Popen[bytes]:
        """Run ``command`` as one more component: logged to ``log_file(name)``, listed by ``pids`` and
        ``diagnostics()``, and stopped by ``stop()`` (newest first) unless it has ended by then."""
        self.log_file(name).parent.mkdir(exist_ok=True)
        with self.log_file(name).open("ab" if append else "wb") as out:
            process = self._processes[name] = subprocess.Popen(
                list(command),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent(os.getpid()),
            )
        return process

    def _spawn(self, binary: Path, args: list[str], *, append: bool = False) -> None:
        self.spawn(binary.name, [str(binary), *args], append=append)

    def _wait_for(self, what: str, context: ssl.SSLContext, path: str) -> None:
        def ok() -> bool:
            # Only the control plane's own processes: a node's (spawn()) may have been stopped on purpose.
            for name in _CORE:
                process = self._processes.get(name)
                if process is not None and process.poll() is not None:
                    raise ControlPlaneError(
                        f"{name} exited with {process.returncode} while waiting for {what}:\n{self.log_tail(name)}"
                    )
            try:
                with urllib.request.urlopen(self.server + path, context=context, timeout=1) as response:
                    return bool(response.status == 200)
            except (urllib.error.URLError, OSError):
                return False

        try:
            poll_until(ok, timeout=self._ready_timeout, what=what)
        except TimeoutError as e:
            raise ControlPlaneError(f"{e}; kube-apiserver log:\n{self.log_tail('kube-apiserver')}") from None

    def stop(self, timeout: float = 10.0) -> None:
        """Stop each process (SIGTERM, SIGKILL after ``timeout`` s) and delete the temp dir. Idempotent."""
        self._stopped = True
        atexit.unregister(self.stop)
        # One at a time, newest first: the apiserver shuts down promptly only while etcd still answers.
        for process in reversed(self._processes.values()):
            if process.poll() is not None:
                continue
            _signal_group(process, signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.wait()
        super().stop()


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def _copy_private(source: Path, target: Path) -> None:
    # Written beside the target and renamed, so a script waiting for the file never reads half of it.
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    shutil.copyfile(source, partial)
    partial.chmod(0o600)
    partial.replace(target)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None, out: IO[str] = sys.stdout) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.controlplane",
        description="Run a local control plane until Ctrl-C or SIGTERM.",
    )
    parser.add_argument("--kubeconfig-out", type=Path, help="also write the admin kubeconfig to this path")
    parser.add_argument(
        "--kwok-node", action="store_true", help="also a KWOK fake node (and kube-scheduler), so Jobs' Pods complete"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress and timings")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    signal.signal(signal.SIGTERM, _interrupt)
    with contextlib.suppress(KeyboardInterrupt), ControlPlane() as cp, contextlib.ExitStack() as nodes:
        if args.kwok_node:
            from tests.support.node import KwokNode  # node builds on this module

            nodes.enter_context(KwokNode(cp))
        kubeconfig = cp.kubeconfig
        if args.kubeconfig_out:
            kubeconfig = args.kubeconfig_out.resolve()
            _copy_private(cp.kubeconfig, kubeconfig)
        print(f"export KUBECONFIG={kubeconfig}", file=out)
        print(f"# kube-apiserver {cp.server} is up; Ctrl-C stops it", file=out, flush=True)
        while True:
            signal.pause()
    return 0


if __name__ == "__main__":
    sys.exit(main())
