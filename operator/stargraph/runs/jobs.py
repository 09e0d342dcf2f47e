"""The Job of a Run: built from the Run's `jobTemplate`, with the Run's parameters in the containers.

Each container (and init container) gets the Run's identity and parameters as environment variables, ahead of its
own (which win on a clash): `STARGRAPH_RUN`, `STARGRAPH_NAMESPACE`, `STARGRAPH_TRIGGER`, `STARGRAPH_TRIGGER_KIND`,
`STARGRAPH_SCHEDULED_FIRE`, `STARGRAPH_PARAM_<NAME>` per parameter (upper-cased, other characters as `_`; values
that are not strings as JSON), and `STARGRAPH_BODY` when the Run carries a webhook delivery's body.
`$(params.NAME)`, `$(run.name)`, `$(run.namespace)`, `$(run.scheduledFire)`, `$(trigger.name)` and
`$(trigger.kind)` in `command`, `args` and `env[].value` are replaced by their values; `$$(` stays a literal `$(`
(Kubernetes' own escape, so its `$(VAR)` expansion of environment variables still works). A reference to a
parameter the trigger does not declare is an error, found when the trigger is applied
(`reference_errors`), not when it fires.

The Job is named after the Run (Run names are valid label values, which Job names must be) and owned by it, so
deleting a Run deletes its Job and Pods, and a second Job for one Run cannot exist.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from stargraph.api.v1alpha1 import GROUP, RunTemplate
from stargraph.models import FieldError
from stargraph.runs.manifest import LABEL_TRIGGER, LABEL_TRIGGER_KIND, RUN_API_VERSION
from stargraph.runs.naming import label_value

__all__ = [
    "LABEL_RUN",
    "InvalidJobTemplate",
    "build_job",
    "env_name",
    "escape_references",
    "job_name",
    "reference_errors",
    "run_template_errors",
]

LABEL_RUN = f"{GROUP}/run"
"""On each Job and its Pods: the name of the Run they belong to."""

_REFERENCE = re.compile(r"\$(\$?)\(([A-Za-z_][A-Za-z0-9_]*)\.([^)]*)\)")
_BUILT_IN = {"run": ("name", "namespace", "scheduledFire"), "trigger": ("name", "kind")}
_CONTAINER_LISTS = ("initContainers", "containers")


class InvalidJobTemplate(ValueError):
    """A jobTemplate that cannot become a Job; the message names the field (`...containers[0].args[1]: ...`)."""


def job_name(run_name: str) -> str:
    """The name of a Run's Job: the Run's own (at most 63 characters, as a Job's must be)."""
    return run_name


def env_name(param: str) -> str:
    """`STARGRAPH_PARAM_<NAME>` for parameter `param`."""
    return "STARGRAPH_PARAM_" + re.sub(r"[^A-Z0-9_]", "_", param.upper())


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), sort_keys=True)


def _strings(template: Mapping[str, Any], where: str) -> Iterator[tuple[str, str, list[Any], int | str]]:
    """(field path, value, container, key) of each string substitution applies to; `container[key]` holds it."""
    pod = ((template.get("spec") or {}).get("template") or {}).get("spec") or {}
    for list_name in _CONTAINER_LISTS:
        for i, container in enumerate(pod.get(list_name) or ()):
            at = f"{where}.spec.template.spec.{list_name}[{i}]"
            for field in ("command", "args"):
                values = container.get(field) or []
                for j, value in enumerate(values):
                    if isinstance(value, str):
                        yield f"{at}.{field}[{j}]", value, values, j
            for j, variable in enumerate(container.get("env") or ()):
                if isinstance(variable.get("value"), str):
                    yield f"{at}.env[{j}].value", variable["value"], variable, "value"


def reference_errors(template: Mapping[str, Any], *, params: Mapping[str, Any], where: str) -> list[FieldError]:
    """What in `template` refers to an undeclared parameter or an unknown field of the Run, or clashes in its
    environment, one error per problem naming the field; empty when the template is sound."""
    errors = []
    for path, value, _, _ in _strings(template, where):
        for escaped, scope, name in _REFERENCE.findall(value):
            if escaped:
                continue
            if scope == "params" and name not in params:
                known = ", ".join(sorted(params)) or "none declared in runTemplate.params"
                errors.append(FieldError(path, f"$(params.{name}) names no parameter (known: {known})"))
            elif scope in _BUILT_IN and name not in _BUILT_IN[scope]:
                errors.append(FieldError(path, f"$({scope}.{name}) is not one of {', '.join(_BUILT_IN[scope])}"))
    by_env: dict[str, str] = {}
    for param in sorted(params):
        other = by_env.setdefault(env_name(param), param)
        if other != param:
            errors.append(FieldError(where, f"parameters {other!r} and {param!r} would both be {env_name(param)}"))
    return errors


def escape_references(template: Mapping[str, Any], *, where: str) -> tuple[dict[str, Any], list[str]]:
    """A copy of `template` in which each reference stargraph would replace is escaped once more, so the Job gets
    the text `template` has now; and the fields changed. For a jobTemplate written for a plain Job (a CronJob's):
    `$(params.x)` becomes `$$(params.x)`, which a Run's Job gets as `$(params.x)`, and `$$(a.b)` becomes `$$$(a.b)`.
    """
    escaped: dict[str, Any] = json.loads(json.dumps(template))  # a deep copy the escaping may change
    changed = []
    for path, value, holder, key in _strings(escaped, where):
        new = _REFERENCE.sub(lambda match: "$" + match.group(0), value)
        if new != value:
            holder[key] = new  # type: ignore[index]
            changed.append(path)
    return escaped, changed


def run_template_errors(template: RunTemplate) -> list[FieldError]:
    """What is wrong with a trigger's `runTemplate.jobTemplate`, each naming its field; empty if sound."""
    if not template.job_template:
        return []
    return reference_errors(template.job_template, params=template.params, where="spec.runTemplate.jobTemplate")


def build_job(run: Mapping[str, Any]) -> dict[str, Any]:
    """The Job manifest of Run object `run` (which has a `spec.jobTemplate`); `InvalidJobTemplate` when it cannot
    have one."""
    metadata, spec = run["metadata"], run["spec"]
    template = spec.get("jobTemplate")
    if not isinstance(template, Mapping):
        raise InvalidJobTemplate("spec.jobTemplate: the Run has none")
    params: dict[str, Any] = dict(spec.get("params") or {})
    trigger = spec["triggerRef"]
    if errors := reference_errors(template, params=params, where="spec.jobTemplate"):
        raise InvalidJobTemplate("; ".join(map(str, errors)))
    values = {
        "params": {name: _text(value) for name, value in params.items()},
        "run": {"name": metadata["name"], "namespace": metadata["namespace"], "scheduledFire": spec["scheduledFire"]},
        "trigger": {"name": trigger["name"], "kind": trigger["kind"]},
    }
    job_template: dict[str, Any] = json.loads(json.dumps(template))  # a deep copy the substitution may change
    for _, value, holder, key in _strings(job_template, "spec.jobTemplate"):
        holder[key] = _REFERENCE.sub(lambda match: _substitute(match, values), value)  # type: ignore[index]
    environment = [
        {"name": "STARGRAPH_RUN", "value": metadata["name"]},
        {"name": "STARGRAPH_NAMESPACE", "value": metadata["namespace"]},
        {"name": "STARGRAPH_TRIGGER", "value": trigger["name"]},
        {"name": "STARGRAPH_TRIGGER_KIND", "value": trigger["kind"]},
        {"name": "STARGRAPH_SCHEDULED_FIRE", "value": spec["scheduledFire"]},
        *({"name": env_name(name), "value": value} for name, value in sorted(values["params"].items())),
        *([{"name": "STARGRAPH_BODY", "value": spec["body"]}] if spec.get("body") is not None else []),
    ]
    job_spec: dict[str, Any] = job_template.get("spec") or {}
    pod_template: dict[str, Any] = job_spec.setdefault("template", {})
    pod = pod_template.setdefault("spec", {})
    for list_name in _CONTAINER_LISTS:
        for container in pod.get(list_name) or ():
            container["env"] = [*environment, *(container.get("env") or ())]
    labels = {
        LABEL_RUN: label_value(metadata["name"]),
        LABEL_TRIGGER: label_value(trigger["name"]),
        LABEL_TRIGGER_KIND: str(trigger["kind"]).lower(),
    }
    pod_metadata = pod_template.setdefault("metadata", {})
    pod_metadata["labels"] = {**(pod_metadata.get("labels") or {}), **labels}
    template_metadata = job_template.get("metadata") or {}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(metadata["name"]),
            "namespace": metadata["namespace"],
            "labels": {**(template_metadata.get("labels") or {}), **labels},
            "annotations": dict(template_metadata.get("annotations") or {}),
            "ownerReferences": [
                {
                    "apiVersion": RUN_API_VERSION,
                    "kind": "Run",
                    "name": metadata["name"],
                    "uid": metadata["uid"],
                    "controller": True,
                }
            ],
        },
        "spec": job_spec,
    }


def _substitute(match: re.Match[str], values: Mapping[str, Mapping[str, str]]) -> str:
    escaped, scope, name = match.groups()
    if escaped:
        return match.group(0)[1:]
    found = values.get(scope, {}).get(name)
    # Any other $(a.b) is not ours (reference_errors has refused ours with unknown names): left for Kubernetes.
    return match.group(0) if found is None else found
