"""How fast kube-apiserver alone creates a small, Run-shaped custom resource: the ceiling for the operator.

Creates ``--count`` BenchRun objects at each ``--concurrency`` over one aiohttp session (admin client cert over
TLS) and prints objects/s and p50/p99 latency per round. Starts its own ControlPlane unless ``--kubeconfig``
names a cluster (which must authenticate with a client certificate).

    python -m bench.raw_create [--count 1000] [--concurrency 1 8 32] [--kubeconfig PATH]

On a 2-core machine the concurrent rounds are CPU-bound (kube-apiserver ~1.2 cores, etcd ~0.35, this client
~0.2), so anything else running on the machine shows directly in the figures.

Other benchmarks reuse ``ApiTarget``, ``install_crd``, ``measure_raw_creates`` and ``delete_all``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import ssl
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from tests.support.controlplane import ControlPlane, kubeconfig_context
from tests.support.crds import namespaced_crd

__all__ = [
    "BENCH_RUN",
    "ApiTarget",
    "CreateStats",
    "CustomResource",
    "delete_all",
    "ensure_namespace",
    "install_crd",
    "main",
    "measure_raw_creates",
]

FIELD_MANAGER = "stargraph-bench"
APPLY = {"Content-Type": "application/apply-patch+yaml"}
JSON = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class CustomResource:
    group: str
    version: str
    plural: str
    kind: str

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{self.group}"

    def collection(self, namespace: str) -> str:
        return f"/apis/{self.group}/{self.version}/namespaces/{namespace}/{self.plural}"


BENCH_RUN = CustomResource(group="bench.stargraph.io", version="v1", plural="benchruns", kind="BenchRun")


@dataclass(frozen=True)
class ApiTarget:
    """Where and as whom to connect: the apiserver URL and PEM files for its CA and a client certificate."""

    server: str
    ca_file: Path
    cert_file: Path
    key_file: Path

    @classmethod
    def from_control_plane(cls, cp: ControlPlane) -> ApiTarget:
        return cls(cp.server, cp.ca_file, cp.admin_cert_file, cp.admin_key_file)

    @classmethod
    def from_kubeconfig(cls, kubeconfig: Path, scratch: Path) -> ApiTarget:
        """Read the current context; embedded ``*-data`` is written to files in ``scratch`` for ``ssl``."""
        cluster, user = kubeconfig_context(kubeconfig)

        def pem_file(entry: dict[str, Any], key: str) -> Path:
            if f"{key}-data" in entry:
                path = scratch / key
                path.write_bytes(base64.b64decode(entry[f"{key}-data"]))
                return path
            if key in entry:
                return Path(entry[key])
            raise SystemExit(f"{kubeconfig}: the current context has no {key}; a client certificate is needed")

        return cls(
            cluster["server"],
            pem_file(cluster, "certificate-authority"),
            pem_file(user, "client-certificate"),
            pem_file(user, "client-key"),
        )

    def session(self, *, connections: int) -> aiohttp.ClientSession:
        """One session with at most ``connections`` keep-alive connections; close it when done."""
        context = ssl.create_default_context(cafile=str(self.ca_file))
        context.load_cert_chain(str(self.cert_file), str(self.key_file))
        return aiohttp.ClientSession(
            base_url=self.server, connector=aiohttp.TCPConnector(ssl=context, limit=connections)
        )


@dataclass(frozen=True)
class CreateStats:
    count: int
    concurrency: int
    seconds: float
    latencies: tuple[float, ...]

    @property
    def per_second(self) -> float:
        return self.count / self.seconds

    def percentile_ms(self, percent: int) -> float:
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[percent - 1] * 1000


def crd_manifest(resource: CustomResource) -> dict[str, Any]:
    """A CRD shaped like the product's future Run: a few string fields in spec, a status subresource."""
    spec = {
        "type": "object",
        "properties": {field: {"type": "string"} for field in ("trigger", "triggerKind", "scheduledTime", "reason")},
    }
    return namespaced_crd(
        group=resource.group, version=resource.version, kind=resource.kind, plural=resource.plural, spec=spec
    )


def run_object(resource: CustomResource, name: str) -> dict[str, Any]:
    scheduled = "2026-01-01T00:00:00Z"
    return {
        "apiVersion": f"{resource.group}/{resource.version}",
        "kind": resource.kind,
        "metadata": {
            "name": name,
            "labels": {"stargraph.io/trigger": "nightly"},
            "annotations": {
                "stargraph.io/idempotency-key": f"cron/nightly/{scheduled}/{name}",
                "stargraph.io/scheduled-time": scheduled,
            },
        },
        "spec": {"trigger": "nightly", "triggerKind": "CronTrigger", "scheduledTime": scheduled, "reason": "schedule"},
    }


async def _check(response: aiohttp.ClientResponse, *expected: int) -> None:
    if response.status not in expected:
        raise RuntimeError(f"{response.method} {response.url}: {response.status} {await response.text()}")
    await response.read()


async def _apply(session: aiohttp.ClientSession, path: str, manifest: dict[str, Any]) -> None:
    # Server-side apply is idempotent, so a cluster that already has the object is fine.
    params = {"fieldManager": FIELD_MANAGER, "force": "true"}
    async with session.patch(path, params=params, data=json.dumps(manifest), headers=APPLY) as response:
        await _check(response, 200, 201)


async def ensure_namespace(session: aiohttp.ClientSession, namespace: str) -> None:
    manifest = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
    await _apply(session, f"/api/v1/namespaces/{namespace}", manifest)


async def install_crd(session: aiohttp.ClientSession, resource: CustomResource, *, timeout: float = 30) -> None:
    """Apply the CRD for ``resource`` and wait until it is established."""
    path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{resource.crd_name}"
    await _apply(session, path, crd_manifest(resource))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        async with session.get(path) as response:
            await _check(response, 200)
            conditions = ((await response.json()).get("status") or {}).get("conditions") or []
        if any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"CRD {resource.crd_name} not established after {timeout:g}s")


async def delete_all(session: aiohttp.ClientSession, resource: CustomResource, namespace: str) -> None:
    async with session.delete(resource.collection(namespace)) as response:
        await _check(response, 200)


async def measure_raw_creates(
    *,
    session: aiohttp.ClientSession,
    namespace: str,
    count: int,
    concurrency: int,
    resource: CustomResource = BENCH_RUN,
    name_prefix: str = "bench",
) -> CreateStats:
    """POST ``count`` objects named ``<name_prefix>-<i>`` from ``concurrency`` workers; time each request."""
    path = resource.collection(namespace)
    # Encoded up front so the timings measure the apiserver, not json.dumps.
    bodies = iter([json.dumps(run_object(resource, f"{name_prefix}-{i}")) for i in range(count)])
    latencies: list[float] = []

    async def worker() -> None:
        for body in bodies:  # shared iterator: each body is taken by exactly one worker
            started = time.perf_counter()
            async with session.post(path, data=body, headers=JSON) as response:
                await _check(response, 201)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    async with asyncio.TaskGroup() as workers:
        for _ in range(concurrency):
            workers.create_task(worker())
    return CreateStats(count, concurrency, time.perf_counter() - started, tuple(latencies))


async def _run(target: ApiTarget, *, namespace: str, count: int, concurrencies: Sequence[int], warmup: int) -> None:
    async with target.session(connections=max(concurrencies)) as session:
        await ensure_namespace(session, namespace)
        await install_crd(session, BENCH_RUN)
        # Not measured: the apiserver holds creates for 2 s after a CRD is established, and this also opens
        # the connections and fills the apiserver's caches.
        await measure_raw_creates(
            session=session, namespace=namespace, count=warmup, concurrency=max(concurrencies), name_prefix="warmup"
        )
        await delete_all(session, BENCH_RUN, namespace)
        print(f"raw_create: {count} {BENCH_RUN.kind} creates per round against {target.server}")
        print(f"{'concurrency':>11} {'objects/s':>10} {'p50 ms':>8} {'p99 ms':>8}")
        for concurrency in concurrencies:
            stats = await measure_raw_creates(
                session=session,
                namespace=namespace,
                count=count,
                concurrency=concurrency,
                name_prefix=f"c{concurrency}",
            )
            # Emptied between rounds so each round writes into the same amount of stored data.
            await delete_all(session, BENCH_RUN, namespace)
            print(
                f"{concurrency:>11} {stats.per_second:>10.0f} {stats.percentile_ms(50):>8.1f}"
                f" {stats.percentile_ms(99):>8.1f}",
                flush=True,
            )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.raw_create", description="Raw create throughput of a Run-shaped custom resource."
    )
    parser.add_argument("--count", type=int, default=1000, help="objects per round (default 1000)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32], help="rounds (default 1 8 32)")
    parser.add_argument("--warmup", type=int, default=200, help="unmeasured creates before the rounds")
    parser.add_argument("--namespace", default="stargraph-bench")
    parser.add_argument("--kubeconfig", type=Path, help="use this cluster instead of starting a control plane")
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        if args.kubeconfig:
            scratch = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            target = ApiTarget.from_kubeconfig(args.kubeconfig, scratch)
        else:
            # Started here, in the main thread: its processes die with the thread that started them.
            target = ApiTarget.from_control_plane(stack.enter_context(ControlPlane()))
        asyncio.run(
            _run(target, namespace=args.namespace, count=args.count, concurrencies=args.concurrency, warmup=args.warmup)
        )


if __name__ == "__main__":
    main(sys.argv[1:])
