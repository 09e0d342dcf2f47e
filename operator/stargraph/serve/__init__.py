"""The HTTP face of stargraph (the only package that imports FastAPI): plugin routes, health, readiness, metrics."""

from stargraph.serve.app import App, AppState, create_app

__all__ = ["App", "AppState", "create_app"]
