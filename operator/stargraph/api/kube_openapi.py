"""Kubernetes' own types inside stargraph's CRDs: the published OpenAPI schema of a built-in type, made structural.

A trigger's `runTemplate.jobTemplate` is a batch/v1 JobTemplateSpec. Its CRD schema is the one the apiserver
publishes for that type (`/openapi/v3/apis/batch/v1`), converted here, so that `kubectl explain` shows the real
fields and `kubectl apply` rejects a misspelt or mistyped one before any Job is made. The converted schema is
committed (`schemas/`), generated from the apiserver the tests run:

    kubectl get --raw /openapi/v3/apis/batch/v1 | python -m stargraph.api.kube_openapi --write

and a cluster test fails when the committed file differs from what that apiserver publishes.

Conversion, in short: `$ref`s and single-element `allOf`s are inlined; int-or-string and Quantity (`oneOf` of a
string and a number) become `x-kubernetes-int-or-string`; an embedded ObjectMeta keeps only labels and
annotations (what a template may set); descriptions, defaults (the apiserver defaults the Job itself) and the
strategic-merge and list-map extensions (a template's lists are replaced whole) are left out. That keeps the CRDs
small enough for client-side `kubectl apply`. A keyword it does not know is an error, never passed on silently.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = ["JOB_TEMPLATE", "SOURCE", "load_schema", "main", "render", "structural_schema"]

JsonObject = dict[str, Any]

JOB_TEMPLATE = "io.k8s.api.batch.v1.JobTemplateSpec"
"""The type of `runTemplate.jobTemplate`."""
SOURCE = "/openapi/v3/apis/batch/v1"
"""Where the apiserver publishes the OpenAPI v3 document that holds `JOB_TEMPLATE`."""
_SCHEMAS = Path(__file__).parent / "schemas"
_PREFIX = "#/components/schemas/"
_OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
_STRING_MAP: JsonObject = {"type": "object", "additionalProperties": {"type": "string"}}
_TEMPLATE_META: JsonObject = {"type": "object", "properties": {"labels": _STRING_MAP, "annotations": _STRING_MAP}}
# Formats the apiserver accepts in a CRD schema that the published Job schema uses.
_FORMATS = frozenset({"byte", "date-time", "int32", "int64", "double"})
# Keywords that say nothing a CRD schema can or needs to (see the module docstring).
_DROPPED = frozenset({
    "description", "default", "x-kubernetes-patch-strategy", "x-kubernetes-patch-merge-key", "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys", "x-kubernetes-map-type", "x-kubernetes-unions", "x-kubernetes-group-version-kind",
})  # fmt: skip
_KEPT = frozenset({"type", "enum", "required", "nullable", "x-kubernetes-preserve-unknown-fields"})
_HANDLED = _DROPPED | _KEPT | {"$ref", "allOf", "oneOf", "format", "properties", "additionalProperties", "items"}


def structural_schema(document: Mapping[str, Any], name: str) -> JsonObject:
    """The structural CRD schema of type `name` (e.g. `JOB_TEMPLATE`) from an OpenAPI v3 `document`."""
    return _Converter(document["components"]["schemas"]).convert({"$ref": _PREFIX + name}, name, ())


class _Converter:
    def __init__(self, schemas: Mapping[str, JsonObject]) -> None:
        self._schemas = schemas

    def convert(self, raw: Mapping[str, Any], where: str, seen: tuple[str, ...]) -> JsonObject:
        node = dict(raw)
        while "$ref" in node or "allOf" in node:
            if "allOf" in node:
                parts = node.pop("allOf")
                if len(parts) != 1:
                    raise ValueError(f"{where}: allOf with {len(parts)} schemas is not supported")
                node = {**parts[0], **node}
                continue
            ref = node.pop("$ref")
            name = ref.removeprefix(_PREFIX)
            if name == _OBJECT_META:
                return dict(_TEMPLATE_META)
            if name in seen:
                raise ValueError(f"{where}: {name} contains itself; a structural schema cannot")
            if name not in self._schemas:
                raise ValueError(f"{where}: unresolvable $ref {ref!r}")
            seen = (*seen, name)
            node = {**self._schemas[name], **node}
        if unknown := sorted(set(node) - _HANDLED):
            raise ValueError(f"{where}: OpenAPI keywords {unknown} are not supported")
        if "oneOf" in node:
            types = sorted(option.get("type", "") for option in node.pop("oneOf"))
            if types not in (["integer", "string"], ["number", "string"]):
                raise ValueError(f"{where}: oneOf of {types} cannot be expressed in a structural schema")
            return {"x-kubernetes-int-or-string": True}
        out: JsonObject = {key: node[key] for key in sorted(_KEPT) if key in node}
        if node.get("format") in _FORMATS:
            out["format"] = node["format"]
        if "properties" in node:
            out["properties"] = {
                field: self.convert(child, f"{where}.{field}", seen) for field, child in node["properties"].items()
            }
        if "additionalProperties" in node:
            out["additionalProperties"] = self.convert(node["additionalProperties"], f"{where}.*", seen)
        if "items" in node:
            out["items"] = self.convert(node["items"], f"{where}[]", seen)
        return out


def _file(name: str) -> str:
    return f"{name}.json"


def load_schema(name: str) -> JsonObject:
    """The committed structural schema of type `name`."""
    text = resources.files("stargraph.api").joinpath("schemas", _file(name)).read_text(encoding="utf-8")
    schema: JsonObject = json.loads(text)
    return schema


def render(schema: Mapping[str, Any]) -> str:
    return json.dumps(schema, indent=1, sort_keys=True) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stargraph.api.kube_openapi",
        description=f"Read the OpenAPI document of {SOURCE} (from an apiserver of the Kubernetes version to match) "
        "on standard input; print the JobTemplateSpec schema embedded in the CRDs, or write it with --write.",
    )
    parser.add_argument("--write", action="store_true", help=f"write {_SCHEMAS}/{_file(JOB_TEMPLATE)}")
    args = parser.parse_args(argv)
    text = render(structural_schema(json.load(sys.stdin), JOB_TEMPLATE))
    if args.write:
        (_SCHEMAS / _file(JOB_TEMPLATE)).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
