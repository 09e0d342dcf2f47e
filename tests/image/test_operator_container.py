"""The operator from its image, run exactly as the chart's Deployment says (tests/support/pod.py), against the real
control plane: a slice of the end-to-end tests, judged by the Runs the apiserver holds and the answers given.

The container has no kubeconfig: it connects through the in-cluster path (``KUBERNETES_SERVICE_HOST``/``_PORT`` and
the mounted ServiceAccount token and CA), with only the permissions the chart grants its ServiceAccount. One
container serves the module: the slice shared with the chart's Pod on the kubelet (tests/image/container_slice.py),
then what podman lets us read of the container; the last test stops it as the kubelet would and reads its exit code.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest

from tests.image.container_slice import (  # noqa: F401  (tests, run here against operator_url)
    test_a_cron_fire_creates_its_run,
    test_a_manual_run_needs_a_caller_the_apiserver_allows,
    test_a_signed_webhook_delivery_creates_its_run,
)
from tests.support.pod import SERVICE_ACCOUNT_DIR, PodmanPod

pytestmark = pytest.mark.cluster


@pytest.fixture
def operator_url(operator_pod: PodmanPod) -> str:
    """Where the container slice reaches the operator: the container's port, on the host's loopback."""
    return operator_pod.url


def test_connects_in_cluster_with_only_the_mounted_service_account(operator_pod: PodmanPod) -> None:
    args = operator_pod.run_args()
    assert not any("kubeconfig" in arg.lower() for arg in args), args
    assert "--env=KUBERNETES_SERVICE_HOST=127.0.0.1" in args
    assert any(arg.endswith(f"destination={SERVICE_ACCOUNT_DIR},ro=true") for arg in args), args
    listing = operator_pod.exec("ls", SERVICE_ACCOUNT_DIR).stdout.split()
    assert sorted(listing) == ["ca.crt", "namespace", "token"]


def test_runs_as_65532_with_no_capability_and_a_read_only_root(operator_pod: PodmanPod) -> None:
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{operator_pod.host_pid()}/status").read_text().splitlines()
    )
    assert status["Uid"].split() == ["65532"] * 4
    assert status["Gid"].split() == ["65532"] * 4
    assert int(status["CapEff"], 16) == int(status["CapPrm"], 16) == 0
    assert status["NoNewPrivs"].strip() == "1"
    assert status["Seccomp"].strip() == "2"  # a seccomp filter: podman's default profile, the RuntimeDefault
    mounts = {
        fields[4]: fields[5].split(",")
        for fields in (
            line.split() for line in Path(f"/proc/{operator_pod.host_pid()}/mountinfo").read_text().splitlines()
        )
    }
    assert "ro" in mounts["/"], mounts["/"]
    assert "rw" in mounts["/tmp"], mounts["/tmp"]
    # /var/run is a link to /run in both bases, so the kernel names the token's mount point from /run.
    (account,) = [
        options for point, options in mounts.items() if point.endswith("/secrets/kubernetes.io/serviceaccount")
    ]
    assert "ro" in account, account


def test_probes_answer_as_the_spec_says(operator_pod: PodmanPod) -> None:
    for probe in operator_pod.prober.probes:
        results = operator_pod.prober.of(probe.kind)
        assert results, f"no {probe.kind} yet"
        # Not ready before the first success is start-up; after it, every answer must be a success.
        first = next(i for i, result in enumerate(results) if result.success)
        assert probe.kind == "readinessProbe" or first == 0, results
        assert all(result.status == 200 for result in results[first:]), [result.status for result in results]
        gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(results)]
        # Loose enough for a busy machine, tight enough to tell the rendered periods (5 s, 10 s) apart.
        assert all(abs(gap - probe.period_seconds) < 0.3 * probe.period_seconds for gap in gaps), (probe.kind, gaps)
    assert not operator_pod.prober.restart_due()


def test_sigterm_drains_and_exits_0_within_the_grace_period(operator_pod: PodmanPod) -> None:
    """Last in the module: the kubelet's termination, then what the container left behind."""
    started = time.monotonic()
    exit_code = operator_pod.stop()
    took = time.monotonic() - started
    assert exit_code == 0, operator_pod.logs()
    assert took < operator_pod.grace_seconds, f"took {took:.1f}s of a {operator_pod.grace_seconds}s grace period"
    # Over its whole run the root filesystem took no write (read-only), and the /tmp volume stayed within its limit.
    assert operator_pod.changes() == operator_pod.changes_at_start
    used = sum(path.stat().st_size for path in operator_pod.volume_dir("tmp").rglob("*") if path.is_file())
    limit = operator_pod.size_limit("tmp")
    assert limit is not None and used <= limit, (used, limit)
