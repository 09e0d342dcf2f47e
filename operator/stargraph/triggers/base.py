"""The contract every trigger implements: the `Trigger` protocol and the strict pydantic base for its models.

Both are defined below this package (`stargraph.plugin.protocol`, `stargraph.models`) so that the plugin
machinery and the CRD models do not import the triggers; this is their public home.
"""

from __future__ import annotations

from stargraph.models import IRBase, describe_validation_error
from stargraph.plugin.protocol import Trigger

__all__ = ["IRBase", "Trigger", "describe_validation_error"]
