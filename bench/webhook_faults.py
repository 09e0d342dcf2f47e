"""Benchmark: load held under faults. Signed webhook deliveries through the operator, against raw Run creates, and
through a kube-apiserver restart.

1. Load (``--rounds``, default 2): ``--concurrency`` (32) senders post signed deliveries, each body different, to
   a real ``stargraph operator`` for ``--seconds`` (60). The baseline, in alternating rounds of the same length and
   concurrency, is the project's own KubeClient (admin) creating the same Runs: ``build_run`` for the event each
   delivery would make, owned by an identical WebhookTrigger that the operator does not watch. Every round has a
   namespace of its own, and its Runs/s are the Runs listed there afterwards over the round's length. Printed per
   round: Runs/s and p50/p99 request latency of both, and each process's CPU per Run (the cores are shared); then
   the ratios operator/raw of the medians (goals: Runs/s >= 0.7x, p99 <= 2x). An unmeasured warm-up pair of
   rounds comes first.
2. Outage: one more operator round with kube-apiserver killed for ``--outage`` seconds (5) in its middle, then
   restarted on the same port and etcd data. The senders behave as a webhook sender does: new deliveries keep
   coming, and one answered 503 is sent again after its ``Retry-After`` (a lost connection after a second), for up
   to a minute, without holding one of the ``--concurrency`` request slots while it waits. Printed: every
   answer by kind (2xx, 503 with and without ``Retry-After``, other statuses, connection errors), 2xx answers whose
   Run is not in the apiserver, idempotency keys with more than one Run, and the deliveries answered 503 that a
   retry then got their Run (200/201).

Figures only, no verdict: it exits non-zero only when it could not run. All traffic stays on 127.0.0.1.

    python -m bench webhook_faults [--seconds 60] [--rounds 2] [--concurrency 32] [--outage 5]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from tests.support.controlplane import ControlPlane
from tests.support.operator import OperatorProcess

from bench.operator_scale import CpuMeter, ensure_namespace, install_crds, is_ready, percentiles, settle, watch_until
from stargraph.api.v1alpha1 import GROUP, VERSION
from stargraph.fires.event import TriggerEvent
from stargraph.fires.keys import body_sha256, trigger_id, webhook_idempotency_key
from stargraph.k8s import KubeClient, load_credentials, path
from stargraph.runs import ANNOTATION_IDEMPOTENCY_KEY, TriggerObject, build_run
from stargraph.runs.kube_sink import runs_path
from stargraph.triggers.signatures import SignatureScheme, parse_secret, sign

__all__ = ["main"]

TRIGGER = "hooks"
SECRET = "bench-webhook-secret"
KEY = parse_secret(SignatureScheme.HMAC_SHA256, SECRET)
RETRY_WINDOW = 60.0
"""How long after its first attempt a delivery is still sent again."""
MAX_ATTEMPTS = 20
CONNECTION_RETRY = 1.0
"""Seconds before sending again when there is no Retry-After to honour (a lost connection, a 503 without it)."""
REQUEST_TIMEOUT = 30.0
WARMUP_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class Load:
    seconds: float
    concurrency: int


@dataclass(frozen=True, slots=True)
class Answer:
    """One answer to one attempt at a delivery; ``status`` is None for a connection error or timeout (``error``)."""

    delivery: int
    status: int | None
    seconds: float
    retry_after: str | None = None
    run: str | None = None
    """The Run named in a 2xx body."""
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def pause(self) -> float | None:
        """Seconds to wait before sending the delivery again; None when this answer is final."""
        if self.status is None:
            return CONNECTION_RETRY
        if self.status != 503:
            return None
        return float(self.retry_after) if self.retry_after and self.retry_after.isdigit() else CONNECTION_RETRY


@dataclass(frozen=True, slots=True)
class Round:
    """What a round left behind: its length, each request's latency and (operator rounds) every answer."""

    seconds: float
    latencies: tuple[float, ...]
    answers: tuple[Answer, ...] = ()


@dataclass(frozen=True, slots=True)
class Plan:
    """A namespace per round: a warm-up pair, ``rounds`` pairs of (raw, operator), one for the outage round."""

    rounds: int
    outage: str = "bench-hooks-outage"

    def pairs(self) -> list[tuple[str, str]]:
        labels = ["warmup", *map(str, range(self.rounds))]
        return [(f"bench-hooks-raw-{label}", f"bench-hooks-op-{label}") for label in labels]

    def watched(self) -> list[str]:
        """What the operator watches: its own rounds' namespaces, never the raw ones."""
        return [*(operator for _, operator in self.pairs()), self.outage]

    def namespaces(self) -> list[str]:
        return [*itertools.chain.from_iterable(self.pairs()), self.outage]


def _delivery_body(tag: str, number: int) -> bytes:
    return json.dumps({"delivery": f"{tag}-{number}", "ref": "refs/heads/main", "after": f"{number:040x}"}).encode()


def _delivery_run(trigger: TriggerObject, body: bytes) -> dict[str, Any]:
    """The Run the operator creates for delivery ``body``: the event its webhook trigger makes, through build_run."""
    hook = trigger_id("webhook", trigger.namespace, trigger.name)
    digest = body_sha256(body)
    event = TriggerEvent(
        trigger_id=hook,
        scheduled_fire=datetime.now(UTC),
        idempotency_key=webhook_idempotency_key(hook, digest),
        payload={"delivery": {"id": None, "bodySha256": digest}},
    )
    return build_run(event, trigger=trigger, source="webhook")


async def _for_seconds(load: Load, send: Callable[[int], Awaitable[None]]) -> float:
    """``send(n)``, each n once, from ``load.concurrency`` workers until ``load.seconds`` have passed; the time
    until the last one finished."""
    numbers = itertools.count()
    deadline = time.monotonic() + load.seconds

    async def worker() -> None:
        while time.monotonic() < deadline:
            await send(next(numbers))

    started = time.monotonic()
    async with asyncio.TaskGroup() as workers:
        for _ in range(load.concurrency):
            workers.create_task(worker())
    return time.monotonic() - started


async def raw_round(api: KubeClient, trigger: TriggerObject, load: Load) -> Round:
    """The operator's creates without the operator: the same Run bodies POSTed by an admin KubeClient."""
    collection = runs_path(trigger.namespace)
    latencies: list[float] = []

    async def send(number: int) -> None:
        run = _delivery_run(trigger, _delivery_body(trigger.namespace, number))
        started = time.perf_counter()
        await api.create(collection, run, decode=False)
        latencies.append(time.perf_counter() - started)

    return Round(await _for_seconds(load, send), tuple(latencies))


async def _post(session: aiohttp.ClientSession, url: str, body: bytes, delivery: int) -> Answer:
    headers = {"content-type": "application/json", **sign(scheme=SignatureScheme.HMAC_SHA256, key=KEY, body=body)}
    started = time.perf_counter()
    try:
        async with session.post(url, data=body, headers=headers) as response:
            payload = await response.read()
    except (aiohttp.ClientError, TimeoutError) as exc:
        return Answer(delivery, None, time.perf_counter() - started, error=type(exc).__name__)
    seconds = time.perf_counter() - started
    run = (json.loads(payload).get("run") or {}).get("name") if 200 <= response.status < 300 else None
    return Answer(delivery, response.status, seconds, retry_after=response.headers.get("retry-after"), run=run)


class Sender:
    """Deliveries to ``url`` as a webhook sender makes them: at most as many requests in flight as ``slots`` allows,
    new deliveries never wait for old ones, and a delivery whose answer asks for a retry (``Answer.pause``) waits
    without holding a slot, then is sent again (a task in ``retries``), for up to RETRY_WINDOW seconds and
    MAX_ATTEMPTS attempts."""

    def __init__(
        self, session: aiohttp.ClientSession, url: str, *, slots: asyncio.Semaphore, retries: asyncio.TaskGroup
    ) -> None:
        self._session = session
        self._url = url
        self._slots = slots
        self._retries = retries
        self.answers: list[Answer] = []

    async def send(self, body: bytes, delivery: int) -> None:
        pause = await self._attempt(body, delivery)
        if pause is not None:
            self._retries.create_task(self._again(body, delivery, pause))

    async def _attempt(self, body: bytes, delivery: int) -> float | None:
        async with self._slots:
            answer = await _post(self._session, self._url, body, delivery)
        self.answers.append(answer)
        return answer.pause()

    async def _again(self, body: bytes, delivery: int, pause: float) -> None:
        given_up = time.monotonic() + RETRY_WINDOW
        for _ in range(MAX_ATTEMPTS - 1):
            if time.monotonic() + pause > given_up:
                return
            await asyncio.sleep(pause)
            if (later := await self._attempt(body, delivery)) is None:
                return
            pause = later


async def operator_round(url: str, *, tag: str, load: Load) -> Round:
    """Signed deliveries to ``url``, each body different (``tag`` and a number), as ``load`` says; the round lasts
    until the last retry is answered."""
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    started = time.monotonic()
    async with aiohttp.ClientSession(timeout=timeout) as session, asyncio.TaskGroup() as retries:
        sender = Sender(session, url, slots=asyncio.Semaphore(load.concurrency), retries=retries)
        await _for_seconds(load, lambda number: sender.send(_delivery_body(tag, number), number))
    answers = tuple(sender.answers)
    return Round(time.monotonic() - started, tuple(answer.seconds for answer in answers), answers)


async def list_runs(api: KubeClient, namespace: str) -> list[dict[str, Any]]:
    """Every Run in ``namespace``, metadata only, a page at a time."""
    items: list[dict[str, Any]] = []
    params: dict[str, str | int] = {"limit": 2000}
    for _ in range(10_000):
        page = await api.list(runs_path(namespace), params=params, metadata_only=True)
        items.extend(page["items"])
        if not page["metadata"].get("continue"):
            return items
        params["continue"] = page["metadata"]["continue"]
    raise RuntimeError(f"listing the Runs in {namespace} did not end")


async def _create_trigger(api: KubeClient, namespace: str) -> TriggerObject:
    """Namespace ``namespace`` with a Secret and a WebhookTrigger that verifies deliveries with it."""
    await ensure_namespace(api, namespace)
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": TRIGGER}, "stringData": {"secret": SECRET}}
    await api.create(path(group="", version="v1", plural="secrets", namespace=namespace), secret)
    trigger = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "WebhookTrigger",
        "metadata": {"name": TRIGGER},
        "spec": {
            "secretRef": {"name": TRIGGER, "keys": ["secret"]},
            "runTemplate": {"graph": "bench", "params": {"size": "small"}},
        },
    }
    collection = path(group=GROUP, version=VERSION, plural="webhooktriggers", namespace=namespace)
    return TriggerObject.from_body(await api.create(collection, trigger))


async def _wait_armed(api: KubeClient, namespaces: Sequence[str]) -> None:
    for namespace in namespaces:
        collection = path(group=GROUP, version=VERSION, plural="webhooktriggers", namespace=namespace)
        if not await watch_until(api, collection, count=1, done=is_ready, timeout=60):
            raise RuntimeError(f"the WebhookTrigger in {namespace} did not become Ready")


def _hook_url(op: OperatorProcess, namespace: str) -> str:
    return f"{op.url}/v1/hooks/{namespace}/{TRIGGER}"


def _not_2xx(answers: Sequence[Answer]) -> str:
    """The answers that are not 2xx by status or error, e.g. `` (503 x3, ServerDisconnectedError x1)``; or ``""``."""
    kinds = Counter(a.error if a.status is None else str(a.status) for a in answers if not a.ok)
    return f" ({', '.join(f'{kind} x{n}' for kind, n in sorted(kinds.items(), key=str))})" if kinds else ""


@dataclass(frozen=True, slots=True)
class Measured:
    """A round, the Runs it left in the apiserver and the CPU each process spent during it."""

    round: Round
    runs: int
    cpu: CpuMeter

    @property
    def rate(self) -> float:
        return self.runs / self.round.seconds

    @property
    def p99_ms(self) -> float:
        return percentiles(self.round.latencies)[2] * 1000

    def summary(self) -> str:
        _, p50, p99, _ = percentiles(self.round.latencies)
        return f"{self.rate:.0f} Runs/s p50 {p50 * 1000:.0f} ms p99 {p99 * 1000:.0f} ms"


async def _measure(api: KubeClient, namespace: str, cpu: CpuMeter, measuring: Awaitable[Round]) -> Measured:
    cpu.start()
    done = await measuring
    cpu.stop()
    return Measured(done, len(await list_runs(api, namespace)), cpu)


async def _pair(
    api: KubeClient,
    op: OperatorProcess,
    triggers: Mapping[str, TriggerObject],
    *,
    pair: tuple[str, str],
    load: Load,
    pids: Mapping[str, int],
) -> tuple[Measured, Measured]:
    """A raw round, then an operator round, each after the operator has settled (its status writes are done)."""
    raw_namespace, op_namespace = pair
    await settle(op.pid)
    raw = await _measure(api, raw_namespace, CpuMeter(pids), raw_round(api, triggers[raw_namespace], load))
    await settle(op.pid)
    hooks = operator_round(_hook_url(op, op_namespace), tag=op_namespace, load=load)
    return raw, await _measure(api, op_namespace, CpuMeter(pids), hooks)


async def load_rounds(
    api: KubeClient,
    op: OperatorProcess,
    triggers: Mapping[str, TriggerObject],
    *,
    plan: Plan,
    load: Load,
    pids: Mapping[str, int],
) -> None:
    """Raw and operator rounds, alternating, after a short warm-up pair; prints each pair and the medians' ratios.

    ``pids`` names the processes whose CPU per Run is printed (this one is always included)."""
    warmup, *measured = plan.pairs()
    short = Load(min(load.seconds, WARMUP_SECONDS), load.concurrency)
    await _pair(api, op, triggers, pair=warmup, load=short, pids=pids)
    print(f"webhook deliveries, concurrency {load.concurrency}, {load.seconds:g} s rounds (Runs/s: Runs listed after)")
    pairs = []
    for i, namespaces in enumerate(measured):
        raw, hooks = await _pair(api, op, triggers, pair=namespaces, load=load, pids=pids)
        print(
            f"  round {i}: raw {raw.summary()} | operator {hooks.summary()} | ratios {hooks.rate / raw.rate:.2f}x"
            f" Runs/s, {hooks.p99_ms / raw.p99_ms:.2f}x p99{_not_2xx(hooks.round.answers)}"
        )
        print(f"    CPU ms per Run, raw:      {raw.cpu.per_item(raw.runs)}")
        print(f"    CPU ms per Run, operator: {hooks.cpu.per_item(hooks.runs)}", flush=True)
        pairs.append((raw, hooks))
    rates = statistics.median(h.rate for _, h in pairs) / statistics.median(r.rate for r, _ in pairs)
    p99s = statistics.median(h.p99_ms for _, h in pairs) / statistics.median(r.p99_ms for r, _ in pairs)
    print(f"  medians: Runs/s {rates:.2f}x of raw (goal >= 0.7x), p99 {p99s:.2f}x of raw (goal <= 2x)", flush=True)


def outage_round(cp: ControlPlane, url: str, *, tag: str, load: Load, outage: float) -> tuple[Round, float, float]:
    """An operator round with kube-apiserver down for ``outage`` seconds in its middle: the round, and when (seconds
    into it) the apiserver was killed and when it was ready again.

    The restarted kube-apiserver dies with the thread that starts it, so this (main) thread restarts it and the
    senders run in a thread of their own.
    """
    with ThreadPoolExecutor(max_workers=1) as senders:
        started = time.monotonic()
        sending = senders.submit(asyncio.run, operator_round(url, tag=tag, load=load))
        time.sleep(max(0.0, (load.seconds - outage) / 2))
        down_at = time.monotonic() - started
        with cp.apiserver_down():
            time.sleep(outage)
        back_at = time.monotonic() - started
        return sending.result(), down_at, back_at


def _answers_line(answers: Sequence[Answer]) -> str:
    unavailable = [a for a in answers if a.status == 503]
    others = [a for a in answers if a.status is not None and not a.ok and a.status != 503]
    lost = [a for a in answers if a.status is None]
    other_5xx = sum(1 for a in others if (a.status or 0) >= 500)
    with_retry_after = sum(1 for a in unavailable if a.retry_after is not None)
    return (
        f"answers: 2xx {sum(1 for a in answers if a.ok)}, 503 {len(unavailable)} ({with_retry_after} with"
        f" Retry-After), other statuses {len(others)}{_not_2xx(others)} (5xx other than 503: {other_5xx}),"
        f" connection errors {len(lost)}{_not_2xx(lost)}"
    )


def _runs_line(answers: Sequence[Answer], runs: Sequence[Mapping[str, Any]]) -> str:
    names = {run["metadata"]["name"] for run in runs}
    per_key = Counter((run["metadata"].get("annotations") or {}).get(ANNOTATION_IDEMPOTENCY_KEY) for run in runs)
    missing = sum(1 for a in answers if a.ok and a.run not in names)
    twice = sum(1 for n in per_key.values() if n > 1)
    return f"Runs listed {len(runs)}; 2xx without their Run {missing}; idempotency keys with more than one Run {twice}"


def _retries_line(answers: Sequence[Answer]) -> str:
    by_delivery: dict[int, list[Answer]] = {}
    for answer in answers:
        by_delivery.setdefault(answer.delivery, []).append(answer)
    got_503 = [tries for tries in by_delivery.values() if any(a.status == 503 for a in tries)]
    retried_to_run = sum(1 for tries in got_503 if tries[-1].status in (200, 201))
    never = sum(1 for tries in by_delivery.values() if not tries[-1].ok)
    return (
        f"deliveries {len(by_delivery)}: answered 503 {len(got_503)}, of which a retry then got 200/201"
        f" {retried_to_run}; never answered 2xx {never}"
    )


def report_outage(hooks: Round, runs: Sequence[Mapping[str, Any]]) -> None:
    _, p50, p99, most = percentiles(hooks.latencies)
    print(f"  {_answers_line(hooks.answers)}")
    print(f"  {_runs_line(hooks.answers, runs)}")
    print(f"  {_retries_line(hooks.answers)}")
    print(f"  latency of every answer: p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, max {most:.1f} s", flush=True)


async def _prepare(kubeconfig: Path, plan: Plan) -> dict[str, TriggerObject]:
    async with KubeClient(load_credentials(kubeconfig=str(kubeconfig))) as api:
        return {namespace: await _create_trigger(api, namespace) for namespace in plan.namespaces()}


async def _load(
    cp: ControlPlane, op: OperatorProcess, triggers: Mapping[str, TriggerObject], *, plan: Plan, load: Load
) -> None:
    async with KubeClient(load_credentials(kubeconfig=str(cp.kubeconfig))) as api:
        await _wait_armed(api, plan.watched())
        pids = {**cp.pids, "operator": op.pid}
        await load_rounds(api, op, triggers, plan=plan, load=load, pids=pids)
        await settle(op.pid)


async def _outage_runs(kubeconfig: Path, namespace: str) -> list[dict[str, Any]]:
    async with KubeClient(load_credentials(kubeconfig=str(kubeconfig))) as api:
        return await list_runs(api, namespace)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench webhook_faults", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each measured round (default 60)")
    parser.add_argument("--rounds", type=int, default=2, help="raw and operator rounds, alternating (default 2)")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--outage", type=float, default=5.0, help="seconds kube-apiserver is down (default 5)")
    args = parser.parse_args(argv)
    load, plan = Load(args.seconds, args.concurrency), Plan(args.rounds)

    with tempfile.TemporaryDirectory() as scratch, ControlPlane() as cp:
        install_crds(cp.kubeconfig)
        triggers = asyncio.run(_prepare(cp.kubeconfig, plan))
        watching = [arg for namespace in plan.watched() for arg in ("--watch-namespace", namespace)]
        extra_args = ["--log-level", "WARNING", *watching]
        with OperatorProcess(cp.kubeconfig, Path(scratch), name="webhook-faults", extra_args=extra_args) as op:
            asyncio.run(_load(cp, op, triggers, plan=plan, load=load))
            url = _hook_url(op, plan.outage)
            hooks, down_at, back_at = outage_round(cp, url, tag=plan.outage, load=load, outage=args.outage)
            runs = asyncio.run(_outage_runs(cp.kubeconfig, plan.outage))
    print(
        f"kube-apiserver killed {down_at:.1f} s into a {hooks.seconds:.1f} s operator round, ready again at"
        f" {back_at:.1f} s; senders retry 503 after Retry-After for up to {RETRY_WINDOW:g} s"
    )
    report_outage(hooks, runs)


if __name__ == "__main__":
    main(sys.argv[1:])
