"""The Helm chart's static promises: CRD copies equal the canonical ones, every value is documented and known to the
schema. Rendering, linting and installing need Helm and an apiserver: tests/cluster/test_chart.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "stargraph"
CANONICAL_CRDS = REPO / "crds"
VALUES = CHART / "values.yaml"
SCHEMA = CHART / "values.schema.json"

_KEY_LINE = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z_][\w.-]*):(?:\s|$)")


def _schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(SCHEMA.read_text())
    return schema


def _values() -> dict[str, Any]:
    values: dict[str, Any] = yaml.safe_load(VALUES.read_text())
    return values


def test_chart_crds_are_exact_copies_of_the_canonical_crds() -> None:
    canonical = {p.name: p.read_bytes() for p in CANONICAL_CRDS.glob("*.stargraph.io.yaml")}
    copies = {p.name: p.read_bytes() for p in (CHART / "crds").glob("*.yaml")}
    assert canonical, "no canonical CRDs found in crds/"
    stale = sorted(name for name in canonical.keys() | copies.keys() if canonical.get(name) != copies.get(name))
    assert not stale, f"charts/stargraph/crds/ differs from crds/ for {stale}: run hack/sync-chart-crds.sh"


def test_every_values_key_has_a_comment_line_right_above_it() -> None:
    undocumented = []
    previous = ""
    for number, line in enumerate(VALUES.read_text().splitlines(), start=1):
        match = _KEY_LINE.match(line)
        if match and not previous.lstrip().startswith("#"):
            undocumented.append(f"line {number}: {match['key']}")
        if line.strip():
            previous = line
    assert not undocumented, "values.yaml keys without a comment line directly above:\n" + "\n".join(undocumented)


def _mismatches(values: dict[str, Any], schema: dict[str, Any], prefix: str = "") -> list[str]:
    """Keys of ours that values.yaml and the schema disagree on, walking down while the schema closes objects.

    Free-form maps (labels, annotations, resource quantities) are the user's data: their keys are not compared.
    """
    found = []
    properties = schema.get("properties") or {}
    for key in values.keys() - properties.keys():
        found.append(f"{prefix}{key}: in values.yaml, not in the schema")
    # `global` is what a parent chart passes down; the schema allows it, values.yaml has no default for it.
    for key in properties.keys() - values.keys() - {"global"}:
        found.append(f"{prefix}{key}: in the schema, not in values.yaml")
    for key in values.keys() & properties.keys():
        sub = properties[key]
        if sub.get("additionalProperties") is False and isinstance(values[key], dict):
            found += _mismatches(values[key], sub, f"{prefix}{key}.")
    return found


def test_the_schema_and_values_yaml_describe_the_same_keys() -> None:
    assert _mismatches(_values(), _schema()) == []


def test_every_schema_object_rejects_unknown_keys() -> None:
    """A typo'd key must fail: every object of ours says additionalProperties: false."""

    def open_objects(node: dict[str, Any], where: str) -> list[str]:
        found = []
        if "properties" in node and node.get("additionalProperties") is not False:
            found.append(where or "<root>")
        for key, sub in (node.get("properties") or {}).items():
            found += open_objects(sub, f"{where}.{key}".lstrip("."))
        for index, sub in enumerate(node.get("allOf") or []):
            for branch in ("if", "then", "else"):
                if isinstance(sub.get(branch), dict) and "additionalProperties" in sub[branch]:
                    found.append(f"{where}.allOf[{index}].{branch}")
        items = node.get("items")
        if isinstance(items, dict):
            found += open_objects(items, f"{where}[]")
        return found

    schema = _schema()
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert open_objects(schema, "") == []


def test_values_yaml_is_valid_against_the_schema() -> None:
    jsonschema.Draft7Validator(_schema()).validate(_values())
    with pytest.raises(jsonschema.ValidationError, match="replica"):
        jsonschema.Draft7Validator(_schema()).validate({**_values(), "replica": 2})


def test_chart_metadata() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["kubeVersion"] == ">=1.29.0-0"
    pyproject = (REPO / "pyproject.toml").read_text()
    version = re.search(r'^version = "([^"]+)"', pyproject, re.M)
    assert version and chart["appVersion"] == version[1], "appVersion must match the package version"


@pytest.mark.parametrize(
    "values",
    [
        {"hostNetwork": True, "operator": {"port": 18080}},
        {"extraEnv": [{"name": "KUBERNETES_SERVICE_HOST", "value": "127.0.0.1"}]},
        {"extraEnv": [{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]},
    ],
    ids=["host-network-and-port", "extra-env-value", "extra-env-value-from"],
)
def test_the_schema_accepts_host_network_values(values: dict[str, Any]) -> None:
    jsonschema.Draft7Validator(_schema()).validate({**_values(), **values})


@pytest.mark.parametrize(
    "values",
    [
        {"hostNetwork": "true"},
        {"operator": {"port": 0}},
        {"extraEnv": [{"value": "no name"}]},
        {"extraEnv": [{"name": "PORT", "value": 6443}]},
        {"extraEnv": [{"name": "BOTH", "value": "1", "valueFrom": {}}]},
        {"extraEnv": [{"name": "TYPO", "valu": "1"}]},
    ],
    ids=["host-network-string", "port-zero", "env-without-name", "env-number", "env-value-and-value-from", "env-typo"],
)
def test_the_schema_rejects_bad_host_network_values(values: dict[str, Any]) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(_schema()).validate({**_values(), **values})
