"""`TriggerEvent`: what a trigger emits and the scheduler turns into a Run."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from pydantic import field_validator

from stargraph.models import IRBase

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


def json_payload(value: dict[str, Any], *, where: str = "payload") -> dict[str, Any]:
    """`value` if a Kubernetes object can carry it as JSON: rejected here, not by the API client or the apiserver.

    That is JSON (string keys), with finite numbers and integers in the 64-bit range Kubernetes stores; `where`
    names `value` in the error.
    """
    problem = _not_storable(value, where)
    if problem is not None:
        raise ValueError(f"{where} must be JSON-serialisable for Kubernetes: {problem}")
    return value


_INT64 = range(-(1 << 63), 1 << 63)


def _not_storable(value: Any, path: str) -> str | None:
    """What keeps `value` (at `path`) out of a Kubernetes object, or None."""
    if value is None or isinstance(value, bool | str):
        return None
    if isinstance(value, int):
        return None if value in _INT64 else f"{path} is an integer outside the 64-bit range"
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{path} is not a finite number"
    if isinstance(value, list | tuple):
        return next(filter(None, (_not_storable(item, f"{path}[{i}]") for i, item in enumerate(value))), None)
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            return f"{path} has a key that is not a string"
        return next(filter(None, (_not_storable(item, f"{path}.{key}") for key, item in value.items())), None)
    return f"{path} is a {type(value).__name__}, not JSON"
