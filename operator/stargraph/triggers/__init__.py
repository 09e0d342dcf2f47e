"""The trigger API: the `Trigger` protocol, `TriggerEvent`, idempotency keys and the isolating lifecycle dispatch.

Built-in triggers live in `stargraph.triggers.cron`, `.webhook` and `.manual` and are registered through the
`stargraph.triggers` entry-point group exactly like third-party ones. A plugin submits its events to the
`RunSubmitter` it gets as `deps["scheduler"]`, naming the object its Runs belong to (`TriggerObject`).
"""

from stargraph.fires.event import TriggerEvent
from stargraph.fires.keys import (
    body_sha256,
    cron_idempotency_key,
    format_fire_time,
    manual_idempotency_key,
    webhook_delivery_idempotency_key,
    webhook_idempotency_key,
)
from stargraph.plugin.triggers_dispatcher import (
    DispatchResult,
    collect_trigger_routes,
    dispatch_trigger_lifecycle,
    gather_trigger_routes,
    run_trigger_lifecycle,
)
from stargraph.runs import RunSubmitter, SubmitResult, TriggerObject
from stargraph.triggers.base import IRBase, Trigger

__all__ = [
    "DispatchResult",
    "IRBase",
    "RunSubmitter",
    "SubmitResult",
    "Trigger",
    "TriggerEvent",
    "TriggerObject",
    "body_sha256",
    "collect_trigger_routes",
    "cron_idempotency_key",
    "dispatch_trigger_lifecycle",
    "format_fire_time",
    "gather_trigger_routes",
    "manual_idempotency_key",
    "run_trigger_lifecycle",
    "webhook_delivery_idempotency_key",
    "webhook_idempotency_key",
]
