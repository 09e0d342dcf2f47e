"""The trigger kinds the operator reconciles itself, and small helpers shared by the controllers."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from stargraph.api.v1alpha1 import GROUP, VERSION
from stargraph.k8s.events import ObjectRef
from stargraph.triggers.kinds import TriggerKind

__all__ = ["BUILT_IN_KINDS", "CRON", "WEBHOOK", "essentials", "object_ref", "parse_time"]

CRON = TriggerKind(group=GROUP, version=VERSION, plural="crontriggers", kind="CronTrigger")
WEBHOOK = TriggerKind(group=GROUP, version=VERSION, plural="webhooktriggers", kind="WebhookTrigger")
BUILT_IN_KINDS: Mapping[str, TriggerKind] = {CRON.kind: CRON, WEBHOOK.kind: WEBHOOK}
"""Kinds a manual run may name; third-party kinds are added by the operator when their plugins load."""


def object_ref(body: Mapping[str, Any], kind: TriggerKind) -> ObjectRef:
    metadata = body["metadata"]
    return ObjectRef(
        api_version=kind.api_version,
        kind=kind.kind,
        name=metadata["name"],
        namespace=metadata["namespace"],
        uid=metadata.get("uid"),
    )


def parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def essentials(body: Mapping[str, Any]) -> dict[str, Any]:
    """What reconciling needs again later (on becoming leader); managedFields alone can be kilobytes per object."""
    metadata = body["metadata"]
    return {
        "metadata": {
            key: metadata[key]
            for key in ("name", "namespace", "uid", "generation", "creationTimestamp", "deletionTimestamp")
            if key in metadata
        },
        "spec": body.get("spec"),
        "status": body.get("status"),
    }
