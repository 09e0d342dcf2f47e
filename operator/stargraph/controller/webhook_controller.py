"""WebhookTrigger objects (and the Secrets they name) → the webhook plugin, and deliveries → status.

A trigger is re-read whenever a Secret it names changes, so a rotated secret takes effect without touching the
trigger. A missing Secret or key stalls the trigger (its path then answers 404) with a message naming the field.
"""

from __future__ import annotations

import base64
import binascii
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from pydantic import ValidationError

from stargraph.api.v1alpha1 import DeduplicationKey, WebhookTriggerSpec
from stargraph.clock import Clock
from stargraph.controller import conditions
from stargraph.controller.event_recorder import EventRecorder
from stargraph.controller.kinds import WEBHOOK
from stargraph.controller.reporting import report_stalled
from stargraph.controller.status_writer import StatusWriter
from stargraph.k8s.client import KubeClient
from stargraph.k8s.errors import KubeError, NotFound
from stargraph.k8s.paths import path
from stargraph.runs import TriggerObject, trigger_payload
from stargraph.scheduler.sinks import SubmitResult
from stargraph.triggers.base import describe_validation_error
from stargraph.triggers.events import TriggerEvent
from stargraph.triggers.keys import format_fire_time, split_trigger_id
from stargraph.triggers.specs import WebhookSpec
from stargraph.triggers.webhook import WebhookTriggerPlugin

__all__ = ["WebhookController"]

log = structlog.get_logger("stargraph.controller")

KIND, PLURAL = WEBHOOK.kind, WEBHOOK.plural


class _Stalled(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


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
    ) -> None:
        self._api = api
        self._plugin = plugin
        self._status = status
        self._events = events
        self._clock = clock
        self._applied: dict[tuple[str, str], _Applied] = {}
        self._secret_users: dict[tuple[str, str], set[str]] = defaultdict(set)

    async def reconcile(self, event_type: str | None, body: Mapping[str, Any], *, force: bool = False) -> None:
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
        wanted = {
            "observedGeneration": generation,
            "conditions": conditions.conditions_for(
                conditions.ready(generation), status.get("conditions"), self._clock.now()
            ),
            "path": spec.path,
        }
        if any(status.get(field) != value for field, value in wanted.items()):
            self._status.update(plural=PLURAL, namespace=namespace, name=name, status=wanted)

    async def secret_changed(self, body: Mapping[str, Any]) -> None:
        metadata = body["metadata"]
        for trigger in list(self._secret_users.get((metadata["namespace"], metadata["name"]), ())):
            applied = self._applied.get((metadata["namespace"], trigger))
            if applied is not None and applied.secret_version == metadata.get("resourceVersion"):
                continue
            current = await self._read_trigger(metadata["namespace"], trigger)
            if current is not None:
                await self.reconcile("MODIFIED", current, force=True)

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
        try:
            spec = WebhookTriggerSpec.model_validate(body.get("spec") or {})
        except ValidationError as exc:
            raise _Stalled("InvalidSpec", f"spec: {describe_validation_error(exc)}") from exc
        self._unlink(namespace, name)
        self._secret_users[(namespace, spec.secret_ref.name)].add(name)
        secrets, version = await self._read_secret(namespace, spec.secret_ref.name, spec.secret_ref.keys)
        trigger = TriggerObject(
            kind=KIND, name=name, namespace=namespace, uid=metadata["uid"], run_template=spec.run_template
        )
        armed = WebhookSpec(
            name=name,
            namespace=namespace,
            scheme=spec.signature.scheme,
            secrets=secrets,
            signature_header=spec.signature.header,
            tolerance_seconds=spec.signature.tolerance_seconds,
            max_body_bytes=spec.max_body_bytes,
            content_types=tuple(spec.content_types),
            key_on_delivery_id=spec.deduplicate_by == DeduplicationKey.DELIVERY_ID,
            event_types=frozenset(spec.events.types) if spec.events else None,
            event_type_header=spec.events.header if spec.events else None,
            payload=trigger_payload(trigger),
        )
        try:
            self._plugin.apply(armed)
        except ValueError as exc:
            raise _Stalled("InvalidSecret", f"spec.secretRef.keys: {exc}") from exc
        return armed, version

    async def _read_secret(self, namespace: str, name: str, keys: list[str]) -> tuple[tuple[str, ...], str]:
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
        self._unlink(namespace, name)
        self._status.forget(plural=PLURAL, namespace=namespace, name=name)

    def _unlink(self, namespace: str, trigger: str) -> None:
        for (secret_namespace, _), users in self._secret_users.items():
            if secret_namespace == namespace:
                users.discard(trigger)
