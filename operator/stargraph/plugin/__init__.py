"""Trigger plugins: the pluggy hook specification, discovery from entry points, and isolating dispatch."""

from stargraph.plugin.manager import (
    ENTRY_POINT_GROUP,
    PROJECT_NAME,
    load_trigger_plugins,
    new_plugin_manager,
)
from stargraph.plugin.trigger_hooks import TriggerHooks
from stargraph.plugin.triggers_dispatcher import (
    DispatchResult,
    collect_trigger_routes,
    dispatch_trigger_lifecycle,
    gather_trigger_routes,
    run_trigger_lifecycle,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "PROJECT_NAME",
    "DispatchResult",
    "TriggerHooks",
    "collect_trigger_routes",
    "dispatch_trigger_lifecycle",
    "gather_trigger_routes",
    "load_trigger_plugins",
    "new_plugin_manager",
    "run_trigger_lifecycle",
]
