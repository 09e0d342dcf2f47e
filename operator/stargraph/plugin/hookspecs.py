"""The pluggy hook specification of a trigger's lifecycle; these docstrings are the contract.

Implementations may be plain functions or coroutines. The dispatcher calls each plugin separately (never through
`pm.hook.*`, which would stop at the first exception) and bounds each call with a timeout.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pluggy

from stargraph.http import Route

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
def trigger_routes() -> Sequence[Route]:
    """Return the HTTP routes the trigger serves, as `stargraph.http.Route`s."""
    raise NotImplementedError


LIFECYCLE_HOOKS = frozenset({"trigger_init", "trigger_start", "trigger_stop"})
