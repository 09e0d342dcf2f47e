"""`TriggerEvent`: what a trigger emits and the scheduler turns into a Run."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from pydantic import field_validator

from stargraph.triggers.base import IRBase

__all__ = ["TriggerEvent", "json_payload"]


class TriggerEvent(IRBase):
    """One fire of one trigger. Two events with the same `idempotency_key` are the same fire."""

    trigger_id: str
    """`<source>:<namespace>/<name>`, e.g. `cron:default/nightly-cve-feed`."""
    scheduled_fire: datetime
    """The nominal fire time (for webhooks and manual runs: when the request arrived), UTC-aware."""
    idempotency_key: str
    payload: dict[str, Any] = {}

    @field_validator("trigger_id", "idempotency_key")
    @classmethod
    def _non_empty_without_nul(cls, value: str) -> str:
        # NUL separates fields in the idempotency-key encoding, so it may never appear inside one.
        if not value or "\x00" in value:
            raise ValueError("must be a non-empty string without NUL characters")
        return value

    @field_validator("scheduled_fire")
    @classmethod
    def _utc_aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("must be timezone-aware")
        return value.astimezone(UTC)

    @field_validator("payload")
    @classmethod
    def _json_serialisable(cls, value: dict[str, Any]) -> dict[str, Any]:
        return json_payload(value)

    @classmethod
    def trusted(
        cls, *, trigger_id: str, scheduled_fire: datetime, idempotency_key: str, payload: dict[str, Any]
    ) -> TriggerEvent:
        """An event from parts already validated (a spec's trigger id and payload, a UTC fire time, a computed key).

        The cron trigger builds one per fire, thousands at the same instant; validating the same payload again
        for each of them would be most of the cost.
        """
        return cls.model_construct(
            trigger_id=trigger_id, scheduled_fire=scheduled_fire, idempotency_key=idempotency_key, payload=payload
        )


def json_payload(value: dict[str, Any]) -> dict[str, Any]:
    """`value` if JSON can carry it (it ends up in a Kubernetes object): rejected here, not at the apiserver."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"payload must be JSON-serialisable: {exc}") from exc
    return value
