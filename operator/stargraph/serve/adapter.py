"""Making plugin routes mountable: stargraph `Route`s adapted to Starlette, Starlette/FastAPI routes as they are.

A stargraph route's body is read under a size cap (413, from Content-Length and while streaming) and a deadline
(408, so a sender trickling bytes cannot hold a connection and a task for ever). A client that goes away mid-body
is not answered.
"""

from __future__ import annotations

import asyncio

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute
from starlette.routing import Route as StarletteRoute

from stargraph.http import HttpError, HttpRequest, HttpResponse, Route, error_body

__all__ = ["json_response", "mountable", "to_starlette"]


def json_response(response: HttpResponse) -> Response:
    return JSONResponse(dict(response.body), status_code=response.status, headers=dict(response.headers))


def _too_large(cap: int) -> HttpError:
    return HttpError(413, "payload_too_large", f"the body exceeds this endpoint's limit of {cap} bytes")


def _timed_out(timeout: float) -> HttpResponse:
    # The sender is still sending, slowly: the connection is closed rather than read to its end.
    body = error_body("request_timeout", f"the body did not arrive within {timeout:g} s")
    return HttpResponse(status=408, body=body, headers={"connection": "close"})


async def _read_capped(request: Request, cap: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > cap:
                raise _too_large(cap)
        except ValueError as exc:
            raise HttpError(400, "malformed_content_length", "Content-Length is not an integer") from exc
    # Chunked or lying clients: count while streaming and stop reading at the cap.
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            raise _too_large(cap)
        chunks.append(chunk)
    return b"".join(chunks)


def to_starlette(route: Route, *, body_timeout: float) -> StarletteRoute:
    """`body_timeout`: the seconds the whole body may take to arrive, counted from when the handler starts reading."""

    async def endpoint(request: Request) -> Response:
        params = {key: str(value) for key, value in request.path_params.items()}
        cap = route.max_body_bytes(params) if callable(route.max_body_bytes) else route.max_body_bytes
        try:
            async with asyncio.timeout(body_timeout):
                body = await _read_capped(request, cap)
        except HttpError as exc:
            return json_response(exc.response())
        except TimeoutError:
            return json_response(_timed_out(body_timeout))
        except ClientDisconnect:
            # Gone mid-body, or its framing was invalid and the server answered and closed: this goes nowhere.
            return json_response(HttpError(400, "client_disconnected", "the body ended early").response())
        scope = request.scope
        # Straight from the ASGI scope: building Starlette's URL and query objects costs more than the handler.
        neutral = HttpRequest(
            method=scope["method"],
            path=scope["path"],
            headers={key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]},
            body=body,
            path_params=params,
            query=dict(request.query_params) if scope.get("query_string") else {},
        )
        try:
            return json_response(await route.handler(neutral))
        except HttpError as exc:
            return json_response(exc.response())

    return StarletteRoute(route.path, endpoint, methods=list(route.methods), name=route.name)


def mountable(route: object, *, body_timeout: float) -> BaseRoute:
    """What the serve app mounts for one route a plugin returned.

    A stargraph `Route` is adapted (`to_starlette`); a Starlette route (FastAPI's `APIRoute`, Starlette's `Route`,
    `Mount`, ...) is mounted as it is, keeping its own validation and responses. Anything else is a `TypeError`.
    """
    if isinstance(route, Route):
        return to_starlette(route, body_timeout=body_timeout)
    if isinstance(route, BaseRoute):
        return route
    raise TypeError(f"{route!r} is neither a stargraph.http.Route nor a Starlette/FastAPI route")
