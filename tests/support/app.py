"""Running the serve app in-process for unit tests: lifespan driven by hand, requests through httpx's ASGI transport."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI

from stargraph.serve import AppState

__all__ = ["running_app"]


@asynccontextmanager
async def running_app(app: FastAPI) -> AsyncIterator[tuple[httpx.AsyncClient, AppState]]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://stargraph.test") as client:
            state: Any = app.state.stargraph
            yield client, state
