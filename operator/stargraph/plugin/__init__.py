"""Trigger plugins: the pluggy hook specification, discovery from entry points, and isolating dispatch."""

from stargraph.plugin.manager import (
    ENTRY_POINT_GROUP,
    PROJECT_NAME,
    TriggerHooks,
    load_trigger_plugins,
    new_plugin_manager,
)
from stargraph.plugin.triggers_dispatcher import DispatchResult, collect_trigger_routes, dispatch_trigger_lifecycle

__all__ = [
    "ENTRY_POINT_GROUP",
    "PROJECT_NAME",
    "DispatchResult",
    "TriggerHooks",
    "collect_trigger_routes",
    "dispatch_trigger_lifecycle",
    "load_trigger_plugins",
    "new_plugin_manager",
]
