"""Isolating dispatch of trigger lifecycle hooks: one raising or hanging plugin never affects the others.

Every plugin's implementation is called on its own, concurrently with the others, under a timeout. The outcome is
reported per plugin as a `DispatchResult`; failures are also logged through the structlog logger
`stargraph.plugin.triggers`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pluggy
import structlog

from stargraph.http import Route
from stargraph.plugin.calls import call_maybe_async
from stargraph.plugin.hookspecs import LIFECYCLE_HOOKS

__all__ = ["DEFAULT_TIMEOUT_SECONDS", "DispatchResult", "collect_trigger_routes", "dispatch_trigger_lifecycle"]

DEFAULT_TIMEOUT_SECONDS = 10.0

log = structlog.get_logger("stargraph.plugin.triggers")


@dataclass(frozen=True, slots=True)
class DispatchResult:
    plugin_name: str
    success: bool
    result: Any = None
    error: BaseException | None = None


async def _call_one(
    pm: pluggy.PluginManager, impl: pluggy.HookImpl, hook_name: str, kwargs: Mapping[str, Any], timeout: float
) -> DispatchResult:
    name = pm.get_name(impl.plugin) or impl.plugin_name
    try:
        result = await asyncio.wait_for(call_maybe_async(impl.function, **kwargs), timeout)
    except TimeoutError as exc:
        error = TimeoutError(f"{hook_name} of plugin {name!r} did not finish within {timeout:g}s")
        error.__cause__ = exc
        log.error("trigger plugin timed out", plugin=name, hook=hook_name, timeout_s=timeout)
        return DispatchResult(plugin_name=name, success=False, error=error)
    except Exception as exc:
        log.error("trigger plugin failed", plugin=name, hook=hook_name, error=repr(exc), exc_info=exc)
        return DispatchResult(plugin_name=name, success=False, error=exc)
    return DispatchResult(plugin_name=name, success=True, result=result)


async def _dispatch(
    pm: pluggy.PluginManager, hook_name: str, kwargs: Mapping[str, Any], timeout: float
) -> list[DispatchResult]:
    caller = getattr(pm.hook, hook_name, None)
    if caller is None:
        raise ValueError(f"unknown hook {hook_name!r}")
    impls = caller.get_hookimpls()  # registration order
    return list(await asyncio.gather(*(_call_one(pm, impl, hook_name, kwargs, timeout) for impl in impls)))


async def dispatch_trigger_lifecycle(
    pm: pluggy.PluginManager,
    hook_name: str,
    deps: Mapping[str, Any] | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
) -> list[DispatchResult]:
    """Call `hook_name` (`trigger_init`, `trigger_start` or `trigger_stop`) on every plugin, each isolated.

    `deps` is passed to `trigger_init` only.
    """
    if hook_name not in LIFECYCLE_HOOKS:
        raise ValueError(f"{hook_name!r} is not a lifecycle hook; expected one of {sorted(LIFECYCLE_HOOKS)}")
    kwargs = {"deps": deps if deps is not None else {}} if hook_name == "trigger_init" else {}
    return await _dispatch(pm, hook_name, kwargs, timeout)


async def collect_trigger_routes(
    pm: pluggy.PluginManager, *, timeout: float = DEFAULT_TIMEOUT_SECONDS
) -> list[DispatchResult]:
    """Call every plugin's `trigger_routes` with the same isolation.

    A successful result holds a `list[Route]`; a plugin returning anything else is reported as failed.
    """
    checked: list[DispatchResult] = []
    for outcome in await _dispatch(pm, "trigger_routes", {}, timeout):
        if outcome.success:
            routes = list(outcome.result or ())
            if all(isinstance(route, Route) for route in routes):
                outcome = DispatchResult(plugin_name=outcome.plugin_name, success=True, result=routes)
            else:
                log.error("trigger plugin returned bad routes", plugin=outcome.plugin_name)
                error = TypeError(f"plugin {outcome.plugin_name!r} returned routes that are not stargraph.http.Route")
                outcome = DispatchResult(plugin_name=outcome.plugin_name, success=False, error=error)
        checked.append(outcome)
    return checked
