"""The pluggy hook specification of a trigger's lifecycle; these docstrings are the contract.

Implementations may be plain functions or coroutines. The dispatcher calls each plugin separately (never through
`pm.hook.*`, which would stop at the first exception); its async variant also bounds each call with a timeout.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pluggy

__all__ = ["LIFECYCLE_HOOKS", "PROJECT_NAME", "hookimpl", "hookspec"]

PROJECT_NAME = "stargraph"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def trigger_init(deps: Mapping[str, Any]) -> Any:
    """Configure the trigger from `deps` (scheduler, clock, metrics, `cron_specs`, `webhook_specs`, ...).

    Must not start background work; raising marks this plugin failed without affecting the others.
    """


@hookspec
def trigger_start() -> Any:
    """Begin emitting events. Cron starts one asyncio task per spec; request-driven triggers do nothing."""


@hookspec
def trigger_stop() -> Any:
    """Stop emitting and drain in-flight work. Called at shutdown even if `trigger_start` failed."""


@hookspec
def trigger_routes() -> Sequence[object]:
    """Return the HTTP routes the trigger serves for the serve app to mount.

    Each is a `stargraph.http.Route` (framework-neutral, adapted by the serve layer) or a Starlette/FastAPI route
    mounted as it is (`fastapi.routing.APIRoute`, `starlette.routing.Route`, `Mount`, an `APIRouter`'s `.routes`).
    """
    raise NotImplementedError


LIFECYCLE_HOOKS = frozenset({"trigger_init", "trigger_start", "trigger_stop"})
