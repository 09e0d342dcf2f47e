"""stargraph: a Kubernetes operator that turns trigger manifests into exactly-once Run objects."""

from importlib.metadata import version

__all__ = ["__version__"]

# pyproject.toml is the one place the version is written; this is the installed distribution's copy of it.
__version__ = version("stargraph")
