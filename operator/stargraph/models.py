"""The strict pydantic base of every model that crosses a boundary, and how its validation errors are worded.

A leaf: the CRD models, the trigger specs, `TriggerEvent` and the HTTP bodies all build on it, so it imports
nothing of stargraph (loading a model never loads the plugin machinery).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, ValidationError

__all__ = ["IRBase", "describe_validation_error"]


class IRBase(BaseModel):
    """Base of every model that crosses a boundary: unknown fields are an error, never silently dropped."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def describe_validation_error(exc: ValidationError) -> str:
    """One line naming every offending field by its path, e.g. `spec.schedule: Field required`."""
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or '(root)'}: {error['msg']}" for error in exc.errors()
    )
