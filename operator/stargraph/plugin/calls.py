"""Calling a plugin function that may be sync or async without letting it block the event loop."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

__all__ = ["call_maybe_async"]


async def call_maybe_async(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """Await a coroutine function on the loop; run anything else in a worker thread and await what it returns.

    The thread is what lets a timeout abandon a plain function that blocks (it keeps running, but shutdown goes on).
    """
    if inspect.iscoroutinefunction(fn):
        return await fn(*args, **kwargs)
    result = await asyncio.to_thread(fn, *args, **kwargs)
    if inspect.isawaitable(result):
        return await result
    return result
