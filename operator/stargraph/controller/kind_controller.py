"""Objects of a third-party trigger kind → its plugin (`stargraph.triggers.kinds.KubernetesTrigger`) → status.

The plugin decides what an object means; this controller gives every kind the same Kubernetes face as the
built-in ones: kstatus conditions with `observedGeneration`, a Warning Event with the field named when the object
is invalid, and isolation (a plugin that raises stalls only its own object).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog

from stargraph.clock import Clock
from stargraph.controller import conditions
from stargraph.controller.event_recorder import EventRecorder
from stargraph.controller.reporting import report_stalled
from stargraph.controller.status_writer import StatusWriter
from stargraph.triggers.kinds import InvalidTrigger, KubernetesTrigger

__all__ = ["KindController"]

log = structlog.get_logger("stargraph.controller")


class KindController:
    def __init__(self, *, plugin: KubernetesTrigger, status: StatusWriter, events: EventRecorder, clock: Clock) -> None:
        self.plugin = plugin
        self.kind = plugin.trigger_kind
        self._status = status
        self._events = events
        self._clock = clock
        self._applied: dict[tuple[str, str], tuple[str, int]] = {}

    async def reconcile(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        metadata = body["metadata"]
        key = (metadata["namespace"], metadata["name"])
        if event_type == "DELETED" or metadata.get("deletionTimestamp"):
            self._applied.pop(key, None)
            self.plugin.forget(*key)
            return
        generation = metadata.get("generation", 1)
        if self._applied.get(key) == (metadata["uid"], generation):
            return
        current = body.get("status") or {}
        try:
            extra = dict(await self.plugin.reconcile(body))
        except InvalidTrigger as exc:
            self._stall(body, reason=exc.reason, message=exc.message)
            return
        except Exception as exc:
            log.error(
                "trigger plugin failed to reconcile", kind=self.kind.kind, object=f"{key[0]}/{key[1]}", error=repr(exc)
            )
            self._stall(body, reason="ReconcileFailed", message=f"the {self.kind.kind} plugin failed: {exc!r}")
            return
        self._applied[key] = (metadata["uid"], generation)
        wanted = {
            "observedGeneration": generation,
            "conditions": conditions.conditions_for(
                conditions.ready(generation), current.get("conditions"), self._clock.now()
            ),
            **extra,
        }
        if any(current.get(field) != value for field, value in wanted.items()):
            self._write(key, wanted)

    def _stall(self, body: Mapping[str, Any], *, reason: str, message: str) -> None:
        metadata = body["metadata"]
        self._applied.pop((metadata["namespace"], metadata["name"]), None)
        self.plugin.forget(metadata["namespace"], metadata["name"])
        report_stalled(
            body,
            kind=self.kind,
            reason=reason,
            message=message,
            status=self._status,
            events=self._events,
            clock=self._clock,
        )

    def _write(self, key: tuple[str, str], status: Mapping[str, Any]) -> None:
        self._status.update(
            group=self.kind.group,
            version=self.kind.version,
            plural=self.kind.plural,
            namespace=key[0],
            name=key[1],
            status=status,
        )
