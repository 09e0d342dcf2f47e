"""WebhookTrigger objects (and the Secrets they name) → the webhook plugin, and deliveries → status.

Secrets arrive as metadata only (`secret_changed`, fed by a metadata-only informer). A Secret's data is read, with
a GET, only for a trigger that names it: when the trigger is armed, and when the Secret appears or its
resourceVersion differs from the one the trigger was armed with. So a rotated secret takes effect without touching
the trigger, and unrelated Secrets (Helm releases, TLS keys) are never read.

A missing Secret or key stalls the trigger (its path then answers 404) with a message naming the field. A Secret
deleted later disarms its triggers the moment the deletion is seen, so deleting a leaked secret revokes it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import weakref
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from stargraph.api.v1alpha1 import DeduplicationKey
from stargraph.clock import Clock
from stargraph.controller import conditions
from stargraph.controller.event_recorder import EventRecorder
from stargraph.controller.kinds import WEBHOOK, parse_time
from stargraph.controller.reporting import report_stalled
from stargraph.controller.run_history import RunHistory, RunsReport
from stargraph.controller.status_writer import StatusWriter
from stargraph.errors import StargraphError
from stargraph.fires.event import TriggerEvent
from stargraph.fires.keys import format_fire_time, split_trigger_id
from stargraph.k8s.client import KubeClient
from stargraph.k8s.errors import KubeError, NotFound
from stargraph.k8s.informer import Change
from stargraph.k8s.paths import path
from stargraph.metrics import Metrics
from stargraph.runs import RunIndex, SubmitResult, TriggerObject
from stargraph.triggers.signatures import DEFAULT_SIGNATURE_HEADER
from stargraph.triggers.specs import WebhookSpec
from stargraph.triggers.validation import check_webhook_trigger
from stargraph.triggers.webhook import WebhookTriggerPlugin

__all__ = ["WebhookController"]

log = structlog.get_logger("stargraph.controller")

KIND, PLURAL = WEBHOOK.kind, WEBHOOK.plural

_Key = tuple[str, str]
"""(namespace, name) of a trigger or of a Secret."""


class _Stalled(StargraphError):
    """The trigger cannot serve: `reason` is the Stalled condition's reason, `message` names the field."""


@dataclass
class _Applied:
    uid: str
    generation: int
    secret_version: str


class WebhookController:
    def __init__(
        self,
        *,
        api: KubeClient,
        plugin: WebhookTriggerPlugin,
        status: StatusWriter,
        events: EventRecorder,
        clock: Clock,
        metrics: Metrics,
        index: RunIndex,
        runs_created: Callable[[], Awaitable[None]],
    ) -> None:
        self._api = api
        self._plugin = plugin
        self._status = status
        self._events = events
        self._clock = clock
        self._metrics = metrics
        self._applied: dict[_Key, _Applied] = {}
        # Kept while the trigger exists (not only while it is armed): lastSuccessfulTime only moves forward.
        self._reports: dict[_Key, RunsReport] = {}
        self._history = RunHistory(
            api=api, index=index, status=status, kind=WEBHOOK, triggers=self._reports, runs_created=runs_created
        )
        self._secret_users: dict[_Key, set[str]] = {}
        self._secret_of: dict[_Key, str] = {}
        # One trigger is reconciled by one coroutine at a time: kopf's events and Secret changes both arm it, and
        # an arming that read a Secret just before its deletion must not finish after the one that saw it gone.
        self._locks: weakref.WeakValueDictionary[_Key, asyncio.Lock] = weakref.WeakValueDictionary()
        self._queued: set[_Key] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def reconcile(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        metadata = body["metadata"]
        async with self._lock((metadata["namespace"], metadata["name"])):
            await self._reconcile(event_type, body, force=False)

    def secret_changed(self, change: Change, body: Mapping[str, Any]) -> None:
        """Informer callback with a Secret's metadata: re-arm the triggers naming it if it changed or went.

        A deleted Secret disarms its triggers here, before anything is read, so a revoked secret stops verifying
        deliveries even while the apiserver is slow to answer; the re-arming then reports them Stalled.
        """
        if "data" in body:
            # Only a watch that is not metadata-only delivers data; counted, so the metric never understates what
            # reached the operator.
            self._metrics.secret_reads.inc()
        metadata = body["metadata"]
        namespace = metadata["namespace"]
        users = self._secret_users.get((namespace, metadata["name"]))
        if not users:
            return
        version = None if change == "DELETED" else metadata.get("resourceVersion")
        for trigger in list(users):
            key = (namespace, trigger)
            applied = self._applied.get(key)
            if version is not None and applied is not None and applied.secret_version == version:
                continue
            if version is None:
                self._plugin.remove(namespace, trigger)
                self._applied.pop(key, None)
            self._rearm_soon(key)

    async def start(self) -> None:
        await self._history.start()

    async def stop(self) -> None:
        """Cancel the re-armings in flight (at shutdown, once nothing feeds `secret_changed` any more)."""
        await self._history.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _lock(self, key: _Key) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    def _rearm_soon(self, key: _Key) -> None:
        if key in self._queued:
            return  # a re-arming that has not read anything yet will see this change too
        self._queued.add(key)
        task = asyncio.create_task(self._rearm(key), name="webhook-secret-changed")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _rearm(self, key: _Key) -> None:
        async with self._lock(key):
            self._queued.discard(key)
            current = await self._read_trigger(*key)
            if current is not None:
                await self._reconcile("MODIFIED", current, force=True)

    async def _reconcile(self, event_type: str | None, body: Mapping[str, Any], *, force: bool) -> None:
        metadata = body["metadata"]
        namespace, name = metadata["namespace"], metadata["name"]
        if event_type == "DELETED" or metadata.get("deletionTimestamp"):
            self._forget(namespace, name)
            return
        uid, generation = metadata["uid"], metadata.get("generation", 1)
        applied = self._applied.get((namespace, name))
        if not force and applied is not None and (applied.uid, applied.generation) == (uid, generation):
            return
        status = body.get("status") or {}
        try:
            spec, secret_version = await self._arm(body)
        except _Stalled as stall:
            self._plugin.remove(namespace, name)
            self._applied.pop((namespace, name), None)
            report_stalled(
                body,
                kind=WEBHOOK,
                reason=stall.reason,
                message=stall.message,
                status=self._status,
                events=self._events,
                clock=self._clock,
                clear={"path": None},
            )
            return
        self._applied[(namespace, name)] = _Applied(uid, generation, secret_version)
        if (namespace, name) not in self._reports:
            self._reports[(namespace, name)] = RunsReport(
                active=[item.get("name", "") for item in status.get("active") or ()],
                last_successful=parse_time(status.get("lastSuccessfulTime")),
            )
            self._history.mark((namespace, name))
        wanted = {
            "observedGeneration": generation,
            "conditions": conditions.conditions_for(
                conditions.ready(generation), status.get("conditions"), self._clock.now()
            ),
            "path": spec.path,
        }
        if any(status.get(field) != value for field, value in wanted.items()):
            self._status.update(plural=PLURAL, namespace=namespace, name=name, status=wanted)

    def delivered(self, event: TriggerEvent, result: SubmitResult) -> None:
        """Scheduler callback: record the newest delivery that produced a Run."""
        _, namespace, name = split_trigger_id(event.trigger_id)
        if (namespace, name) in self._applied:
            self._status.update(
                plural=PLURAL,
                namespace=namespace,
                name=name,
                status={"lastDeliveryTime": format_fire_time(event.scheduled_fire), "lastRunName": result.run.name},
            )

    async def _arm(self, body: Mapping[str, Any]) -> tuple[WebhookSpec, str]:
        metadata = body["metadata"]
        namespace, name = metadata["namespace"], metadata["name"]
        self._unlink((namespace, name))
        checked = check_webhook_trigger(body.get("spec") or {})
        if checked.spec is None:
            raise _Stalled(checked.reason, checked.message)
        spec = checked.spec
        # Linked before the read: a Secret that appears or changes while the trigger is stalled re-arms it.
        self._secret_of[(namespace, name)] = spec.secret_ref.name
        self._secret_users.setdefault((namespace, spec.secret_ref.name), set()).add(name)
        secrets, version = await self._read_secret(namespace, spec.secret_ref.name, spec.secret_ref.keys)
        trigger = TriggerObject(
            kind=KIND, name=name, namespace=namespace, uid=metadata["uid"], run_template=spec.run_template
        )
        armed = WebhookSpec(
            name=name,
            namespace=namespace,
            scheme=spec.signature.scheme,
            secrets=secrets,
            signature_header=spec.signature.header or DEFAULT_SIGNATURE_HEADER,
            tolerance_seconds=spec.signature.tolerance_seconds,
            max_body_bytes=spec.max_body_bytes,
            content_types=tuple(spec.content_types),
            key_on_delivery_id=spec.deduplicate_by == DeduplicationKey.DELIVERY_ID,
            pass_body=spec.pass_body,
            event_types=frozenset(spec.events.types) if spec.events else None,
            event_type_header=spec.events.header if spec.events else None,
            trigger=trigger,
        )
        try:
            self._plugin.apply(armed)
        except ValueError as exc:
            raise _Stalled("InvalidSecret", f"spec.secretRef.keys: {exc}") from exc
        return armed, version

    async def _read_secret(self, namespace: str, name: str, keys: list[str]) -> tuple[tuple[str, ...], str]:
        self._metrics.secret_reads.inc()
        try:
            secret = await self._api.get(path(group="", version="v1", plural="secrets", namespace=namespace, name=name))
        except NotFound as exc:
            raise _Stalled("SecretNotFound", f"spec.secretRef.name: Secret {namespace}/{name} does not exist") from exc
        except KubeError as exc:
            raise _Stalled("SecretUnreadable", f"spec.secretRef.name: Secret {namespace}/{name}: {exc}") from exc
        data = secret.get("data") or {}
        missing = [key for key in keys if key not in data]
        if missing:
            raise _Stalled(
                "SecretKeyMissing", f"spec.secretRef.keys: Secret {namespace}/{name} has no key {missing[0]!r}"
            )
        try:
            values = tuple(base64.b64decode(data[key], validate=True).decode("utf-8") for key in keys)
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise _Stalled(
                "InvalidSecret", f"spec.secretRef.keys: Secret {namespace}/{name} is not UTF-8 text"
            ) from exc
        return values, str(secret["metadata"].get("resourceVersion", ""))

    async def _read_trigger(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return await self._api.get(
                path(group=WEBHOOK.group, version=WEBHOOK.version, plural=PLURAL, namespace=namespace, name=name)
            )
        except KubeError as exc:
            log.warning(
                "webhooktrigger not re-read after its Secret changed", trigger=f"{namespace}/{name}", error=repr(exc)
            )
            return None

    def _forget(self, namespace: str, name: str) -> None:
        self._plugin.remove(namespace, name)
        self._applied.pop((namespace, name), None)
        self._reports.pop((namespace, name), None)
        self._unlink((namespace, name))
        self._status.forget(plural=PLURAL, namespace=namespace, name=name)

    def _unlink(self, trigger: _Key) -> None:
        secret = self._secret_of.pop(trigger, None)
        if secret is None:
            return
        namespace, name = trigger
        users = self._secret_users.get((namespace, secret), set())
        users.discard(name)
        if not users:
            self._secret_users.pop((namespace, secret), None)
