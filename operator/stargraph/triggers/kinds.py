"""Triggers with a Kubernetes kind of their own: the contract a third-party trigger implements to be reconciled.

The operator reconciles CronTrigger and WebhookTrigger itself. A third-party trigger that brings its own CRD makes
its plugin object (the class its `stargraph.triggers` entry point names) satisfy `KubernetesTrigger`: the operator
then watches `trigger_kind` and hands it every object of that kind. The plugin turns a valid object into whatever
it fires on (and emits `TriggerEvent`s through the scheduler it got in `init`); the operator writes the object's
conditions and `observedGeneration`, plus any status fields `reconcile` returns. A bad object raises
`InvalidTrigger` with a message naming the field; any other exception is reported the same way, and never reaches
another trigger.

This module knows Kubernetes objects only as plain mappings; it imports nothing of kopf or of the API client.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from stargraph.errors import StargraphError

__all__ = ["InvalidTrigger", "KubernetesTrigger", "TriggerKind"]


@dataclass(frozen=True, slots=True)
class TriggerKind:
    group: str
    version: str
    plural: str
    kind: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"


class InvalidTrigger(StargraphError):
    """The object cannot be acted on; `reason` is CamelCase, `message` names the field (`spec.queue: ...`)."""


@runtime_checkable
class KubernetesTrigger(Protocol):
    trigger_kind: TriggerKind

    async def reconcile(self, body: Mapping[str, Any]) -> Mapping[str, Any]:
        """Act on the object's current spec; return extra status fields (may be empty)."""
        ...

    def forget(self, namespace: str, name: str) -> None:
        """The object is gone (or invalid): stop everything it caused."""
        ...
