"""Generate the CustomResourceDefinitions of `stargraph.io/v1alpha1` from the pydantic models.

The models in `stargraph.api.v1alpha1` are the single source of truth; this module turns their JSON schemas into
the *structural* OpenAPI v3 schemas the apiserver demands and adds what only a CRD can say: names, printer
columns and the status subresource. CEL validation rules are written on the models (`stargraph.api.cel`) and passed
on where they stand. The YAML files in `crds/` are its output, committed so
that `kubectl apply -f crds/` needs no Python:

    python -m stargraph.api.crdgen --write crds/    # regenerate after changing the models
    python -m stargraph.api.crdgen --check crds/    # exit 1 when the committed files are stale (CI, unit tests)

JSON schema to structural schema, in short: `$ref`s are inlined, `title`s and `additionalProperties: false`
dropped (pruning removes unknown fields instead), `X | None` becomes X with `nullable: true`, `dict[str, Any]`
becomes an object that preserves unknown fields, and defaults are the ones the apiserver can apply — a model
default becomes `{}` (the apiserver then applies the nested defaults), empty containers and `None` get none.
A JSON schema keyword this module does not know is an error, never silently passed on or dropped.
"""

from __future__ import annotations

import argparse
import copy
import difflib
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import yaml
from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, NoDefault
from pydantic_core import PydanticUndefined, core_schema

from stargraph.api.cel import VALIDATIONS
from stargraph.api.kube_openapi import JOB_TEMPLATE, load_schema
from stargraph.api.v1alpha1 import (
    GROUP,
    VERSION,
    BackfillSpec,
    BackfillStatus,
    CronTriggerSpec,
    CronTriggerStatus,
    RunSpec,
    RunStatus,
    WebhookTriggerSpec,
    WebhookTriggerStatus,
)

__all__ = ["CATEGORY", "COMMAND", "check", "file_name", "generate_crds", "main", "render", "write"]

COMMAND = "python -m stargraph.api.crdgen --write crds/"
"""The command that regenerates `crds/`; named in each file's header."""

JsonObject = dict[str, Any]

CATEGORY = "stargraph"
"""`kubectl get stargraph` lists every kind of this API."""

# fmt: off
# Formats the apiserver validates (k8s.io/kube-openapi/pkg/validation/strfmt); any other format is left out
# rather than passed on, since the apiserver would ignore it and `kubectl explain` would mislead.
_FORMATS = frozenset({
    "bsonobjectid", "byte", "cidr", "date", "date-time", "datetime", "duration", "email", "hexcolor", "hostname",
    "ipv4", "ipv6", "isbn", "isbn10", "isbn13", "mac", "password", "rgbcolor", "ssn", "uri", "uuid", "uuid3",
    "uuid4", "uuid5",
})
# Constraint keywords copied as they are; the apiserver enforces each of them.
_CONSTRAINTS = (
    "minLength", "maxLength", "pattern", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
    "minItems", "maxItems", "minProperties", "maxProperties",
)
# Keywords that carry no meaning for the apiserver.
_IGNORED = ("title", "examples", "deprecated", "readOnly", "writeOnly", "$comment")
# Every keyword `_Converter.convert` understands (after resolving $ref, allOf, anyOf, const and uniqueItems).
_HANDLED = frozenset({
    "description", "type", "format", "enum", "default", "properties", "required", "additionalProperties", "items",
    "x-kubernetes-int-or-string", "x-kubernetes-list-type", VALIDATIONS, *_CONSTRAINTS, *_IGNORED,
})
# fmt: on

_API_VERSION_DOC = (
    "APIVersion defines the versioned schema of this representation of an object. Servers should convert "
    "recognized schemas to the latest internal value, and may reject unrecognized values. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources"
)
_KIND_DOC = (
    "Kind is a string value representing the REST resource this object represents. Servers may infer this from "
    "the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds"
)
_STATUS_DOC = "Observed state, written by the operator; read only for users."
# Long descriptions stay on one line: folded lines are harder to read and to diff.
_NO_WRAP = 1 << 16
_READY = '.status.conditions[?(@.type=="Ready")].status'


@dataclass(frozen=True)
class _Kind:
    """Everything about one kind that the models do not say."""

    kind: str
    plural: str
    short_names: tuple[str, ...]
    spec: type[BaseModel]
    status: type[BaseModel]
    description: str
    columns: tuple[JsonObject, ...]
    # Other vendor extensions by field path, e.g. list types.
    extensions: Mapping[str, JsonObject] = field(default_factory=dict)
    # Kubernetes types by field path: the field's schema is that type's (`kube_openapi`), its description kept.
    kube_types: Mapping[str, str] = field(default_factory=dict)


def _column(name: str, json_path: str, type_: str, description: str, priority: int = 0) -> JsonObject:
    column: JsonObject = {"name": name, "type": type_, "jsonPath": json_path, "description": description}
    if priority:
        column["priority"] = priority
    return column


_AGE = _column("Age", ".metadata.creationTimestamp", "date", "Time since the object was created.")
_READY_COLUMN = _column("Ready", _READY, "string", "Status of the Ready condition.")
_CONDITIONS_LIST = {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]}

_KINDS: tuple[_Kind, ...] = (
    _Kind(
        kind="CronTrigger",
        plural="crontriggers",
        short_names=("ct",),
        spec=CronTriggerSpec,
        status=CronTriggerStatus,
        description="CronTrigger creates exactly one Run per fire of a cron schedule.",
        columns=(
            _column("Schedule", ".spec.schedule", "string", "The cron expression."),
            _column("TimeZone", ".spec.timeZone", "string", "IANA time zone the schedule is read in."),
            _column("Suspended", ".spec.suspend", "boolean", "Whether firing is stopped."),
            _column("Last", ".status.lastScheduleTime", "date", "The latest fire that has its Run."),
            _column(
                "Next",
                ".status.nextScheduleTime",
                "string",
                "The next fire (RFC 3339; kubectl prints future dates as <invalid>).",
            ),
            _READY_COLUMN,
            _AGE,
        ),
        extensions={"status.conditions": _CONDITIONS_LIST},
        kube_types={"spec.runTemplate.jobTemplate": JOB_TEMPLATE},
    ),
    _Kind(
        kind="WebhookTrigger",
        plural="webhooktriggers",
        short_names=("wt",),
        spec=WebhookTriggerSpec,
        status=WebhookTriggerStatus,
        description="WebhookTrigger creates exactly one Run per signed HTTP delivery.",
        columns=(
            _column("Scheme", ".spec.signature.scheme", "string", "How deliveries are signed."),
            _column("Path", ".status.path", "string", "Where deliveries go, relative to the operator's service."),
            _column("Last Delivery", ".status.lastDeliveryTime", "date", "The latest accepted delivery."),
            _READY_COLUMN,
            _AGE,
        ),
        extensions={"status.conditions": _CONDITIONS_LIST},
        kube_types={"spec.runTemplate.jobTemplate": JOB_TEMPLATE},
    ),
    _Kind(
        kind="Run",
        plural="runs",
        short_names=("sgrun",),
        spec=RunSpec,
        status=RunStatus,
        description="Run records one fire of a trigger; created by the operator (or `kubectl stargraph run`).",
        columns=(
            _column("Trigger", ".spec.triggerRef.name", "string", "The trigger that fired."),
            _column("Source", ".spec.source", "string", "cron, webhook or manual."),
            _column("Phase", ".status.phase", "string", "Pending, Running, Succeeded or Failed."),
            _column("Duration", ".status.duration", "string", "From start to completion."),
            _column("Scheduled", ".spec.scheduledFire", "date", "The nominal fire time."),
            _column("Job", ".status.jobRef.name", "string", "The Job of the Run.", priority=1),
            _AGE,
        ),
        extensions={"status.conditions": _CONDITIONS_LIST},
    ),
    _Kind(
        kind="Backfill",
        plural="backfills",
        short_names=("bf",),
        spec=BackfillSpec,
        status=BackfillStatus,
        description="Backfill creates the Runs of every fire of a CronTrigger's schedule in a past range, once each.",
        columns=(
            _column("Trigger", ".spec.triggerRef.name", "string", "The CronTrigger whose schedule is backfilled."),
            _column("Created", ".status.created", "integer", "Runs this Backfill created."),
            _column("Existing", ".status.alreadyExisting", "integer", "Fires whose Run existed already."),
            _column("Remaining", ".status.remaining", "integer", "Fires not yet looked at."),
            _READY_COLUMN,
            _AGE,
        ),
        extensions={"status.conditions": _CONDITIONS_LIST},
    ),
)


class _DefaultsForApiserver(GenerateJsonSchema):
    """Defaults as the apiserver should apply them.

    `default_factory` values are included (pydantic leaves them out); a model default is reduced to its fields
    that differ from their own defaults (usually `{}`), which the apiserver completes from the nested defaults;
    `None` and empty containers get no default, since an absent field means the same.
    """

    def get_default_value(self, schema: core_schema.WithDefaultSchema) -> Any:
        if "default_factory" in schema:
            if schema.get("default_factory_takes_data"):
                return NoDefault
            value: Any = schema["default_factory"]()  # type: ignore[call-arg]
        else:
            value = schema.get("default", NoDefault)
        if value is NoDefault or value is PydanticUndefined or value is None:
            return NoDefault
        if isinstance(value, BaseModel):
            return value.model_dump(mode="json", by_alias=True, exclude_defaults=True)
        if isinstance(value, (list, tuple, dict, set, frozenset)) and not value:
            return NoDefault
        return value


class _Converter:
    """JSON schema (pydantic, draft 2020-12) to a structural OpenAPI v3 schema."""

    def __init__(self, defs: Mapping[str, JsonObject]) -> None:
        self._defs = defs

    def _resolve(self, node: Mapping[str, Any]) -> JsonObject:
        """Inline `$ref` and single-element `allOf`; keywords beside them (a field's description) win, except CEL
        rules: the model's and the field's all apply."""
        node = dict(node)
        while "$ref" in node or "allOf" in node:
            if "$ref" in node:
                ref = node.pop("$ref")
                prefix = "#/$defs/"
                if not isinstance(ref, str) or not ref.startswith(prefix) or ref[len(prefix) :] not in self._defs:
                    raise ValueError(f"unresolvable $ref {ref!r}")
                target = self._defs[ref[len(prefix) :]]
            else:
                parts = node.pop("allOf")
                if len(parts) != 1:
                    raise ValueError(f"allOf with {len(parts)} schemas is not supported")
                target = parts[0]
            rules = [*target.get(VALIDATIONS, ()), *node.get(VALIDATIONS, ())]
            node = {**target, **node}
            if rules:
                node[VALIDATIONS] = rules
        return node

    def convert(self, raw: Mapping[str, Any], where: str) -> JsonObject:
        node = self._resolve(raw)
        nullable = False
        if "anyOf" in node:
            options = [self._resolve(o) for o in node.pop("anyOf")]
            non_null = [o for o in options if o.get("type") != "null"]
            nullable = len(non_null) < len(options)
            if len(non_null) == 1:
                node = {**non_null[0], **node}
            elif sorted(o.get("type", "") for o in non_null) == ["integer", "string"]:
                node = {**node, "x-kubernetes-int-or-string": True}
            else:
                raise ValueError(f"{where}: anyOf of {non_null} cannot be expressed in a structural schema")
        if node.get("uniqueItems"):
            node.pop("uniqueItems")
            node.setdefault("x-kubernetes-list-type", "set")
        else:
            node.pop("uniqueItems", None)
        if "exclusiveMinimum" in node:  # draft 2020-12 number form to OpenAPI v3.0 boolean form
            node["minimum"], node["exclusiveMinimum"] = node["exclusiveMinimum"], True
        if "exclusiveMaximum" in node:
            node["maximum"], node["exclusiveMaximum"] = node["exclusiveMaximum"], True
        if "const" in node:
            node["enum"] = [node.pop("const")]

        out: JsonObject = {}
        if "description" in node:
            out["description"] = node["description"]
        type_ = node.get("type")
        if type_ is not None:
            if type_ not in ("object", "array", "string", "integer", "number", "boolean"):
                raise ValueError(f"{where}: type {type_!r} is not supported")
            out["type"] = type_
        elif not node.get("x-kubernetes-int-or-string"):
            # Any: every JSON value is accepted and kept as it is.
            out["x-kubernetes-preserve-unknown-fields"] = True
        if node.get("format") in _FORMATS:
            out["format"] = node["format"]
        if "enum" in node:
            out["enum"] = list(node["enum"])
        if "default" in node and node["default"] is not None:
            out["default"] = copy.deepcopy(node["default"])
        if nullable:
            out["nullable"] = True
        for key in _CONSTRAINTS:
            if key in node:
                out[key] = node[key]

        if type_ == "object":
            properties = node.get("properties")
            additional = node.get("additionalProperties")
            if properties:
                out["properties"] = {name: self.convert(child, f"{where}.{name}") for name, child in properties.items()}
                if node.get("required"):
                    out["required"] = list(node["required"])
                if additional is True:  # a model with extra="allow"
                    out["x-kubernetes-preserve-unknown-fields"] = True
            elif additional is True or additional is None or additional == {}:
                out["x-kubernetes-preserve-unknown-fields"] = True
            elif isinstance(additional, Mapping):
                out["additionalProperties"] = self.convert(additional, f"{where}.*")
        elif type_ == "array":
            out["items"] = self.convert(node.get("items", {}), f"{where}[]")
        for key in ("x-kubernetes-int-or-string", "x-kubernetes-list-type"):
            if key in node:
                out[key] = node[key]
        if VALIDATIONS in node:
            # In the order the apiserver documents the keys; pydantic sorts them.
            keys = ("rule", "message", "fieldPath")
            out[VALIDATIONS] = [{key: rule[key] for key in keys if key in rule} for rule in node[VALIDATIONS]]

        if unknown := sorted(set(node) - _HANDLED):
            raise ValueError(f"{where}: JSON schema keywords {unknown} are not supported by crdgen")
        return out


def _model_schema(model: type[BaseModel], where: str) -> JsonObject:
    raw = model.model_json_schema(by_alias=True, schema_generator=_DefaultsForApiserver)
    defs = raw.pop("$defs", {})
    return _Converter(defs).convert(raw, where)


def _at(schema: JsonObject, path: str) -> JsonObject:
    node = schema
    for part in path.split("."):
        try:
            node = node["properties"][part]
        except KeyError:
            raise ValueError(f"no field {path!r} in the schema (renamed in the model?)") from None
    return node


def _root_schema(kind: _Kind) -> JsonObject:
    spec = _model_schema(kind.spec, "spec")
    status = _model_schema(kind.status, "status")
    if "description" not in status:
        status = {"description": _STATUS_DOC, **status}
    root: JsonObject = {
        "description": kind.description,
        "type": "object",
        "properties": {
            "apiVersion": {"description": _API_VERSION_DOC, "type": "string"},
            "kind": {"description": _KIND_DOC, "type": "string"},
            # The apiserver forbids anything else here, even a description: metadata's schema is built in.
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
        "required": ["spec"],
    }
    for path, type_name in sorted(kind.kube_types.items()):
        node = _at(root, path)
        described = {"description": node["description"]} if "description" in node else {}
        node.clear()
        node.update({**described, **load_schema(type_name)})
    for path, extension in sorted(kind.extensions.items()):
        _at(root, path).update(copy.deepcopy(extension))
    return root


def _crd(kind: _Kind) -> JsonObject:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{kind.plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
                "plural": kind.plural,
                "singular": kind.kind.lower(),
                "shortNames": list(kind.short_names),
                "categories": [CATEGORY],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [dict(column) for column in kind.columns],
                    "schema": {"openAPIV3Schema": _root_schema(kind)},
                }
            ],
        },
    }


def generate_crds() -> list[JsonObject]:
    """The CRDs of every kind (CronTrigger, WebhookTrigger, Run, Backfill), as dicts ready for YAML or the API."""
    return [_crd(kind) for kind in _KINDS]


def file_name(crd: Mapping[str, Any]) -> str:
    """`<plural>.<group>.yaml`, the CRD's own name."""
    return f"{crd['metadata']['name']}.yaml"


class _Dumper(yaml.SafeDumper):
    """Never writes anchors and aliases, even when one object occurs twice."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def render(crd: Mapping[str, Any]) -> str:
    """The YAML text of `crd`, with a header naming the command that generated it."""
    header = f"# Generated by `{COMMAND}` from stargraph/api/v1alpha1.py. Do not edit.\n"
    body = yaml.dump(dict(crd), Dumper=_Dumper, sort_keys=False, width=_NO_WRAP, allow_unicode=True)
    return header + body


def write(directory: Path) -> list[Path]:
    """Write every CRD to `directory` (created if missing); return the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for crd in generate_crds():
        path = directory / file_name(crd)
        path.write_text(render(crd), encoding="utf-8")
        paths.append(path)
    return paths


def check(directory: Path, out: IO[str]) -> bool:
    """Compare `directory` with what the models generate; print a summary of each difference to `out`."""
    up_to_date = True
    for crd in generate_crds():
        path = directory / file_name(crd)
        expected = render(crd)
        try:
            actual = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            print(f"{path}: missing", file=out)
            up_to_date = False
            continue
        if actual == expected:
            continue
        up_to_date = False
        diff = list(
            difflib.unified_diff(
                actual.splitlines(keepends=True),
                expected.splitlines(keepends=True),
                fromfile=f"{path} (committed)",
                tofile=f"{path} (generated)",
                n=1,
            )
        )
        changed = sum(1 for line in diff if line[:1] in "+-" and line[:3] not in ("+++", "---"))
        print(f"{path}: differs ({changed} lines)", file=out)
        out.writelines(diff[:60])
        if len(diff) > 60:
            print(f"... {len(diff) - 60} more diff lines", file=out)
    if not up_to_date:
        print(f"regenerate with: {COMMAND}", file=out)
    return up_to_date


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stargraph.api.crdgen",
        description="Generate the stargraph.io CRDs from the pydantic models.",
    )
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write", metavar="DIR", type=Path, help="write <plural>.stargraph.io.yaml files to DIR")
    action.add_argument("--check", metavar="DIR", type=Path, help="exit 1 if the files in DIR are not up to date")
    args = parser.parse_args(argv)
    if args.write is not None:
        for path in write(args.write):
            print(path)
        return 0
    if args.check is not None:
        return 0 if check(args.check, sys.stdout) else 1
    sys.stdout.write("---\n".join(render(crd) for crd in generate_crds()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
