"""`create_operator_app()`: the serve app with the Kubernetes parts plugged in — the whole operator in one process.

Start-up order: the admission webhook (pure validation: it needs nothing from the cluster, so it answers from the
first moment) → API client → Run index (waits for its first list, so dedupe and catch-up see the Runs that exist)
→ status and Event writers → scheduler and trigger plugins (the serve app) → Secrets watched by metadata only
(waits for the first list, so no change after a trigger reads its Secret goes unseen) → kopf watches the triggers.
Shutdown is the reverse, driven by the HTTP server's SIGTERM handling: stop accepting requests, stop kopf and the
Secret watch, stop the triggers, finish the Run creations in flight, flush status, close the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar

import structlog

from stargraph.api.v1alpha1 import GROUP, VERSION
from stargraph.clock import SystemClock
from stargraph.controller.authorizer import KubeAuthorizer
from stargraph.controller.backfill_controller import BACKFILL, BackfillController
from stargraph.controller.backfill_runs import BackfillRuns
from stargraph.controller.burst_gate import BurstGate, Stage
from stargraph.controller.cron_controller import CronController
from stargraph.controller.event_recorder import EventRecorder
from stargraph.controller.kind_controller import KindController
from stargraph.controller.kinds import BUILT_IN_KINDS, CRON, WEBHOOK
from stargraph.controller.kopf_runner import KopfRunner, Watch
from stargraph.controller.run_jobs import RunJobs, jobs_path
from stargraph.controller.status_writer import StatusWriter
from stargraph.controller.webhook_controller import WebhookController
from stargraph.fires.event import TriggerEvent
from stargraph.fires.keys import split_trigger_id
from stargraph.k8s.client import KubeClient
from stargraph.k8s.credentials import Credentials
from stargraph.k8s.informer import Informer
from stargraph.k8s.lease import LeaderElector
from stargraph.k8s.paths import path
from stargraph.plugin.manager import unwrap
from stargraph.runs import LABEL_TRIGGER, RunIndex, SubmitResult
from stargraph.runs.jobs import LABEL_RUN
from stargraph.runs.kube_sink import KubeRunSink
from stargraph.scheduler import Scheduler
from stargraph.serve import App, AppState, create_app
from stargraph.serve.admission import create_admission_app
from stargraph.serve.server import serving_tls
from stargraph.serve.tls import ReloadingCertificate
from stargraph.triggers.cron import CronTriggerPlugin
from stargraph.triggers.kinds import KubernetesTrigger, TriggerKind
from stargraph.triggers.specs import CronSpec
from stargraph.triggers.validation import SPEC_CHECKS
from stargraph.triggers.webhook import WebhookTriggerPlugin

__all__ = ["AdmissionWebhook", "LeaderElection", "OperatorConfig", "create_operator_app"]

log = structlog.get_logger("stargraph.operator")

_LEADER_REPORTS = (CRON.plural, "runs", BACKFILL.plural)
"""The kinds whose status only the leader writes: cron firing, the Jobs of Runs, backfills."""

T = TypeVar("T")


@dataclass(frozen=True)
class LeaderElection:
    namespace: str
    name: str = "stargraph-operator"
    identity: str = field(default_factory=lambda: f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}")
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0


@dataclass(frozen=True)
class AdmissionWebhook:
    """Where the validating admission webhook listens (HTTPS, its own port) and the certificate it serves."""

    certificate: ReloadingCertificate
    host: str = "0.0.0.0"
    port: int = 9443


@dataclass(frozen=True)
class OperatorConfig:
    credentials: Credentials
    namespaces: Sequence[str] = ()
    """Watch only these namespaces; empty means the whole cluster."""
    leader_election: LeaderElection | None = None
    """Only the leader fires cron schedules; None: this process always does (a single replica)."""
    api_timeout: float = 30.0
    """Seconds one API request may take (a hung apiserver fails it, and the caller retries)."""
    sync_timeout: float = 60.0
    drain_timeout: float = 20.0
    admission: AdmissionWebhook | None = None
    """Serve the admission webhook; None: not served (the apiserver's webhook configuration must not name it)."""
    extra_deps: Mapping[str, Any] = field(default_factory=dict)


def _kubernetes_triggers(state: AppState) -> list[KubernetesTrigger]:
    """Loaded plugins that bring a kind of their own (the built-in kinds are reconciled by their controllers)."""
    found = []
    for _, hooks in state.pm.list_name_plugin():
        trigger = unwrap(hooks)
        if isinstance(trigger, KubernetesTrigger) and trigger.trigger_kind.kind not in BUILT_IN_KINDS:
            found.append(trigger)
    return found


def _plugin(state: AppState, name: str, kind: type[T]) -> T:
    trigger = unwrap(state.pm.get_plugin(name))
    if not isinstance(trigger, kind):
        raise RuntimeError(f"the {name!r} trigger plugin is not loaded; the operator needs it")
    return trigger


class _Wiring:
    """What the two halves of the lifespan share."""

    api: KubeClient
    index: RunIndex
    status: StatusWriter
    events: EventRecorder
    cron: CronController
    jobs: RunJobs

    def __init__(self) -> None:
        self.backfill_runs = BackfillRuns()
        self.webhooks: WebhookController | None = None
        self.scheduler: Scheduler | None = None
        self.kinds: dict[str, TriggerKind] = dict(BUILT_IN_KINDS)
        """Kinds a manual run may name; the sink reads it, third-party kinds join it when their plugins load."""
        self.gate = BurstGate(self._creating)

    def _creating(self) -> list[Stage]:
        return [stage for stage in (self.scheduler, self.jobs) if stage is not None]

    async def runs_created(self) -> None:
        """Return once Runs and their Jobs are not being made (within a bound): status writes, Events and history
        pruning wait for that, so the apiserver's capacity goes to a burst of fires first."""
        await self.gate.wait()

    def run_changed(self, change: str, body: dict[str, Any]) -> None:
        self.index.on_change(change, body)
        self.jobs.run_changed(change, body)
        self.backfill_runs.run_changed(change, body)

    def on_result(self, event: TriggerEvent, result: SubmitResult) -> None:
        if self.webhooks is not None and split_trigger_id(event.trigger_id)[0] == "webhook":
            self.webhooks.delivered(event, result)

    # The cron plugin is initialised before the controller exists (it needs the plugin): these forward to it.
    async def admit(self, spec: CronSpec, fire: datetime) -> bool:
        return await self.cron.gate.admit(spec, fire)

    def fired(self, spec: CronSpec, fire: datetime, result: SubmitResult) -> None:
        self.cron.reports.fired(spec, fire, result)

    def skipped(self, spec: CronSpec, fire: datetime) -> None:
        self.cron.reports.skipped(spec, fire)

    def missed(self, spec: CronSpec, *, count: int, latest: datetime) -> None:
        self.cron.reports.missed(spec, count=count, latest=latest)

    def failed(self, spec: CronSpec, fire: datetime, error: Exception) -> None:
        self.cron.reports.failed(spec, fire, error)


class _Leading(Protocol):
    """What acts only while this replica leads: cron firing, the Jobs of Runs and backfills."""

    async def lead(self) -> None: ...

    async def stop_leading(self) -> None: ...


def _elect(
    election: LeaderElection | None,
    *,
    api: KubeClient,
    status: StatusWriter,
    leaders: Sequence[_Leading],
    state: AppState,
) -> asyncio.Task[None] | None:
    if election is None:
        state.metrics.leader.set(1)
        return None

    async def started() -> None:
        for leader in leaders:
            await leader.lead()
        state.metrics.leader.set(1)

    async def stopped(leads_until: float | None) -> None:
        state.metrics.leader.set(0)
        for leader in leaders:
            await leader.stop_leading()
        # A successor starts from the objects' status (the fire ledger, lastScheduleTime, a Backfill's progress):
        # still holding the Lease, write what is pending; whatever is left could land over the successor's writes.
        if leads_until is not None and not await status.flush(timeout=max(0.0, leads_until - time.monotonic())):
            log.warning("status not all written before the lease was released")
        dropped = status.drop(plurals=_LEADER_REPORTS)
        if dropped:
            log.warning("status writes dropped: another replica leads", objects=dropped)

    elector = LeaderElector(
        api,
        namespace=election.namespace,
        name=election.name,
        identity=election.identity,
        on_started_leading=started,
        on_stopped_leading=stopped,
        lease_duration=election.lease_duration,
        renew_deadline=election.renew_deadline,
        retry_period=election.retry_period,
    )
    state.metrics.leader.set(0)
    return asyncio.create_task(elector.run(), name="leader-election")


def _secret_informers(api: KubeClient, webhooks: WebhookController, namespaces: Sequence[str]) -> list[Informer]:
    """Secrets by metadata only (one watch per watched namespace, or one for the cluster): deletions and rotations
    reach the webhook controller within a moment, and no Secret's data is transferred unless a trigger names it."""
    scopes: list[str | None] = list(namespaces) or [None]
    return [
        Informer(
            api,
            path(group="", version="v1", plural="secrets", namespace=namespace),
            on_change=webhooks.secret_changed,
            metadata_only=True,
        )
        for namespace in scopes
    ]


def create_operator_app(config: OperatorConfig) -> App:
    clock = SystemClock()
    wiring = _Wiring()

    @asynccontextmanager
    async def resources() -> AsyncIterator[Mapping[str, Any]]:
        api_client = KubeClient(config.credentials, timeout=config.api_timeout)
        async with contextlib.AsyncExitStack() as stack:
            if (admission := config.admission) is not None:
                port = await stack.enter_async_context(
                    serving_tls(
                        create_admission_app(SPEC_CHECKS),
                        host=admission.host,
                        port=admission.port,
                        context=admission.certificate.server_context(),
                    )
                )
                log.info("admission webhook serving", port=port)
            api = await stack.enter_async_context(api_client)
            wiring.api = api
            wiring.index = RunIndex()
            wiring.status = StatusWriter(api, runs_created=wiring.runs_created)
            wiring.events = EventRecorder(api, runs_created=wiring.runs_created)
            wiring.jobs = RunJobs(
                api=api,
                status=wiring.status,
                events=wiring.events,
                clock=clock,
                leading=config.leader_election is None,
            )
            namespaces: list[str | None] = list(config.namespaces) or [None]
            informers = [
                *(
                    Informer(
                        api,
                        path(group=GROUP, version=VERSION, plural="runs", namespace=namespace),
                        on_change=wiring.run_changed,
                        params={"labelSelector": LABEL_TRIGGER},
                    )
                    for namespace in namespaces
                ),
                *(
                    Informer(
                        api,
                        jobs_path(namespace),
                        on_change=wiring.jobs.job_changed,
                        params={"labelSelector": LABEL_RUN},
                    )
                    for namespace in namespaces
                ),
            ]
            tasks = [asyncio.create_task(informer.run(), name="run-informer") for informer in informers]
            stack.callback(lambda: [task.cancel() for task in tasks])
            await asyncio.wait_for(asyncio.gather(*(i.synced.wait() for i in informers)), config.sync_timeout)
            log.info("run index synced", runs=len(wiring.index))
            await wiring.status.start()
            stack.push_async_callback(wiring.status.stop)
            await wiring.events.start()
            stack.push_async_callback(wiring.events.stop)
            await wiring.jobs.start()
            stack.push_async_callback(wiring.jobs.stop)
            yield {
                "sink": KubeRunSink(api, wiring.index, kinds=wiring.kinds),
                "authorizer": KubeAuthorizer(api),
                "on_result": wiring.on_result,
                "cron_gate": wiring,
                "cron_observer": wiring,
                **config.extra_deps,
            }

    @asynccontextmanager
    async def attach(state: AppState) -> AsyncIterator[None]:
        wiring.scheduler = state.scheduler
        backfills = BackfillController(
            api=wiring.api,
            scheduler=state.scheduler,
            index=wiring.index,
            runs=wiring.backfill_runs,
            status=wiring.status,
            events=wiring.events,
            clock=clock,
            runs_released=lambda trigger: cron.runs_released(trigger),
            leading=config.leader_election is None,
        )
        cron = wiring.cron = CronController(
            api=wiring.api,
            plugin=_plugin(state, "cron", CronTriggerPlugin),
            index=wiring.index,
            status=wiring.status,
            events=wiring.events,
            clock=clock,
            leading=config.leader_election is None,
            runs_created=wiring.runs_created,
            hold_run=backfills.holds,
        )
        webhooks = wiring.webhooks = WebhookController(
            api=wiring.api,
            plugin=_plugin(state, "webhook", WebhookTriggerPlugin),
            status=wiring.status,
            events=wiring.events,
            clock=clock,
            metrics=state.metrics,
            index=wiring.index,
            runs_created=wiring.runs_created,
        )
        await cron.start()
        await webhooks.start()

        async def reconcile_cron(event_type: str | None, body: dict[str, Any]) -> None:
            cron.reconcile(event_type, body)
            backfills.trigger_changed(event_type, body)

        watches = [
            Watch(CRON.group, CRON.version, CRON.plural, reconcile_cron),
            Watch(WEBHOOK.group, WEBHOOK.version, WEBHOOK.plural, webhooks.reconcile),
            Watch(BACKFILL.group, BACKFILL.version, BACKFILL.plural, backfills.reconcile),
        ]
        for plugin in _kubernetes_triggers(state):
            controller = KindController(plugin=plugin, status=wiring.status, events=wiring.events, clock=clock)
            kind = controller.kind
            wiring.kinds[kind.kind] = kind
            watches.append(Watch(kind.group, kind.version, kind.plural, controller.reconcile))
            log.info("watching a third-party trigger kind", kind=kind.kind, api_version=kind.api_version)
        secret_informers = _secret_informers(wiring.api, webhooks, config.namespaces)
        secret_tasks = [asyncio.create_task(i.run(), name="secret-informer") for i in secret_informers]
        try:
            await asyncio.wait_for(asyncio.gather(*(i.synced.wait() for i in secret_informers)), config.sync_timeout)
            runner = KopfRunner(credentials=config.credentials, watches=watches, namespaces=config.namespaces)
            await runner.start()
            # What start-up built lives as long as the process: out of the collector's way, later collections stay
            # short.
            gc.freeze()
            election = _elect(
                config.leader_election,
                api=wiring.api,
                status=wiring.status,
                leaders=[cron, wiring.jobs, backfills],
                state=state,
            )
            try:
                yield
            finally:
                if election is not None:
                    election.cancel()  # stops firing and releases the Lease, so a successor takes over at once
                    await asyncio.gather(election, return_exceptions=True)
                await runner.stop()
                await backfills.stop()
        finally:
            for task in secret_tasks:
                task.cancel()
            await asyncio.gather(*secret_tasks, return_exceptions=True)
            await webhooks.stop()
            await cron.stop()

    return create_app(
        resources=resources,
        attach=attach,
        clock=clock,
        stop_timeout=config.drain_timeout,
        # Measured (bench/operator_scale.py): beyond ~32 concurrent creates the apiserver only queues them, and each
        # extra connection is one more TLS handshake when a burst begins.
        scheduler_workers=32,
    )
