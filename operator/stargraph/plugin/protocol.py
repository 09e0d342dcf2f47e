"""The `Trigger` protocol: what every trigger plugin implements, and what the dispatcher calls.

It lives with the plugin machinery that depends on it; `stargraph.triggers` re-exports it as the public name
(`stargraph.triggers.Trigger`), so the machinery never imports the triggers built on it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

__all__ = ["Trigger"]


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
