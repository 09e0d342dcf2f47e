"""Reporting a trigger that cannot be acted on: Stalled conditions in its status and a Warning Event naming why.

Shared by every trigger controller so that a bad CronTrigger, WebhookTrigger or third-party trigger looks the same
to `kubectl describe`, `kubectl wait` and GitOps tools. Nothing is written when the object already says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stargraph.clock import Clock
from stargraph.controller import conditions
from stargraph.controller.event_recorder import EventRecorder
from stargraph.controller.kinds import object_ref
from stargraph.controller.status_writer import StatusWriter
from stargraph.triggers.kinds import TriggerKind

__all__ = ["report_stalled"]


def report_stalled(
    body: Mapping[str, Any],
    *,
    kind: TriggerKind,
    reason: str,
    message: str,
    status: StatusWriter,
    events: EventRecorder,
    clock: Clock,
    clear: Mapping[str, Any] | None = None,
) -> bool:
    """Write Stalled/Ready=False for the object's generation (and `clear`, fields that no longer apply).

    Returns False when the object already reported exactly this.
    """
    metadata = body["metadata"]
    generation = metadata.get("generation", 1)
    current = body.get("status") or {}
    wanted = conditions.stalled(generation, reason=reason, message=message)
    if conditions.same(current, generation, wanted):
        return False
    status.update(
        group=kind.group,
        version=kind.version,
        plural=kind.plural,
        namespace=metadata["namespace"],
        name=metadata["name"],
        status={
            "observedGeneration": generation,
            "conditions": conditions.conditions_for(wanted, current.get("conditions"), clock.now()),
            **(clear or {}),
        },
    )
    events.warning(object_ref(body, kind), reason, message)
    return True
