"""An in-memory index of the cluster's Runs, kept current by a watch: the scheduler's first line of dedupe.

It answers "is there a Run for this idempotency key?" without I/O, and "which Runs of this trigger are still
active / already finished?" for concurrency policies and history limits. It may lag the apiserver by a moment;
that is safe because the apiserver's 409 on the deterministic name settles every race the index cannot see.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from stargraph.runs.manifest import ANNOTATION_SCHEDULED_FIRE, LABEL_TRIGGER_KIND, run_ref
from stargraph.runs.refs import RunRef

__all__ = ["FINISHED_PHASES", "RunIndex", "RunInfo", "TriggerKey"]

FINISHED_PHASES = frozenset({"Succeeded", "Failed"})

TriggerKey = tuple[str, str, str]
"""(namespace, lower-case kind, name) of a trigger."""


@dataclass(frozen=True, slots=True)
class RunInfo:
    ref: RunRef
    trigger: TriggerKey
    phase: str
    created: str
    """creationTimestamp (RFC 3339, sorts chronologically)."""
    finished: str
    """completionTime if set, else creationTimestamp: the order in which history limits prune."""
    scheduled_fire: str = ""
    """The `scheduled-fire` annotation: the nominal instant of the fire this Run is for."""

    @property
    def active(self) -> bool:
        return self.phase not in FINISHED_PHASES


def _trigger_of(body: Mapping[str, Any]) -> TriggerKey | None:
    metadata = body["metadata"]
    for owner in metadata.get("ownerReferences") or ():
        if owner.get("controller"):
            return metadata.get("namespace", ""), str(owner["kind"]).lower(), owner["name"]
    kind = (metadata.get("labels") or {}).get(LABEL_TRIGGER_KIND)
    spec_ref = (body.get("spec") or {}).get("triggerRef") or {}
    if kind and spec_ref.get("name"):
        return metadata.get("namespace", ""), kind, spec_ref["name"]
    return None


class RunIndex:
    def __init__(self) -> None:
        self._by_key: dict[str, RunRef] = {}
        self._by_name: dict[tuple[str, str], RunInfo] = {}
        self._by_trigger: dict[TriggerKey, dict[str, RunInfo]] = defaultdict(dict)
        self._listeners: list[Callable[[TriggerKey], None]] = []

    def subscribe(self, listener: Callable[[TriggerKey], None]) -> None:
        """Call `listener(trigger)` whenever a Run of that trigger appears, changes or goes."""
        self._listeners.append(listener)

    def lookup(self, idempotency_key: str) -> RunRef | None:
        return self._by_key.get(idempotency_key)

    def runs_of(self, trigger: TriggerKey) -> list[RunInfo]:
        return sorted(self._by_trigger.get(trigger, {}).values(), key=lambda info: info.created)

    def __len__(self) -> int:
        return len(self._by_name)

    def on_change(self, change: str, body: dict[str, Any]) -> None:
        """Informer callback (`ADDED`, `MODIFIED`, `DELETED`); also fed the body of a successful create."""
        metadata = body["metadata"]
        name_key = (metadata.get("namespace", ""), metadata["name"])
        previous = self._by_name.pop(name_key, None)
        if previous is not None:
            self._by_key.pop(previous.ref.idempotency_key, None)
            self._by_trigger[previous.trigger].pop(previous.ref.name, None)
            if not self._by_trigger[previous.trigger]:
                del self._by_trigger[previous.trigger]
        touched = {previous.trigger} if previous else set()
        ref = run_ref(body) if change != "DELETED" else None
        trigger = _trigger_of(body) if ref is not None else None
        if ref is not None and trigger is not None:
            status = body.get("status") or {}
            created = metadata.get("creationTimestamp") or ""
            info = RunInfo(
                ref=ref,
                trigger=trigger,
                phase=status.get("phase") or "Pending",
                created=created,
                finished=status.get("completionTime") or created,
                scheduled_fire=(metadata.get("annotations") or {}).get(ANNOTATION_SCHEDULED_FIRE, ""),
            )
            self._by_name[name_key] = info
            self._by_key[ref.idempotency_key] = ref
            self._by_trigger[trigger][ref.name] = info
            touched.add(trigger)
        for changed in touched:
            for listener in self._listeners:
                listener(changed)
