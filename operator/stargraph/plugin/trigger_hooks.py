"""`TriggerHooks`: a plain `Trigger` (init/start/stop/routes) registered with pluggy as hook implementations.

Both discovery (`manager`, which wraps triggers in it) and the dispatcher (which recognises a wrapped trigger and
calls its own methods) need it, so it stands apart from both.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from stargraph.plugin.hookspecs import hookimpl
from stargraph.plugin.protocol import Trigger

__all__ = ["TriggerHooks"]


class TriggerHooks:
    """Adapts a `Trigger` (init/start/stop/routes) to the pluggy hooks: each hook calls the trigger's own method.

    A sync method's value comes back as it is and an async one's coroutine comes back unawaited, so callers see the
    trigger exactly as written; `method()` hands the dispatcher the bound method itself, which is how the async
    dispatch tells a coroutine function (awaited on the loop) from a plain one (run in a worker thread).
    """

    def __init__(self, trigger: Trigger) -> None:
        self.trigger = trigger

    def method(self, hook_name: str) -> Callable[..., Any]:
        """The trigger's bound method behind `hook_name` (`trigger_init` → `init`, ...)."""
        method: Callable[..., Any] = getattr(self.trigger, hook_name.removeprefix("trigger_"))
        return method

    @hookimpl
    def trigger_init(self, deps: Mapping[str, Any]) -> Any:
        return self.trigger.init(deps)

    @hookimpl
    def trigger_start(self) -> Any:
        return self.trigger.start()

    @hookimpl
    def trigger_stop(self) -> Any:
        return self.trigger.stop()

    @hookimpl
    def trigger_routes(self) -> Any:
        return self.trigger.routes()
