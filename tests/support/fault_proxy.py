"""A TLS-terminating reverse proxy in front of kube-apiserver that injects faults into chosen requests.

A client configured with the proxy's URL (same CA: the proxy serves the apiserver's own certificate, which names
127.0.0.1) talks to the real apiserver through it: every request, watches included, is forwarded with its
headers (the client's bearer token authenticates it upstream) and the answer streamed back. A test arms faults
for requests matching a method and a path pattern, each for a number of requests:

- ``"429"``: answered 429 TooManyRequests with ``Retry-After: 1``, not forwarded;
- ``"500"``: answered 500 InternalError, not forwarded;
- ``"reset"``: the client's connection is reset before anything is forwarded;
- ``"lose_response"``: forwarded, the apiserver commits it, and the client's connection is reset before the
  answer reaches it (the create happened; the client cannot know).

``record`` lists what happened to every matching request, so a test asserts on what the proxy did, not on timing.
The proxy runs its own event loop in a thread, so synchronous tests can use it.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import aiohttp
from aiohttp import web

__all__ = ["Fault", "FaultProxy", "fault_proxy"]

Fault = Literal["429", "500", "reset", "lose_response"]

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host", "content-length"}


def _status(code: int, reason: str, message: str) -> dict[str, object]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "reason": reason,
        "message": message,
        "code": code,
    }


@dataclass
class _Armed:
    method: str
    path: re.Pattern[str]
    fault: Fault
    remaining: int


class FaultProxy:
    def __init__(self, *, upstream: str, ca_file: Path, cert_file: Path, key_file: Path) -> None:
        self._upstream = upstream.rstrip("/")
        self._client_tls = ssl.create_default_context(cafile=str(ca_file))
        self._server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._server_tls.load_cert_chain(str(cert_file), str(key_file))
        self._armed: list[_Armed] = []
        self._lock = threading.Lock()
        self.record: list[tuple[str, str, Fault, int | None]] = []
        """(method, path, fault, upstream status or None) of every request a fault was applied to."""
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fault-proxy", daemon=True)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def arm(self, *, method: str, path: str, fault: Fault, times: int = 1) -> None:
        """Apply `fault` to the next `times` requests with `method` whose path (with query) matches regex `path`."""
        with self._lock:
            self._armed.append(_Armed(method.upper(), re.compile(path), fault, times))

    def armed(self) -> int:
        """How many faults are still waiting for a matching request."""
        with self._lock:
            return sum(entry.remaining for entry in self._armed)

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    async def _start(self) -> None:
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self._client_tls))
        app = web.Application(client_max_size=64 << 20)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self._server_tls)
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.Server)
        self.port = server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    def _take(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for entry in self._armed:
                if entry.remaining > 0 and entry.method == method and entry.path.search(path):
                    entry.remaining -= 1
                    return entry.fault
        return None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        fault = self._take(request.method, request.path_qs)
        if fault == "429":
            self.record.append((request.method, request.path, fault, None))
            return web.json_response(
                _status(429, "TooManyRequests", "injected by the fault proxy"), status=429, headers={"Retry-After": "1"}
            )
        if fault == "500":
            self.record.append((request.method, request.path, fault, None))
            return web.json_response(_status(500, "InternalError", "injected by the fault proxy"), status=500)
        if fault == "reset":
            self.record.append((request.method, request.path, fault, None))
            return self._reset(request)
        assert self._session is not None
        headers = {key: value for key, value in request.headers.items() if key.lower() not in _HOP_BY_HOP}
        upstream = await self._session.request(
            request.method,
            self._upstream + request.path_qs,
            data=body or None,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
            auto_decompress=False,
        )
        async with upstream:
            if fault == "lose_response":
                await upstream.read()  # the apiserver has answered: whatever it did is done
                self.record.append((request.method, request.path, fault, upstream.status))
                return self._reset(request)
            reply = web.StreamResponse(
                status=upstream.status,
                headers={k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_BY_HOP},
            )
            await reply.prepare(request)
            async for chunk in upstream.content.iter_any():
                await reply.write(chunk)
            await reply.write_eof()
            return reply

    @staticmethod
    def _reset(request: web.Request) -> web.StreamResponse:
        transport = request.transport
        if transport is not None:
            transport.abort()
        raise asyncio.CancelledError  # the handler is done; there is nobody left to answer


@contextmanager
def fault_proxy(*, upstream: str, ca_file: Path, cert_file: Path, key_file: Path) -> Iterator[FaultProxy]:
    proxy = FaultProxy(upstream=upstream, ca_file=ca_file, cert_file=cert_file, key_file=key_file)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()
