"""Trigger plugins: the pluggy hook specification, discovery from entry points, and isolating dispatch.

The dispatchers live in `stargraph.plugin.triggers_dispatcher`; plugin authors import them (with the rest of the
trigger API) from `stargraph.triggers`.
"""

from stargraph.plugin.manager import (
    ENTRY_POINT_GROUP,
    PROJECT_NAME,
    load_trigger_plugins,
    new_plugin_manager,
)
from stargraph.plugin.trigger_hooks import TriggerHooks

__all__ = [
    "ENTRY_POINT_GROUP",
    "PROJECT_NAME",
    "TriggerHooks",
    "load_trigger_plugins",
    "new_plugin_manager",
]
