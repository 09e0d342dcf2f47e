"""Isolating dispatch of trigger hooks: one raising or hanging plugin never affects the others.

Every plugin's implementation is called on its own and its outcome reported as a `DispatchResult`; failures are
also logged through the structlog logger `stargraph.plugin.triggers`. Two flavours share that contract:

- `dispatch_trigger_lifecycle` and `collect_trigger_routes`, the plain functions of the Triggers Reference: each
  bound method is invoked directly, in turn, and what it returns is the result, a coroutine included (the caller
  awaits it).
- `run_trigger_lifecycle` and `gather_trigger_routes`, what the serve app and the operator use: the plugins run
  concurrently, each under a timeout, coroutines awaited on the loop and plain functions in a worker thread.

Routes are not judged here beyond being routes (a `stargraph.http.Route` or a Starlette/FastAPI route): which ones
can be mounted is the serve layer's decision, and only it imports the web framework.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pluggy
import structlog

from stargraph.http import Route
from stargraph.plugin.calls import call_maybe_async
from stargraph.plugin.hookspecs import LIFECYCLE_HOOKS
from stargraph.plugin.trigger_hooks import TriggerHooks

__all__ = [
    "DEFAULT_TIMEOUT_SECONDS",
    "DispatchResult",
    "collect_trigger_routes",
    "dispatch_trigger_lifecycle",
    "gather_trigger_routes",
    "run_trigger_lifecycle",
]

DEFAULT_TIMEOUT_SECONDS = 10.0

log = structlog.get_logger("stargraph.plugin.triggers")


@dataclass(frozen=True, slots=True)
class DispatchResult:
    plugin_name: str
    success: bool
    result: Any = None
    error: BaseException | None = None


@dataclass(frozen=True, slots=True)
class _Implementation:
    plugin_name: str
    function: Callable[..., Any]


def _implementations(pm: pluggy.PluginManager, hook_name: str) -> list[_Implementation]:
    """Every plugin's implementation of `hook_name`, in registration order, as the bound method to invoke."""
    caller = getattr(pm.hook, hook_name, None)
    if caller is None:
        raise ValueError(f"unknown hook {hook_name!r}")
    found = []
    for impl in caller.get_hookimpls():
        # An adapted `Trigger` is called through its own method, so whether that is sync or async shows.
        plugin = impl.plugin
        function = plugin.method(hook_name) if isinstance(plugin, TriggerHooks) else impl.function
        found.append(_Implementation(plugin_name=pm.get_name(plugin) or impl.plugin_name, function=function))
    return found


def _lifecycle_kwargs(hook_name: str, deps: Mapping[str, Any] | None) -> dict[str, Any]:
    if hook_name not in LIFECYCLE_HOOKS:
        raise ValueError(f"{hook_name!r} is not a lifecycle hook; expected one of {sorted(LIFECYCLE_HOOKS)}")
    return {"deps": deps if deps is not None else {}} if hook_name == "trigger_init" else {}


def _failed(plugin_name: str, hook_name: str, exc: Exception) -> DispatchResult:
    log.error("trigger plugin failed", plugin=plugin_name, hook=hook_name, error=repr(exc), exc_info=exc)
    return DispatchResult(plugin_name=plugin_name, success=False, error=exc)


def _is_route(candidate: object) -> bool:
    # Starlette's routes are recognised by shape (`matches` and `handle`): this package must not import the framework.
    return isinstance(candidate, Route) or all(
        callable(getattr(candidate, attribute, None)) for attribute in ("matches", "handle")
    )


def _as_routes(outcome: DispatchResult) -> DispatchResult:
    """A `trigger_routes` outcome with its routes as a list; anything but a collection of routes fails the plugin.

    A coroutine (from the plain dispatch) is left for the caller to await.
    """
    if not outcome.success or inspect.isawaitable(outcome.result):
        return outcome
    name = outcome.plugin_name
    result = () if outcome.result is None else outcome.result
    routes = list(result) if isinstance(result, Iterable) else None
    if routes is not None and all(_is_route(route) for route in routes):
        return DispatchResult(plugin_name=name, success=True, result=routes)
    log.error("trigger plugin returned bad routes", plugin=name, routes=repr(result))
    error = TypeError(f"plugin {name!r} returned something other than stargraph or Starlette/FastAPI routes")
    return DispatchResult(plugin_name=name, success=False, error=error)


def _call(implementation: _Implementation, hook_name: str, kwargs: Mapping[str, Any]) -> DispatchResult:
    try:
        result = implementation.function(**kwargs)
    except Exception as exc:
        return _failed(implementation.plugin_name, hook_name, exc)
    return DispatchResult(plugin_name=implementation.plugin_name, success=True, result=result)


def dispatch_trigger_lifecycle(
    pm: pluggy.PluginManager, hook_name: str, deps: Mapping[str, Any] | None = None
) -> list[DispatchResult]:
    """Call `hook_name` (`trigger_init`, `trigger_start` or `trigger_stop`) on every plugin in turn, each isolated.

    `deps` is passed to `trigger_init` only. Each bound method is invoked directly: a sync method's return value is
    the result, an async method's coroutine is the result, for the caller to await. No timeout applies (a plain
    call cannot be abandoned); `run_trigger_lifecycle` is the concurrent, timeout-bounded variant.
    """
    kwargs = _lifecycle_kwargs(hook_name, deps)
    return [_call(implementation, hook_name, kwargs) for implementation in _implementations(pm, hook_name)]


def collect_trigger_routes(pm: pluggy.PluginManager) -> list[DispatchResult]:
    """Call every plugin's `trigger_routes` in turn, with the same isolation as `dispatch_trigger_lifecycle`.

    A successful result holds the plugin's routes as a list (stargraph `Route`s and Starlette/FastAPI routes), or
    the coroutine of an async `routes()`, for the caller to await.
    """
    return [
        _as_routes(_call(implementation, "trigger_routes", {}))
        for implementation in _implementations(pm, "trigger_routes")
    ]


async def _call_bounded(
    implementation: _Implementation, hook_name: str, kwargs: Mapping[str, Any], timeout: float
) -> DispatchResult:
    name = implementation.plugin_name
    try:
        result = await asyncio.wait_for(call_maybe_async(implementation.function, **kwargs), timeout)
    except TimeoutError as exc:
        error = TimeoutError(f"{hook_name} of plugin {name!r} did not finish within {timeout:g}s")
        error.__cause__ = exc
        log.error("trigger plugin timed out", plugin=name, hook=hook_name, timeout_s=timeout)
        return DispatchResult(plugin_name=name, success=False, error=error)
    except Exception as exc:
        return _failed(name, hook_name, exc)
    return DispatchResult(plugin_name=name, success=True, result=result)


async def _gather(
    pm: pluggy.PluginManager, hook_name: str, kwargs: Mapping[str, Any], timeout: float
) -> list[DispatchResult]:
    calls = (_call_bounded(impl, hook_name, kwargs, timeout) for impl in _implementations(pm, hook_name))
    return list(await asyncio.gather(*calls))


async def run_trigger_lifecycle(
    pm: pluggy.PluginManager,
    hook_name: str,
    deps: Mapping[str, Any] | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
) -> list[DispatchResult]:
    """Call `hook_name` on every plugin concurrently, each isolated and bounded by `timeout`, awaiting every result.

    `deps` is passed to `trigger_init` only. Async methods run on the loop, sync ones in a worker thread, so a
    blocking plugin cannot stall the loop and a hanging one is abandoned at the timeout.
    """
    return await _gather(pm, hook_name, _lifecycle_kwargs(hook_name, deps), timeout)


async def gather_trigger_routes(
    pm: pluggy.PluginManager, *, timeout: float = DEFAULT_TIMEOUT_SECONDS
) -> list[DispatchResult]:
    """Call every plugin's `trigger_routes` like `run_trigger_lifecycle`; a successful result holds a list of routes."""
    return [_as_routes(outcome) for outcome in await _gather(pm, "trigger_routes", {}, timeout)]
