"""kstatus-compatible conditions: `Ready`, `Reconciling` and `Stalled`, with stable transition times.

kstatus (what `kubectl wait`, Argo CD and Flux read) expects `Ready` plus the abnormal-true pair `Reconciling` /
`Stalled`, and `observedGeneration` to say which spec the conditions describe. A condition keeps its
`lastTransitionTime` while its status does not change, so the time says when it last flipped, not when we wrote.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from stargraph.fires.keys import format_fire_time

__all__ = ["conditions_for", "ready", "reconciling", "same", "stalled"]

Condition = dict[str, Any]


def _condition(type_: str, status: str, reason: str, message: str, generation: int) -> Condition:
    return {"type": type_, "status": status, "reason": reason, "message": message, "observedGeneration": generation}


def ready(generation: int, *, message: str = "") -> list[Condition]:
    return [
        _condition("Ready", "True", "Reconciled", message, generation),
        _condition("Reconciling", "False", "Reconciled", "", generation),
        _condition("Stalled", "False", "Reconciled", "", generation),
    ]


def reconciling(generation: int, *, reason: str, message: str) -> list[Condition]:
    """Work under way that needs nothing from anyone: not ready yet, not stuck either."""
    return [
        _condition("Ready", "False", reason, message, generation),
        _condition("Reconciling", "True", reason, message, generation),
        _condition("Stalled", "False", reason, "", generation),
    ]


def stalled(generation: int, *, reason: str, message: str) -> list[Condition]:
    """The spec cannot be acted on until someone changes it (or what it refers to)."""
    return [
        _condition("Ready", "False", reason, message, generation),
        _condition("Reconciling", "False", reason, "", generation),
        _condition("Stalled", "True", reason, message, generation),
    ]


def conditions_for(
    wanted: Sequence[Condition], current: Sequence[Mapping[str, Any]] | None, now: datetime
) -> list[Condition]:
    """`wanted` with each `lastTransitionTime` carried over from `current` when that condition's status is unchanged."""
    previous = {c.get("type"): c for c in current or ()}
    result = []
    for condition in wanted:
        before = previous.get(condition["type"])
        unchanged = (
            before is not None and before.get("status") == condition["status"] and before.get("lastTransitionTime")
        )
        stamp = (
            before["lastTransitionTime"]
            if unchanged and before is not None
            else format_fire_time(now.replace(microsecond=0))
        )
        result.append({**condition, "lastTransitionTime": stamp})
    return result


def same(status: Mapping[str, Any], generation: int, wanted: Sequence[Condition]) -> bool:
    """Whether `status` already reports `wanted` for `generation` (transition times aside)."""
    current = [{k: v for k, v in c.items() if k != "lastTransitionTime"} for c in status.get("conditions") or ()]
    return status.get("observedGeneration") == generation and current == list(wanted)
