"""The Kubernetes `RunSink`: Runs created with deterministic names, duplicates settled by the apiserver's 409.

`create` takes the trigger a Run belongs to from the request (or, for a manual run that names it, reads the
trigger object), builds the manifest with `stargraph.runs.build_run`, and POSTs it. A 409 is examined, never
trusted blindly: the existing Run is a duplicate only if it carries the same idempotency key and belongs to the
same trigger (uid); anything else is a conflict that is reported and never adopted. Why that is all exactly-once
needs: docs/architecture.md ("The promise everything serves").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from stargraph.api.v1alpha1 import GROUP, VERSION
from stargraph.fires.event import TriggerEvent
from stargraph.fires.keys import split_trigger_id
from stargraph.k8s.client import KubeClient
from stargraph.k8s.errors import Conflict, Invalid, NotFound
from stargraph.k8s.paths import path
from stargraph.runs.index import RunIndex
from stargraph.runs.manifest import TriggerObject, build_run, run_ref
from stargraph.runs.refs import RunRef, SubmitResult
from stargraph.runs.sink import PermanentSinkError, RunRequest

__all__ = ["KubeRunSink", "Resource", "TriggerKinds", "runs_path"]


class Resource(Protocol):
    """Where the objects of a trigger kind live (a `stargraph.triggers.kinds.TriggerKind` is one)."""

    @property
    def group(self) -> str: ...

    @property
    def version(self) -> str: ...

    @property
    def plural(self) -> str: ...


TriggerKinds = Mapping[str, Resource]
"""Trigger kind → its resource, for the kinds whose objects a manual run may name."""


def runs_path(namespace: str, name: str | None = None) -> str:
    return path(group=GROUP, version=VERSION, plural="runs", namespace=namespace, name=name)


class KubeRunSink:
    def __init__(self, api: KubeClient, index: RunIndex, *, kinds: TriggerKinds) -> None:
        self._api = api
        self._index = index
        self._kinds = kinds

    def lookup(self, idempotency_key: str) -> RunRef | None:
        return self._index.lookup(idempotency_key)

    async def create(self, request: RunRequest) -> SubmitResult:
        event = request.event
        source = split_trigger_id(event.trigger_id)[0]
        trigger, params = (request.trigger, None) if request.trigger is not None else await self._named_by(event)
        body = build_run(event, trigger=trigger, source=source, params=params, body=request.body)
        name = body["metadata"]["name"]
        try:
            # The apiserver's echo of the Run is not decoded: what the index needs is in the body we sent, and the
            # watch brings the stored object a moment later. It is work a burst of fires can do without.
            await self._api.create(runs_path(trigger.namespace), body, decode=False)
        except Conflict:
            return await self._settle_conflict(event, trigger, name)
        except (Invalid, NotFound) as exc:
            raise PermanentSinkError(
                f"Run {trigger.namespace}/{name} was refused: {exc}", status=422, reason="run_invalid"
            ) from exc
        self._index.on_change("ADDED", body)
        ref = run_ref(body)
        assert ref is not None, "a Run built by build_run carries its key"
        return SubmitResult(run=ref, created=True)

    async def _named_by(self, event: TriggerEvent) -> tuple[TriggerObject, dict[str, Any] | None]:
        # A manual run names its trigger; read it for its uid (the owner reference) and its Run template.
        ref = event.payload.get("triggerRef") or {}
        kind = self._kinds.get(ref.get("kind", ""))
        if kind is None:
            known = ", ".join(sorted(self._kinds))
            raise PermanentSinkError(
                f"triggerRef.kind {ref.get('kind')!r} is not one of: {known}", status=422, reason="unknown_kind"
            )
        namespace, name = ref.get("namespace", "default"), ref["name"]
        try:
            body = await self._api.get(
                path(group=kind.group, version=kind.version, plural=kind.plural, namespace=namespace, name=name)
            )
        except NotFound as exc:
            raise PermanentSinkError(
                f"{ref['kind']} {namespace}/{name} not found", status=404, reason="trigger_not_found"
            ) from exc
        return TriggerObject.from_body(body), dict(event.payload.get("params") or {})

    async def _settle_conflict(self, event: TriggerEvent, trigger: TriggerObject, name: str) -> SubmitResult:
        existing = await self._api.get(runs_path(trigger.namespace, name))
        ref = run_ref(existing)
        owners = {owner.get("uid") for owner in existing["metadata"].get("ownerReferences") or ()}
        if ref is not None and ref.idempotency_key == event.idempotency_key and trigger.uid in owners:
            self._index.on_change("ADDED", existing)
            return SubmitResult(run=ref, created=False)
        raise PermanentSinkError(
            f"Run {trigger.namespace}/{name} already exists and is not this fire's (different idempotency key or "
            "owner); it was left alone",
            status=409,
            reason="run_name_conflict",
        )
