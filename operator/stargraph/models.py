"""The strict pydantic base of every model that crosses a boundary, and how validation errors are worded.

A leaf: the CRD models, the trigger specs, `TriggerEvent` and the HTTP bodies all build on it, so it imports
nothing of stargraph (loading a model never loads the plugin machinery).
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, ValidationError

__all__ = ["FieldError", "IRBase", "describe_validation_error", "field_errors"]


class IRBase(BaseModel):
    """Base of every model that crosses a boundary: unknown fields are an error, never silently dropped."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def describe_validation_error(exc: ValidationError) -> str:
    """One line naming every offending field by its path, e.g. `spec.schedule: Field required`."""
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or '(root)'}: {error['msg']}" for error in exc.errors()
    )


@dataclass(frozen=True, slots=True)
class FieldError:
    """One thing wrong with an object, naming its field by path (`spec.schedule`, `spec.secretRef.keys[1]`).

    `reason` is the CamelCase reason a Stalled condition reports it with.
    """

    field: str
    message: str
    reason: str = "InvalidSpec"

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def field_errors(exc: ValidationError, *, prefix: str) -> list[FieldError]:
    """Each error of `exc` as a `FieldError` under `prefix` (`spec`): list positions as `[i]`, as Kubernetes does."""
    errors = []
    for error in exc.errors():
        path = prefix
        for part in error["loc"]:
            path += f"[{part}]" if isinstance(part, int) else f".{part}"
        errors.append(FieldError(path, error["msg"]))
    return errors
