"""CEL validation rules written on the CRD models, where they apply; `crdgen` turns them into
`x-kubernetes-validations`, which the apiserver checks at every create and update without the operator.

A rule on a field goes in its `Field(json_schema_extra=cel(...))`, a rule over several fields of a model in its
`model_config` (`ConfigDict(json_schema_extra=cel(...))`); `self` is the field's or the model's value. A rule that
blames one field of its model says so with `field_path` (".header"): the apiserver then reports that field. Messages
are printed after the field's path (`spec.schedule: Invalid value: "string": <message>`), so they need not repeat it.
Only what holds without the operator's knowledge belongs here (the shape of a schedule, fields that exclude each
other); what needs a time zone database or cron's calendar is checked by the operator and its admission webhook.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["VALIDATIONS", "Rule", "cel"]

VALIDATIONS = "x-kubernetes-validations"
"""The JSON schema keyword the rules travel under, as the apiserver names it."""


@dataclass(frozen=True, slots=True)
class Rule:
    rule: str
    """A CEL expression over `self` (and `oldSelf` for transition rules) that must be true."""
    message: str
    field_path: str | None = None
    """The field the apiserver blames, relative to where the rule is (".header"); None: that place itself."""

    def to_json(self) -> dict[str, str]:
        out = {"rule": self.rule, "message": self.message}
        if self.field_path is not None:
            out["fieldPath"] = self.field_path
        return out


def cel(*rules: Rule) -> dict[str, Any]:
    """`json_schema_extra` carrying `rules`."""
    return {VALIDATIONS: [rule.to_json() for rule in rules]}
