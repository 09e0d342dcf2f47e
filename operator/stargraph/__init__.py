"""stargraph: a Kubernetes operator that turns trigger manifests into exactly-once Run objects."""

__all__ = ["__version__"]

__version__ = "0.1.0"
