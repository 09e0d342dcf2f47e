"""The scheduler: turns TriggerEvents into exactly one Run each, deduplicating by idempotency key."""

from stargraph.scheduler.scheduler import Scheduler, SchedulerStopped
from stargraph.scheduler.sinks import InMemoryRunSink, PermanentSinkError, RunRef, RunSink, SubmitResult, payload_sha256

__all__ = [
    "InMemoryRunSink",
    "PermanentSinkError",
    "RunRef",
    "RunSink",
    "Scheduler",
    "SchedulerStopped",
    "SubmitResult",
    "payload_sha256",
]
