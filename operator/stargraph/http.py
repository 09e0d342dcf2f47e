"""Framework-neutral HTTP shapes that triggers use to describe their routes.

Triggers never import FastAPI: they return `Route`s whose handlers take an `HttpRequest` and return an
`HttpResponse`. The serve layer adapts them to the web framework, enforcing `max_body_bytes` while it streams the
body, so a trigger only ever sees a body that fits.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from stargraph.errors import StargraphError

__all__ = ["HttpError", "HttpRequest", "HttpResponse", "Route", "error_body", "ignored_response", "run_response"]


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    path: str
    headers: Mapping[str, str]
    """Lower-case header names."""
    body: bytes
    path_params: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    body: Mapping[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)


def error_body(reason: str, message: str) -> dict[str, Any]:
    """The JSON body of every 4xx/5xx this product returns: a stable machine `reason` and a human `message`."""
    return {"error": {"reason": reason, "message": message}}


def run_response(run: Any, *, created: bool) -> HttpResponse:
    """The answer to a request that produced a Run: 201 when this request created it, 200 when it already existed."""
    return HttpResponse(
        status=201 if created else 200,
        body={"run": {"name": run.name, "namespace": run.namespace}, "created": created},
    )


def ignored_response(reason: str, message: str) -> HttpResponse:
    """The answer to a valid request that deliberately creates nothing: 202, so the sender does not retry it."""
    return HttpResponse(status=202, body={"ignored": {"reason": reason, "message": message}, "created": False})


class HttpError(StargraphError):
    """Raised by a handler to answer with an error status; the serve layer turns it into `error_body`."""

    def __init__(self, status: int, reason: str, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(reason, message)
        self.status = status
        self.retry_after = retry_after
        """Seconds after which the same request may succeed; sent as `Retry-After`."""

    def response(self) -> HttpResponse:
        headers = {"retry-after": str(self.retry_after)} if self.retry_after is not None else {}
        return HttpResponse(status=self.status, body=error_body(self.reason, self.message), headers=headers)


Handler = Callable[[HttpRequest], Awaitable[HttpResponse]]


@dataclass(frozen=True, slots=True)
class Route:
    """One HTTP endpoint. `path` uses `{name}` placeholders, which arrive in `HttpRequest.path_params`."""

    path: str
    handler: Handler
    methods: tuple[str, ...] = ("POST",)
    name: str | None = None
    max_body_bytes: int | Callable[[Mapping[str, str]], int] = 1 << 20
    """A fixed cap, or a function of the path params (per-trigger caps); over it the serve layer answers 413."""
