"""Benchmark: the operator at scale, as ratios against baselines measured in the same run.

1. Fire burst (5 rounds): N CronTriggers (default 1,000) due at one second. Measured: when each Run appears (a watch,
   relative to the nominal fire instant). Baseline: a raw async client creating the same N Runs (`build_run`,
   owned by N real CronTriggers) at concurrency 32, relative to its start. Raw and operator rounds alternate (the
   operator watches only its rounds' namespaces). Printed: first/p50/p99/max of each pair, the ratio of the median
   p99s (target <= 1.25), and, with the bench's own control plane, each process's CPU per Run in each window (the
   machine's cores are shared by all of them, so CPU spent anywhere delays every Run).
2. Apply to Ready: M CronTriggers (default 10,000) in one file. Measured: `kubectl apply -f` wall time, and the time
   until every trigger reports Ready for its generation (a watch). Printed: both and the ratio (target <= 1.5).
3. Footprint once settled: the operator's resident memory (target < 300 MB) and its CPU over an idle window
   (target < 2% of a core).
4. With `--jitter S`: the fire burst of N CronTriggers with `jitterSeconds: 0` and with `jitterSeconds: S`, rounds
   alternating under one operator process. Measured per Run: the lag from its intended instant (the shared fire
   plus its trigger's offset, computed from the trigger's uid as the operator does) and from the nominal instant.
   Printed: p50/p99 of both per round, and the median p50/p99 over the rounds as ratios to the jitter-0 rounds'
   (the baseline). Jitter is for the cluster: it spreads the creates, so lag from the intended instant should fall
   below the burst's while lag from the nominal instant grows by about the offset.

    python -m bench operator_scale [--fire N] [--rounds R] [--ready M] [--idle-seconds S] [--jitter S]
                                   [--jitter-rounds R] [--kubeconfig K]

Other benchmarks reuse ``install_crds``, ``ensure_namespace``, ``watch_until``, ``is_ready``, ``settle``,
``percentiles`` and ``CpuMeter``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.support.controlplane import ControlPlane
from tests.support.operator import OperatorProcess

from stargraph.api.v1alpha1 import GROUP, VERSION
from stargraph.k8s import ApiError, ApiUnavailable, Conflict, KubeClient, load_credentials, path
from stargraph.runs import TriggerObject, build_run
from stargraph.triggers.cron import cron_event
from stargraph.triggers.jitter import jitter_offset
from stargraph.triggers.specs import CronSpec

__all__ = ["CpuMeter", "ensure_namespace", "install_crds", "is_ready", "main", "percentiles", "settle", "watch_until"]

REPO = Path(__file__).resolve().parent.parent
RAW_CONCURRENCY = 32


def _kubectl(kubeconfig: Path, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        ["kubectl", "--kubeconfig", str(kubeconfig), *args], input=stdin, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def install_crds(kubeconfig: Path) -> None:
    """Apply the project's CRDs and wait until every CRD is established."""
    _kubectl(kubeconfig, "apply", "-f", str(REPO / "crds"))
    _kubectl(kubeconfig, "wait", "--for", "condition=established", "--timeout=60s", "crd", "--all")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentiles(values: Sequence[float]) -> tuple[float, float, float, float]:
    """First, p50, p99, last."""
    ordered = sorted(values)
    p = statistics.quantiles(ordered, n=100, method="inclusive")
    return ordered[0], p[49], p[98], ordered[-1]


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds used by each named process (and this bench process) between `start` and `stop`."""

    def __init__(self, pids: Mapping[str, int]) -> None:
        self.pids = dict(pids)
        self._started: dict[str, float] = {}
        self.used: dict[str, float] = {}

    def _now(self) -> dict[str, float]:
        return {"bench": time.process_time()} | {name: _cpu_seconds(pid) for name, pid in self.pids.items()}

    def start(self) -> None:
        self._started = self._now()

    def stop(self) -> None:
        self.used = {name: spent - self._started[name] for name, spent in self._now().items()}

    def per_item(self, count: int) -> str:
        return "  ".join(f"{name} {seconds / count * 1000:.2f}" for name, seconds in sorted(self.used.items()))


async def settle(pid: int, *, timeout: float = 120.0) -> None:
    """Return once the process used under 5% of a core over a second."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = _cpu_seconds(pid)
        await asyncio.sleep(1)
        if _cpu_seconds(pid) - before < 0.05:
            return
    raise RuntimeError(f"process {pid} stayed busy for {timeout:.0f} s")


def _cron_trigger(namespace: str, name: str, schedule: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "CronTrigger",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"schedule": schedule, "runTemplate": {"graph": "bench", "params": {"size": "small"}}, **spec},
    }


async def ensure_namespace(api: KubeClient, name: str) -> None:
    """Create namespace `name` unless it exists; a busy apiserver (timeouts, 429, 5xx) is retried for a minute."""
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    for _ in range(30):
        try:
            await api.create("/api/v1/namespaces", body)
            return
        except Conflict:
            return
        except ApiError as exc:
            if exc.status != 429 and exc.status < 500:
                raise
        except ApiUnavailable:
            pass
        await asyncio.sleep(2)
    raise RuntimeError(f"namespace {name} could not be created")


async def _create_all(api: KubeClient, collection: str, bodies: Sequence[dict[str, Any]]) -> list[float]:
    """POST every body from RAW_CONCURRENCY workers; completion times in seconds since the start."""
    pending = iter(bodies)
    done: list[float] = []
    started = time.perf_counter()

    async def worker() -> None:
        for body in pending:
            await api.create(collection, body)
            done.append(time.perf_counter() - started)

    await asyncio.gather(*(worker() for _ in range(RAW_CONCURRENCY)))
    return done


async def raw_baseline(
    api: KubeClient, namespace: str, count: int, *, fire: datetime, cpu: CpuMeter | None = None
) -> list[float]:
    """The same creates the operator makes: Runs built by `build_run`, owned by real CronTriggers (the
    garbage collector tracks owned objects, which costs the control plane work too). Each Run counts when the
    bench's watch sees it, exactly as in `fire_burst`, relative to the start of the creates."""
    await ensure_namespace(api, namespace)
    triggers = path(group=GROUP, version=VERSION, plural="crontriggers", namespace=namespace)
    await _create_all(api, triggers, [_cron_trigger(namespace, f"raw-{i}", "0 0 1 1 *") for i in range(count)])
    bodies = []
    for item in (await api.list(triggers))["items"]:
        trigger = TriggerObject.from_body(item)
        spec = CronSpec(name=trigger.name, namespace=namespace, schedule="0 0 1 1 *")
        bodies.append(build_run(cron_event(spec, fire), trigger=trigger, source="cron"))
    runs = path(group=GROUP, version=VERSION, plural="runs", namespace=namespace)
    watcher = asyncio.create_task(watch_until(api, runs, count=count, done=lambda _: True, timeout=120))
    await asyncio.sleep(0.5)  # the watch is listed and open before the first create
    started = time.monotonic()
    if cpu:
        cpu.start()
    await _create_all(api, runs, bodies)
    seen = await watcher
    if cpu:
        cpu.stop()
    return [at - started for at in seen.values()]


async def watch_until(api: KubeClient, collection: str, *, count: int, done: Any, timeout: float) -> dict[str, float]:
    """Names → monotonic time at which `done(obj)` first held, until `count` names or `timeout`."""
    seen: dict[str, float] = {}
    for _ in range(50):  # a CRD just established answers 429 "storage is (re)initializing" for a moment
        try:
            listing = await api.list(collection)
            break
        except ApiError as exc:
            if exc.status != 429:
                raise
            await asyncio.sleep(0.2)
    else:
        raise RuntimeError(f"{collection} stayed unavailable (429)")
    now = time.monotonic()
    for item in listing["items"]:
        if done(item):
            seen[item["metadata"]["name"]] = now
    version = listing["metadata"]["resourceVersion"]
    deadline = time.monotonic() + timeout
    while len(seen) < count and time.monotonic() < deadline:
        events = api.watch(
            collection, resource_version=version, timeout_seconds=max(1, int(deadline - time.monotonic()))
        )
        async with contextlib.aclosing(events):
            async for event in events:
                version = event.object.get("metadata", {}).get("resourceVersion", version)
                if event.type in ("ADDED", "MODIFIED") and done(event.object):
                    seen.setdefault(event.object["metadata"]["name"], time.monotonic())
                if len(seen) >= count or time.monotonic() > deadline:
                    break
    return seen


def is_ready(obj: dict[str, Any]) -> bool:
    status = obj.get("status") or {}
    if status.get("observedGeneration") != obj["metadata"].get("generation"):
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or ())


async def fire_burst(
    api: KubeClient,
    kubeconfig: Path,
    namespace: str,
    count: int,
    *,
    cpu: CpuMeter | None = None,
    jitter_seconds: int = 0,
) -> dict[str, float]:
    """Seconds from the shared fire instant until each Run was seen, by Run name."""
    await ensure_namespace(api, namespace)
    fire = (datetime.now(UTC) + timedelta(seconds=45)).replace(microsecond=0)
    schedule = f"{fire.second} {fire.minute} {fire.hour} {fire.day} {fire.month} *"
    extra = {"jitterSeconds": jitter_seconds} if jitter_seconds else {}
    triggers = [_cron_trigger(namespace, f"burst-{i}", schedule, **extra) for i in range(count)]
    collection = path(group=GROUP, version=VERSION, plural="crontriggers", namespace=namespace)
    sem = asyncio.Semaphore(32)

    async def create(body: dict[str, Any]) -> None:
        async with sem:
            await api.create(collection, body)

    await asyncio.gather(*(create(t) for t in triggers))
    ready = await watch_until(api, collection, count=count, done=is_ready, timeout=40)
    if len(ready) < count:
        raise RuntimeError(f"only {len(ready)}/{count} triggers Ready before the fire")
    seconds_to_fire = (fire - datetime.now(UTC)).total_seconds()
    if seconds_to_fire < 1:
        raise RuntimeError("the triggers were not all Ready before their fire instant; raise the margin")
    fire_monotonic = time.monotonic() + seconds_to_fire
    if cpu:
        asyncio.get_running_loop().call_later(seconds_to_fire, cpu.start)
    runs = path(group=GROUP, version=VERSION, plural="runs", namespace=namespace)
    seen = await watch_until(api, runs, count=count, done=lambda _: True, timeout=seconds_to_fire + jitter_seconds + 60)
    if cpu:
        cpu.stop()
    if len(seen) < count:
        raise RuntimeError(f"only {len(seen)}/{count} Runs appeared")
    return {name: at - fire_monotonic for name, at in seen.items()}


async def _offsets(api: KubeClient, namespace: str, jitter_seconds: int) -> dict[str, float]:
    """Each trigger's jitter offset in seconds, by trigger name, from the uid the apiserver gave it."""
    collection = path(group=GROUP, version=VERSION, plural="crontriggers", namespace=namespace)
    return {
        item["metadata"]["name"]: jitter_offset(item["metadata"]["uid"], jitter_seconds=jitter_seconds).total_seconds()
        for item in (await api.list(collection))["items"]
    }


async def apply_to_ready(api: KubeClient, kubeconfig: Path, namespace: str, count: int) -> tuple[float, float]:
    await ensure_namespace(api, namespace)
    manifest = {
        "apiVersion": "v1",
        "kind": "List",
        "items": [_cron_trigger(namespace, f"t-{i}", "0 0 1 1 *") for i in range(count)],
    }
    collection = path(group=GROUP, version=VERSION, plural="crontriggers", namespace=namespace)
    with tempfile.NamedTemporaryFile("w", suffix=".json") as file:
        json.dump(manifest, file)
        file.flush()
        started = time.monotonic()
        watcher = asyncio.create_task(watch_until(api, collection, count=count, done=is_ready, timeout=900))
        applying = await asyncio.create_subprocess_exec(
            "kubectl",
            "--kubeconfig",
            str(kubeconfig),
            "apply",
            "-f",
            file.name,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        _, stderr = await applying.communicate()
        applied = time.monotonic() - started
        if applying.returncode != 0:
            raise RuntimeError(f"kubectl apply failed: {stderr.decode()[-500:]}")
        seen = await watcher
    if len(seen) < count:
        raise RuntimeError(f"only {len(seen)}/{count} triggers became Ready")
    return applied, max(seen.values()) - started


async def _fire_rounds(
    api: KubeClient, kubeconfig: Path, *, fire: int, rounds: int, scratch: Path, pids: Mapping[str, int]
) -> None:
    # Rounds alternate, raw then operator, so both see the machine and the cluster in the same state. The
    # operator watches only its own rounds' namespaces: the raw rounds' triggers are not its business.
    now = datetime.now(UTC).replace(microsecond=0)
    namespaces = [f"bench-fire-{i}" for i in range(rounds)]
    for namespace in namespaces:
        await ensure_namespace(api, namespace)
    watching = [arg for namespace in namespaces for arg in ("--watch-namespace", namespace)]
    raw, burst, cpu = [], [], []
    with OperatorProcess(kubeconfig, scratch, name="burst", extra_args=["--log-level", "WARNING", *watching]) as op:
        for i, namespace in enumerate(namespaces):
            await settle(op.pid)  # the previous burst's status writes and Events are done
            raw_cpu, op_cpu = CpuMeter(pids), CpuMeter({**pids, "operator": op.pid})
            raw.append(percentiles(await raw_baseline(api, f"bench-raw-{i}", fire, fire=now, cpu=raw_cpu)))
            lags = await fire_burst(api, kubeconfig, namespace, fire, cpu=op_cpu)
            burst.append(percentiles(list(lags.values())))
            cpu.append((raw_cpu, op_cpu))
    print(f"fire burst: {fire} CronTriggers due at one instant; seconds until the watch sees each Run")
    for i, ((first, p50, p99, most), (op_first, op50, op99, op_most)) in enumerate(zip(raw, burst, strict=True)):
        print(
            f"  round {i}: raw client first {first:.2f} p50 {p50:.2f} p99 {p99:.2f} max {most:.2f} | "
            f"operator first {op_first:.2f} p50 {op50:.2f} p99 {op99:.2f} max {op_most:.2f} | "
            f"p99 ratio {op99 / p99:.2f}x"
        )
        if pids:
            print(f"    CPU ms per Run, raw:      {cpu[i][0].per_item(fire)}")
            print(f"    CPU ms per Run, operator: {cpu[i][1].per_item(fire)}")
    raw_p99 = statistics.median(p99 for _, _, p99, _ in raw)
    op_p99 = statistics.median(p99 for _, _, p99, _ in burst)
    print(f"  ratio of the median p99s {op_p99 / raw_p99:.2f}x (target <= 1.25x)", flush=True)


async def _jitter_rounds(
    api: KubeClient, kubeconfig: Path, *, fire: int, rounds: int, jitter: int, scratch: Path
) -> None:
    # Rounds alternate, no jitter then jitter, under one operator process watching only their namespaces.
    namespaces = [(f"bench-jitter-{i}-{seconds}", seconds) for i in range(rounds) for seconds in (0, jitter)]
    for namespace, _ in namespaces:
        await ensure_namespace(api, namespace)
    watching = [arg for namespace, _ in namespaces for arg in ("--watch-namespace", namespace)]
    measured: dict[int, list[tuple[tuple[float, float], tuple[float, float]]]] = {0: [], jitter: []}
    print(f"fire burst with jitter: {fire} CronTriggers due at one instant, jitterSeconds 0 and {jitter}")
    print("  seconds until the watch sees each Run, from its intended instant (fire + offset) | from the fire")
    with OperatorProcess(kubeconfig, scratch, name="jitter", extra_args=["--log-level", "WARNING", *watching]) as op:
        for i, (namespace, seconds) in enumerate(namespaces):
            await settle(op.pid)
            lags = await fire_burst(api, kubeconfig, namespace, fire, jitter_seconds=seconds)
            offsets = await _offsets(api, namespace, seconds)
            nominal = list(lags.values())
            intended = [lag - offsets[run.rsplit("-", 1)[0]] for run, lag in lags.items()]
            _, i50, i99, _ = percentiles(intended)
            _, n50, n99, _ = percentiles(nominal)
            measured[seconds].append(((i50, i99), (n50, n99)))
            print(
                f"  round {i // 2} jitterSeconds {seconds:>4}: intended p50 {i50:6.2f} p99 {i99:6.2f} | "
                f"nominal p50 {n50:6.2f} p99 {n99:6.2f}",
                flush=True,
            )

    def median(seconds: int, which: int, quantile: int) -> float:
        return statistics.median(round_[which][quantile] for round_ in measured[seconds])

    base50, base99 = median(0, 0, 0), median(0, 0, 1)
    print(f"  baseline (jitterSeconds 0, median of {rounds} rounds): p50 {base50:.2f} s, p99 {base99:.2f} s")
    for label, which in (("from the intended instant", 0), ("from the nominal instant", 1)):
        p50, p99 = median(jitter, which, 0), median(jitter, which, 1)
        print(
            f"  jitterSeconds {jitter}, {label}: p50 {p50:.2f} s ({p50 / base50:.2f}x), "
            f"p99 {p99:.2f} s ({p99 / base99:.2f}x)",
            flush=True,
        )


async def _run(
    kubeconfig: Path,
    *,
    fire: int,
    rounds: int,
    jitter: int,
    jitter_rounds: int,
    ready: int,
    idle_seconds: float,
    scratch: Path,
    pids: Mapping[str, int],
) -> None:
    install_crds(kubeconfig)
    async with KubeClient(load_credentials(kubeconfig=str(kubeconfig))) as api:
        # Unmeasured warm-up: a new CRD's creates are held for a moment, and connections and caches fill.
        await raw_baseline(api, "bench-warmup", 200, fire=datetime(2000, 1, 1, tzinfo=UTC))
        if rounds:
            await _fire_rounds(api, kubeconfig, fire=fire, rounds=rounds, scratch=scratch, pids=pids)
        if jitter:
            await _jitter_rounds(api, kubeconfig, fire=fire, rounds=jitter_rounds, jitter=jitter, scratch=scratch)
        if not ready:
            return
        # The footprint is measured for exactly the applied triggers: earlier rounds' objects go, and a new
        # operator process starts.
        earlier = ["bench-warmup", *(f"bench-{kind}-{i}" for kind in ("raw", "fire") for i in range(rounds))]
        if jitter:
            earlier += [f"bench-jitter-{i}-{seconds}" for i in range(jitter_rounds) for seconds in (0, jitter)]
        _kubectl(kubeconfig, "delete", "namespace", *earlier, "--wait=true", "--timeout=300s")
        with OperatorProcess(kubeconfig, scratch, name="apply", extra_args=["--log-level", "WARNING"]) as operator:
            applied, all_ready = await apply_to_ready(api, kubeconfig, "bench-ready", ready)
            print(f"apply to Ready: {ready} CronTriggers")
            print(f"  kubectl apply {applied:.1f} s; all Ready after {all_ready:.1f} s")
            print(f"  ratio {all_ready / applied:.2f}x (target <= 1.5x)", flush=True)

            await asyncio.sleep(10)  # let status writes and Events drain before measuring idle
            before = _cpu_seconds(operator.pid)
            await asyncio.sleep(idle_seconds)
            cpu = (_cpu_seconds(operator.pid) - before) / idle_seconds * 100
            print(
                f"settled with {ready} triggers: RSS {_rss_mb(operator.pid):.0f} MB (target < 300), "
                f"idle CPU {cpu:.2f}% of a core over {idle_seconds:.0f} s (target < 2%)"
            )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.operator_scale", description=__doc__.splitlines()[0])
    parser.add_argument("--fire", type=int, default=1000, help="CronTriggers due at one instant")
    parser.add_argument("--rounds", type=int, default=5, help="fire bursts (and raw rounds) measured (0: skip)")
    parser.add_argument("--ready", type=int, default=10000, help="CronTriggers applied in one file (0: skip)")
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    parser.add_argument(
        "--jitter",
        type=int,
        default=0,
        metavar="S",
        help="also burst with jitterSeconds S against jitterSeconds 0 (0: skip)",
    )
    parser.add_argument("--jitter-rounds", type=int, default=3, help="rounds of each, with --jitter")
    parser.add_argument("--kubeconfig", type=Path, help="use this cluster instead of starting a control plane")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as scratch, contextlib.ExitStack() as stack:
        control_plane = None if args.kubeconfig else stack.enter_context(ControlPlane())
        kubeconfig = control_plane.kubeconfig if control_plane else args.kubeconfig
        asyncio.run(
            _run(
                kubeconfig,
                fire=args.fire,
                rounds=args.rounds,
                jitter=args.jitter,
                jitter_rounds=args.jitter_rounds,
                ready=args.ready,
                idle_seconds=args.idle_seconds,
                scratch=Path(scratch),
                pids=control_plane.pids if control_plane else {},
            )
        )


if __name__ == "__main__":
    main(sys.argv[1:])
