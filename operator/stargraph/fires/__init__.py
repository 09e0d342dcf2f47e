"""What a fire is: the `TriggerEvent` a trigger emits, and the idempotency key that makes it one fire, not two.

`stargraph.triggers` re-exports these under their public names; they live below both the triggers and the
scheduler, which each use them and never import one another.
"""

from stargraph.fires.event import TriggerEvent, json_payload
from stargraph.fires.keys import (
    body_sha256,
    cron_idempotency_key,
    format_fire_time,
    manual_idempotency_key,
    split_trigger_id,
    trigger_id,
    webhook_delivery_idempotency_key,
    webhook_idempotency_key,
)

__all__ = [
    "TriggerEvent",
    "body_sha256",
    "cron_idempotency_key",
    "format_fire_time",
    "json_payload",
    "manual_idempotency_key",
    "split_trigger_id",
    "trigger_id",
    "webhook_delivery_idempotency_key",
    "webhook_idempotency_key",
]
