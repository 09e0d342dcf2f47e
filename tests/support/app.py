"""Running the serve app in-process for unit tests: lifespan driven by hand with requests through httpx's ASGI
transport (`running_app`), or a real uvicorn server on a loopback port in a thread (`serving_in_thread`)."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from stargraph.serve import AppState

__all__ = ["running_app", "serving_in_thread"]


@asynccontextmanager
async def running_app(app: FastAPI) -> AsyncIterator[tuple[httpx.AsyncClient, AppState]]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://stargraph.test") as client:
            state: Any = app.state.stargraph
            yield client, state


@contextmanager
def serving_in_thread(config: uvicorn.Config) -> Iterator[uvicorn.Server]:
    """`config`'s server, started in a daemon thread and stopped when the block ends; yields once it listens."""
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    if not server.started:
        raise RuntimeError(f"uvicorn did not start listening on {config.host}:{config.port} within 10 s")
    try:
        yield server
    finally:
        server.should_exit = True
        thread.join(10)
