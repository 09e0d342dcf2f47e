"""Benchmark: Jobs on a schedule, stargraph against Kubernetes' own CronJob controller, side by side in one run.

One control plane with a KWOK fake node (the Jobs' Pods run nowhere and succeed at once, so thousands of them cost
no containers). First N CronTriggers (default 1,000) on `* * * * *` with a jobTemplate, run by `stargraph
operator`; then N CronJobs on `* * * * *` with the same Job template, run by the controller-manager. Each side gets
the same number of full minutes (default 3) after a warm-up minute; between the sides the controller-manager is
left to work off the first side's Jobs. A watch on the Jobs times each Job from its
nominal minute (stargraph: the Job's `STARGRAPH_SCHEDULED_FIRE`; CronJob: the Job's
`batch.kubernetes.io/cronjob-scheduled-timestamp` annotation) to the moment the watch sees it.

Printed, per side: Jobs created per measured minute (as a share of N), p50/p99/max lag, Jobs completed per minute,
and the CPU seconds and resident memory of the process that schedules (the operator; the controller-manager, which
also runs the Job controller, for both sides). No pass/fail: the figures and their ratios are the result.

    python -m bench jobs_vs_cronjobs [--count N] [--minutes M]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.support.controlplane import ControlPlane
from tests.support.node import KWOK_PLACEMENT, KwokNode
from tests.support.operator import OperatorProcess

from bench.operator_scale import _cpu_seconds, _rss_mb, ensure_namespace, install_crds, percentiles, settle
from stargraph.api.v1alpha1 import GROUP, VERSION
from stargraph.k8s import KubeClient, load_credentials, path

__all__ = ["main"]

CRONJOB_SCHEDULED = "batch.kubernetes.io/cronjob-scheduled-timestamp"
_CREATE_CONCURRENCY = 16


def _job_spec() -> dict[str, Any]:
    """The one Job template both sides use: a Pod on the fake node that succeeds at once."""
    return {
        "backoffLimit": 0,
        "template": {
            "spec": {
                "restartPolicy": "Never",
                "hostNetwork": True,
                "containers": [{"name": "job", "image": "bench.local/job", "imagePullPolicy": "Never"}],
                **KWOK_PLACEMENT,
            }
        },
    }


def _cron_trigger(namespace: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "CronTrigger",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"schedule": "* * * * *", "runTemplate": {"jobTemplate": {"spec": _job_spec()}}},
    }


def _cron_job(namespace: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": _job_spec()}},
    }


def _stargraph_fire(job: Mapping[str, Any]) -> datetime | None:
    for variable in job["spec"]["template"]["spec"]["containers"][0].get("env") or ():
        if variable["name"] == "STARGRAPH_SCHEDULED_FIRE":
            return datetime.fromisoformat(variable["value"])
    return None


def _cronjob_fire(job: Mapping[str, Any]) -> datetime | None:
    stamp = (job["metadata"].get("annotations") or {}).get(CRONJOB_SCHEDULED)
    return datetime.fromisoformat(stamp) if stamp else None


def _complete(job: Mapping[str, Any]) -> bool:
    conditions = (job.get("status") or {}).get("conditions") or ()
    return any(c.get("type") == "Complete" and c.get("status") == "True" for c in conditions)


@dataclass
class JobLog:
    """What the watch saw: each Job's nominal minute and lag, and when Jobs completed."""

    fire_of: Callable[[Mapping[str, Any]], datetime | None]
    lag: dict[str, tuple[datetime, float]] = field(default_factory=dict)
    completed: dict[str, datetime] = field(default_factory=dict)

    def see(self, job: Mapping[str, Any]) -> None:
        name, now = job["metadata"]["name"], datetime.now(UTC)
        fire = self.fire_of(job)
        if fire is not None and name not in self.lag:
            self.lag[name] = (fire, (now - fire).total_seconds())
        if _complete(job):
            self.completed.setdefault(name, now)


async def _watch_jobs(api: KubeClient, namespace: str, log: JobLog, stop: asyncio.Event) -> None:
    jobs = path(group="batch", version="v1", plural="jobs", namespace=namespace)
    version = (await api.list(jobs))["metadata"]["resourceVersion"]
    while not stop.is_set():
        events = api.watch(jobs, resource_version=version, timeout_seconds=30)
        async with contextlib.aclosing(events):
            async for event in events:
                version = event.object.get("metadata", {}).get("resourceVersion", version)
                if event.type in ("ADDED", "MODIFIED"):
                    log.see(event.object)
                if stop.is_set():
                    break


async def _create_all(api: KubeClient, collection: str, bodies: Sequence[dict[str, Any]]) -> None:
    pending = iter(bodies)

    async def worker() -> None:
        for body in pending:
            await api.create(collection, body, decode=False)

    await asyncio.gather(*(worker() for _ in range(_CREATE_CONCURRENCY)))


def _next_minute(after: datetime) -> datetime:
    return after.replace(second=0, microsecond=0) + timedelta(minutes=1)


@dataclass(frozen=True)
class Side:
    name: str
    minutes: list[datetime]
    log: JobLog
    cpu_seconds: float
    rss_mb: float


async def _measure(
    api: KubeClient, *, name: str, namespace: str, log: JobLog, minutes: int, pid: int, warmup: datetime
) -> Side:
    """Watch `namespace`'s Jobs through the minute of `warmup` and `minutes` full minutes after it."""
    stop = asyncio.Event()
    watcher = asyncio.create_task(_watch_jobs(api, namespace, log, stop))
    first = warmup + timedelta(minutes=1)
    measured = [first + timedelta(minutes=i) for i in range(minutes)]
    await asyncio.sleep(max(0.0, (first - datetime.now(UTC)).total_seconds()))
    cpu_before = _cpu_seconds(pid)
    # A minute's Jobs are counted once that minute and the next have passed (CronJob's lag can be that long).
    await asyncio.sleep(max(0.0, (measured[-1] + timedelta(minutes=2) - datetime.now(UTC)).total_seconds()))
    cpu = _cpu_seconds(pid) - cpu_before
    rss = _rss_mb(pid)
    stop.set()
    watcher.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watcher
    return Side(name=name, minutes=measured, log=log, cpu_seconds=cpu, rss_mb=rss)


def _report(side: Side, count: int) -> dict[str, float]:
    per_minute = Counter(fire for fire, _ in side.log.lag.values())
    created = [per_minute.get(minute, 0) for minute in side.minutes]
    lags = [lag for fire, lag in side.log.lag.values() if fire in side.minutes]
    completed = Counter(
        at.replace(second=0, microsecond=0) for at in side.log.completed.values()
    )  # by the minute they completed in
    done = [completed.get(minute, 0) for minute in side.minutes]
    _, p50, p99, worst = percentiles(lags) if len(lags) >= 2 else (0.0, 0.0, 0.0, 0.0)
    share = sum(created) / (count * len(side.minutes)) * 100
    print(f"{side.name}:")
    print(f"  Jobs created per minute: {created} of {count} ({share:.1f}%)")
    print(f"  lag from the nominal minute to the watch: p50 {p50:.2f} s, p99 {p99:.2f} s, max {worst:.2f} s")
    print(f"  Jobs completed per minute: {done}")
    print(f"  scheduler process: {side.cpu_seconds:.1f} CPU s over the window, RSS {side.rss_mb:.0f} MB", flush=True)
    return {"share": share, "p99": p99}


async def _stargraph_side(cp: ControlPlane, api: KubeClient, *, count: int, minutes: int, scratch: Path) -> Side:
    await ensure_namespace(api, "bench-stargraph")
    watch_only = ["--watch-namespace", "bench-stargraph", "--log-level", "WARNING"]
    with OperatorProcess(cp.kubeconfig, scratch, name="jobs", extra_args=watch_only) as operator:
        triggers = path(group=GROUP, version=VERSION, plural="crontriggers", namespace="bench-stargraph")
        await _create_all(api, triggers, [_cron_trigger("bench-stargraph", f"t{i}") for i in range(count)])
        warmup = _next_minute(datetime.now(UTC))
        side = await _measure(
            api, name="stargraph (operator)", namespace="bench-stargraph", log=JobLog(_stargraph_fire),
            minutes=minutes, pid=operator.pid, warmup=warmup,
        )  # fmt: skip
        for i in range(count):  # stop firing before the other side is measured
            await api.patch(f"{triggers}/t{i}", {"spec": {"suspend": True}})
    # The controller-manager works off this side's Jobs (Pods, completions, garbage) before the other begins.
    await settle(cp.pids["kube-controller-manager"], timeout=600)
    return side


async def _cronjob_side(cp: ControlPlane, api: KubeClient, *, count: int, minutes: int) -> Side:
    await ensure_namespace(api, "bench-cronjob")
    cronjobs = path(group="batch", version="v1", plural="cronjobs", namespace="bench-cronjob")
    await _create_all(api, cronjobs, [_cron_job("bench-cronjob", f"c{i}") for i in range(count)])
    warmup = _next_minute(datetime.now(UTC))
    return await _measure(
        api, name="CronJob (controller-manager)", namespace="bench-cronjob", log=JobLog(_cronjob_fire),
        minutes=minutes, pid=cp.pids["kube-controller-manager"], warmup=warmup,
    )  # fmt: skip


async def _run(cp: ControlPlane, *, count: int, minutes: int, scratch: Path, sides: Sequence[str]) -> None:
    install_crds(cp.kubeconfig)
    async with KubeClient(load_credentials(kubeconfig=str(cp.kubeconfig))) as api:
        ours = (
            await _stargraph_side(cp, api, count=count, minutes=minutes, scratch=scratch)
            if "stargraph" in sides
            else None
        )
        theirs = await _cronjob_side(cp, api, count=count, minutes=minutes) if "cronjob" in sides else None
    print(f"== {count} schedules on '* * * * *', {minutes} measured minutes each")
    figures = [_report(side, count) for side in (ours, theirs) if side is not None]
    if len(figures) == 2 and figures[0]["p99"] > 0:
        print(f"ratio of p99 lag, CronJob / stargraph: {figures[1]['p99'] / figures[0]['p99']:.1f}x (goal >= 20x)")
        print(f"share of Jobs created: stargraph {figures[0]['share']:.1f}%, CronJob {figures[1]['share']:.1f}%")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench jobs_vs_cronjobs", description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000, help="schedules on each side")
    parser.add_argument("--minutes", type=int, default=3, help="measured minutes on each side")
    parser.add_argument(
        "--sides", default="stargraph,cronjob", help="which to measure, comma-separated (both: the comparison)"
    )
    args = parser.parse_args(argv)
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as scratch, ControlPlane() as cp, KwokNode(cp):
        asyncio.run(
            _run(cp, count=args.count, minutes=args.minutes, scratch=Path(scratch), sides=args.sides.split(","))
        )
    print(f"(bench took {time.monotonic() - started:.0f} s)")
