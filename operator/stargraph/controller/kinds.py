"""The trigger kinds the operator reconciles, and small helpers shared by their controllers."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from stargraph.api.v1alpha1 import GROUP, VERSION
from stargraph.k8s.events import ObjectRef

__all__ = ["API_VERSION", "CRON", "TRIGGER_PLURALS", "WEBHOOK", "object_ref", "parse_time"]

API_VERSION = f"{GROUP}/{VERSION}"
CRON = ("CronTrigger", "crontriggers")
WEBHOOK = ("WebhookTrigger", "webhooktriggers")
TRIGGER_PLURALS: Mapping[str, str] = dict([CRON, WEBHOOK])
"""Kinds a manual run may name, with their plurals."""


def object_ref(body: Mapping[str, Any], kind: str) -> ObjectRef:
    metadata = body["metadata"]
    return ObjectRef(
        api_version=API_VERSION,
        kind=kind,
        name=metadata["name"],
        namespace=metadata["namespace"],
        uid=metadata.get("uid"),
    )


def parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None
