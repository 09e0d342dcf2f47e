"""Where Runs go: the `RunSink` interface the scheduler writes through, what it hands a sink, and an in-memory sink.

A sink owns the durable truth about Runs. `lookup` answers from an index the sink keeps current (for Kubernetes,
from a watch) and must be cheap; `create` must itself be idempotent, because the index can lag: the Kubernetes
sink relies on deterministic names and the apiserver's 409.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from stargraph.errors import StargraphError
from stargraph.fires.event import TriggerEvent
from stargraph.fires.keys import split_trigger_id
from stargraph.runs.manifest import TriggerObject
from stargraph.runs.naming import run_name
from stargraph.runs.refs import RunRef, SubmitResult, payload_sha256

__all__ = ["InMemoryRunSink", "PermanentSinkError", "RunRequest", "RunSink"]


@dataclass(frozen=True, slots=True)
class RunRequest:
    """What the scheduler hands a sink: the event, and the trigger object its Run belongs to."""

    event: TriggerEvent
    trigger: TriggerObject | None = None
    """The owner of the Run. None for a manual run, whose payload names the trigger (the sink reads it), and for
    triggers served without a cluster."""
    body: str | None = None
    """Text the Run carries for its executor (a webhook delivery's body, with `passBody`)."""


class PermanentSinkError(StargraphError):
    """A create that retrying cannot fix (invalid object, unknown trigger, name owned by another); not retried.

    `status` and `reason` say how an HTTP caller should be answered.
    """

    def __init__(self, message: str, *, status: int = 409, reason: str = "conflict") -> None:
        super().__init__(reason, message)
        self.status = status


class RunSink(Protocol):
    def lookup(self, idempotency_key: str) -> RunRef | None:
        """The Run already known for this key, from memory; never does I/O."""
        ...

    async def create(self, request: RunRequest) -> SubmitResult:
        """Create the Run for `request.event`, or return the existing one (`created=False`) if it already exists."""
        ...


class InMemoryRunSink:
    """A sink that keeps Runs in a dict: for unit tests, benchmarks and running the triggers without a cluster."""

    def __init__(self) -> None:
        self.runs: dict[str, RunRef] = {}
        self.requests: dict[str, RunRequest] = {}
        """What each Run was created from, by idempotency key."""

    @property
    def events(self) -> dict[str, TriggerEvent]:
        return {key: request.event for key, request in self.requests.items()}

    def lookup(self, idempotency_key: str) -> RunRef | None:
        return self.runs.get(idempotency_key)

    async def create(self, request: RunRequest) -> SubmitResult:
        event = request.event
        existing = self.runs.get(event.idempotency_key)
        if existing is not None:
            return SubmitResult(run=existing, created=False)
        _, namespace, trigger_name = split_trigger_id(event.trigger_id)
        ref = RunRef(
            name=run_name(trigger_name=trigger_name, idempotency_key=event.idempotency_key),
            namespace=namespace,
            idempotency_key=event.idempotency_key,
            trigger_id=event.trigger_id,
            payload_sha256=payload_sha256(event.payload),
        )
        self.runs[event.idempotency_key] = ref
        self.requests[event.idempotency_key] = request
        return SubmitResult(run=ref, created=True)
