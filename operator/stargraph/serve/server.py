"""Running the HTTP server: uvicorn's h11 protocol with `stargraph.serve.limits` enforced.

On its own uvicorn times out only idle kept-alive connections: a client sending its request head a byte at a time,
or a body nobody reads, holds a connection for ever, and a head that arrives in one piece is never measured. The
protocol here adds a deadline for the head, caps the head's size however it arrives, closes a connection whose
request was answered before its body arrived, and answers every error it produces itself (malformed request,
timeout, too large, too many connections) with the same JSON error body as the application.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import json
import socket
import ssl
from collections.abc import AsyncIterator, Iterator
from typing import Any, cast

import h11
import uvicorn
from starlette.types import ASGIApp
from uvicorn._types import ASGIReceiveCallable, ASGISendCallable, HTTPScope, Scope
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from stargraph.http import error_body
from stargraph.serve.limits import HTTP_LIMITS

__all__ = ["LimitedH11Protocol", "serve", "serving_tls"]

Headers = list[tuple[bytes, bytes]]


def _error(status: int, reason: str, message: str, *extra: tuple[bytes, bytes]) -> tuple[Headers, bytes]:
    body = json.dumps(error_body(reason, message), separators=(",", ":")).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
        *extra,
    ]
    return headers, body


def _head_size(scope: HTTPScope) -> int:
    """The request head's size as parsed (method and version aside): target plus header lines."""
    target = len(scope["raw_path"] or b"") + len(scope["query_string"])
    return target + sum(len(name) + len(value) + 4 for name, value in scope["headers"])


class LimitedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with the server limits of `HTTP_LIMITS`."""

    limits = HTTP_LIMITS

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        # Not uvicorn's `limit_concurrency` (left unset): `_admit` applies the same check and answers in JSON.
        self._app = self.app
        self.app = self._admit
        self._head_timer: asyncio.TimerHandle | None = None
        self._linger_timer: asyncio.TimerHandle | None = None

    # -- the request head: a deadline and a size -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer = self.loop.call_later(self.limits.header_timeout, self._head_timed_out)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._head_timer is not None and self.conn.their_state is not h11.IDLE:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        if self.conn.trailing_data[0]:
            message = f"the request head did not arrive within {self.limits.header_timeout:g} s"
            self._reply_and_close(408, "request_timeout", message)
        else:
            self.transport.close()  # nothing was asked: nobody to answer

    def send_400_response(self, msg: str) -> None:
        """h11 refused the bytes received; uvicorn's `msg` is always the same, the buffer tells a head too large."""
        if len(self.conn.trailing_data[0]) > self.limits.max_head_bytes:
            self._reply_and_close(431, "headers_too_large", self._head_message())
        else:
            self._reply_and_close(400, "malformed_request", "the request is not valid HTTP/1.1")

    def _head_message(self) -> str:
        return f"the request line and headers exceed {self.limits.max_head_bytes} bytes"

    async def _admit(self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        limit = self.limits.max_connections
        if _head_size(cast(HTTPScope, scope)) > self.limits.max_head_bytes:  # this protocol makes only http scopes
            headers, body = _error(431, "headers_too_large", self._head_message())
            status = 431
        elif len(self.connections) > limit or len(self.tasks) > limit:  # this one is counted already, hence `>`
            message = f"more than {limit} connections are open; retry shortly"
            headers, body = _error(503, "over_capacity", message, (b"retry-after", b"1"))
            status = 503
        else:
            await self._app(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    # -- after the response ----------------------------------------------------------------------------------------

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.transport.is_closing():
            return
        if self.conn.our_state is h11.DONE and self.conn.their_state is h11.SEND_BODY:
            # Answered before the body arrived (413 from Content-Length, a route that reads no body). uvicorn would
            # read and drop the rest for as long as it keeps coming; drop it for a moment, so the client reads the
            # answer rather than a reset, then close however slowly it still sends.
            self._linger_timer = self.loop.call_later(self.timeout_keep_alive, self.transport.close)
        elif self.conn.their_state is h11.IDLE:
            self._head_timer = self.loop.call_later(self.limits.header_timeout, self._head_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        for timer in (self._head_timer, self._linger_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._linger_timer = None

    def _reply_and_close(self, status: int, reason: str, message: str) -> None:
        headers, body = _error(status, reason, message)
        events: list[h11.Event] = [
            h11.Response(status_code=status, headers=headers, reason=http.HTTPStatus(status).phrase.encode()),
            h11.Data(data=body),
            h11.EndOfMessage(),
        ]
        # h11 refuses what may not be said: a body to a HEAD request, anything once the application has answered.
        with contextlib.suppress(h11.LocalProtocolError):
            for event in events:
                self.transport.write(self.conn.send(event) or b"")
        self.transport.close()


_LIMITED: dict[str, Any] = {
    "http": LimitedH11Protocol,
    "ws": "none",  # no route speaks WebSocket: an Upgrade header is an ordinary request
    "h11_max_incomplete_event_size": HTTP_LIMITS.max_head_bytes,
    "timeout_keep_alive": HTTP_LIMITS.keep_alive_timeout,
    "log_config": None,
}
"""The uvicorn settings every server of the process shares: the limits of `HTTP_LIMITS`, our logging."""


def serve(app: ASGIApp, *, host: str, port: int, drain_seconds: int | None = None, access_log: bool) -> None:
    """Serve `app` until SIGINT/SIGTERM, with the limits of `HTTP_LIMITS`; `drain_seconds` bounds the shutdown."""
    uvicorn.run(
        app,
        host=host,
        port=port,
        **_LIMITED,
        lifespan="on",
        access_log=access_log,
        timeout_graceful_shutdown=drain_seconds,
    )


class _Embedded(uvicorn.Server):
    """A second server in the process, stopped by its owner: the signals belong to the main server (`serve`)."""

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.listening = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self.listening.set()


@contextlib.asynccontextmanager
async def serving_tls(app: ASGIApp, *, host: str, port: int, context: ssl.SSLContext) -> AsyncIterator[int]:
    """Serve `app` over TLS with `context` on the running loop while the block runs; yields the bound port.

    `OSError` when the port cannot be bound. On leaving, the connections in progress are answered, then closed.
    """
    config = Config(
        app,
        host=host,
        port=port,
        **_LIMITED,
        lifespan="off",
        access_log=False,
        ssl_context_factory=lambda config, default: context,
    )
    server = _Embedded(config)
    task = asyncio.create_task(server.serve(), name=f"tls-server-{port}")
    listening = asyncio.create_task(server.listening.wait())
    await asyncio.wait([task, listening], return_when=asyncio.FIRST_COMPLETED)
    listening.cancel()
    if not server.started:
        with contextlib.suppress(SystemExit):  # uvicorn exits the process when it cannot listen
            await task
        raise OSError(f"cannot listen on {host}:{port}")
    try:
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        await task
