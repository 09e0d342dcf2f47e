"""Building the plugin manager: built-in and third-party triggers are discovered the same way, from entry points.

An entry point in group `stargraph.triggers` names either a pluggy plugin (an object or class with `@hookimpl`
methods) or a plain class implementing the `Trigger` protocol, which is wrapped in `TriggerHooks`. A class is
instantiated without arguments. A distribution that fails to import or instantiate is logged and skipped: one
broken package must not take the others down.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import pluggy
import structlog

from stargraph.plugin import hookspecs
from stargraph.plugin.hookspecs import PROJECT_NAME
from stargraph.plugin.protocol import Trigger
from stargraph.plugin.trigger_hooks import TriggerHooks

__all__ = [
    "ENTRY_POINT_GROUP",
    "PROJECT_NAME",
    "LoadFailure",
    "load_trigger_plugins",
    "new_plugin_manager",
    "unwrap",
]

ENTRY_POINT_GROUP = "stargraph.triggers"

log = structlog.get_logger("stargraph.plugin.triggers")


def unwrap(plugin: object) -> object:
    """The object a registered plugin stands for: the `Trigger` inside a `TriggerHooks`, else the plugin itself."""
    return plugin.trigger if isinstance(plugin, TriggerHooks) else plugin


@dataclass(frozen=True, slots=True)
class LoadFailure:
    name: str
    value: str
    error: BaseException


def new_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    return pm


def _has_hookimpls(obj: object) -> bool:
    # Look at the class, not the instance, so that no property of a plugin runs before it is initialised.
    owner = obj if inspect.ismodule(obj) else type(obj)
    marker = f"{PROJECT_NAME}_impl"
    return any(hasattr(getattr(owner, name, None), marker) for name in dir(owner))


def _as_plugin(loaded: Any) -> object:
    instance = loaded() if inspect.isclass(loaded) else loaded
    if _has_hookimpls(instance):
        return instance
    if isinstance(instance, Trigger):
        return TriggerHooks(instance)
    raise TypeError(f"{loaded!r} has no stargraph hookimpls and does not implement the Trigger protocol")


def load_trigger_plugins(
    pm: pluggy.PluginManager,
    *,
    only: Iterable[str] | None = None,
    eps: Iterable[EntryPoint] | None = None,
) -> list[LoadFailure]:
    """Register every trigger found in the entry-point group (or just the names in `only`).

    Returns the entry points that could not be loaded; they are also logged.
    """
    wanted = set(only) if only is not None else None
    failures: list[LoadFailure] = []
    for ep in eps if eps is not None else entry_points(group=ENTRY_POINT_GROUP):
        if (wanted is not None and ep.name not in wanted) or pm.has_plugin(ep.name):
            continue
        try:
            pm.register(_as_plugin(ep.load()), name=ep.name)
        except Exception as exc:
            log.error("trigger plugin could not be loaded", plugin=ep.name, entry_point=ep.value, error=repr(exc))
            failures.append(LoadFailure(name=ep.name, value=ep.value, error=exc))
    return failures
