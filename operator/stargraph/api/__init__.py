"""The Kubernetes API of stargraph: `stargraph.api.v1alpha1` holds the `stargraph.io/v1alpha1` models (pydantic, the
single source of the CRDs), `stargraph.api.crdgen` generates the CRDs from them.

Import the models from their versioned module, so that code says which version of the API it speaks.
"""

__all__: list[str] = []
