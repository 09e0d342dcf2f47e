"""A namespaced CustomResourceDefinition with a status subresource, for tests and benchmarks that need a kind of
their own (the product's CRDs are generated from `stargraph.api` instead)."""

from __future__ import annotations

from typing import Any

__all__ = ["namespaced_crd"]

_OPEN_STATUS: dict[str, Any] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}


def namespaced_crd(
    *, group: str, version: str, kind: str, plural: str, spec: dict[str, Any], status: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The CRD of `kind`; `spec` and `status` are the openAPIV3 schemas of those fields (status: anything)."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": plural, "singular": kind.lower(), "kind": kind, "listKind": f"{kind}List"},
            "versions": [
                {
                    "name": version,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {"spec": spec, "status": status or _OPEN_STATUS},
                        }
                    },
                }
            ],
        },
    }
