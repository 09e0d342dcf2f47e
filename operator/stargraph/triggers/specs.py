"""The trigger-level specs the built-in plugins run from (already validated; the operator maps its CRDs onto them)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import Field, field_validator

from stargraph.fires.event import json_payload
from stargraph.fires.keys import trigger_id
from stargraph.models import IRBase
from stargraph.runs import TriggerObject
from stargraph.triggers.cron_schedule import DaylightSaving, RepeatedTime, SkippedTime
from stargraph.triggers.jitter import jitter_offset
from stargraph.triggers.signatures import SignatureScheme

__all__ = ["CronSpec", "WebhookSpec"]

_EVENT_TYPE_HEADERS = {SignatureScheme.GITHUB: "x-github-event", SignatureScheme.HMAC_SHA256: "x-event-type"}
"""Where each scheme's senders put the event type; standard-webhooks puts it in the body (`type`)."""


class _Named(IRBase):
    name: str = Field(min_length=1, max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    namespace: str = Field(default="default", min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    payload: dict[str, Any] = {}
    """Copied into every event this trigger emits."""
    trigger: TriggerObject | None = None
    """The Kubernetes object its Runs belong to (their owner and Run template); None when served without a cluster."""

    @field_validator("payload")
    @classmethod
    def _json_serialisable(cls, value: dict[str, Any]) -> dict[str, Any]:
        return json_payload(value)


class CronSpec(_Named):
    schedule: str
    time_zone: str = "UTC"
    suspend: bool = False
    starting_deadline_seconds: int | None = Field(default=None, ge=0)
    """A fire found later than this (the process was stalled or down) is not created but counted as missed."""
    catch_up: Literal["Latest", "All", "None"] = "Latest"
    catch_up_limit: int = Field(default=10, ge=1)
    resume_from: datetime | None = None
    """The newest fire known to have its Run (or the trigger's creation); catch-up looks at fires after it."""
    concurrency_policy: Literal["Allow", "Forbid", "Replace"] = "Allow"
    """Anything but Allow asks the plugin's gate before each fire."""
    repeated_time: RepeatedTime = "Once"
    skipped_time: SkippedTime = "RunAtNextValidTime"
    jitter_seconds: int = Field(default=0, ge=0)
    """Each Run is created `jitter` after its nominal fire, a fixed share of this window (`triggers.jitter`)."""

    @property
    def trigger_id(self) -> str:
        return trigger_id("cron", self.namespace, self.name)

    @property
    def daylight_saving(self) -> DaylightSaving:
        return DaylightSaving(repeated_time=self.repeated_time, skipped_time=self.skipped_time)

    @property
    def jitter(self) -> timedelta:
        """How long after each nominal fire its Run is due, seeded by the object's uid (the trigger id without one)."""
        seed = self.trigger.uid if self.trigger is not None else self.trigger_id
        return jitter_offset(seed, jitter_seconds=self.jitter_seconds)


class WebhookSpec(_Named):
    scheme: SignatureScheme = SignatureScheme.HMAC_SHA256
    secrets: tuple[str, ...] = Field(min_length=1)
    """Raw secrets, several during a rotation; any one of them verifies a delivery."""
    signature_header: str = "x-signature-256"
    tolerance_seconds: int = Field(default=300, ge=1)
    max_body_bytes: int = Field(default=1 << 20, ge=1, le=64 << 20)
    content_types: tuple[str, ...] = ("application/json",)
    key_on_delivery_id: bool = False
    pass_body: bool = False
    """Hand each delivery's body (UTF-8, at most `PASSED_BODY_MAX` bytes) to its Run."""
    """Key deliveries on the sender's delivery id when present, instead of the body hash."""
    event_types: frozenset[str] | None = None
    """When set, only deliveries of these event types create Runs."""
    event_type_header: str | None = None
    """Where the event type is; None: the scheme's default (`event_type_source`)."""

    @field_validator("signature_header", "event_type_header")
    @classmethod
    def _lower(cls, value: str | None) -> str | None:
        return value.lower() if value is not None else None

    @property
    def event_type_source(self) -> str | None:
        """The header holding the event type; None means the body's `type` field (standard-webhooks)."""
        if self.event_type_header is not None:
            return self.event_type_header
        return _EVENT_TYPE_HEADERS.get(self.scheme)

    @property
    def trigger_id(self) -> str:
        return trigger_id("webhook", self.namespace, self.name)

    @property
    def path(self) -> str:
        return f"/v1/hooks/{self.namespace}/{self.name}"
