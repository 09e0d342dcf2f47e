"""The contract every trigger implements: the `Trigger` protocol and the strict pydantic base for its models."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, ValidationError

__all__ = ["IRBase", "Trigger", "describe_validation_error"]


class IRBase(BaseModel):
    """Base of every model that crosses a boundary: unknown fields are an error, never silently dropped."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def describe_validation_error(exc: ValidationError) -> str:
    """One line naming every offending field by its path, e.g. `spec.schedule: Field required`."""
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or '(root)'}: {error['msg']}" for error in exc.errors()
    )


@runtime_checkable
class Trigger(Protocol):
    """A source of `TriggerEvent`s.

    Each method may be sync or async. The serve app (`run_trigger_lifecycle`) awaits coroutines on the event loop
    and runs plain functions in a worker thread, so a blocking trigger cannot stall the loop; the reference
    `dispatch_trigger_lifecycle` calls the method directly and hands back its coroutine for the caller to await.
    Code that must touch the event loop (create tasks, use asyncio primitives) belongs in an `async def`.
    """

    def init(self, deps: Mapping[str, Any]) -> Any:
        """Receive the serve context: `scheduler`, `clock`, `metrics`, and plugin config such as `cron_specs`."""

    def start(self) -> Any:
        """Begin emitting events (cron: one task per spec; request-driven triggers: nothing)."""

    def stop(self) -> Any:
        """Stop emitting and drain in-flight work; must return promptly."""

    def routes(self) -> Sequence[object]:
        """HTTP routes this trigger serves: `stargraph.http.Route`s and/or Starlette/FastAPI routes."""
