"""The HTTP face of stargraph (the only package that imports FastAPI): plugin routes, health, readiness, metrics."""

from stargraph.serve.app import AppState, create_app

__all__ = ["AppState", "create_app"]
