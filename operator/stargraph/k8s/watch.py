"""The watch stream's wire format: one JSON object per line, ``{"type": ..., "object": ...}``.

Kept apart from the HTTP code so the parsing (and above all the ``ERROR`` event that means "relist") can be tested
on its own with the exact lines the apiserver sends.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal, cast

import orjson

from stargraph.k8s.errors import Expired, ProtocolError, WatchExpired, api_error

__all__ = ["WatchEvent", "WatchEventType", "decode_event", "split_lines"]

WatchEventType = Literal["ADDED", "MODIFIED", "DELETED", "BOOKMARK"]
_EVENT_TYPES = frozenset({"ADDED", "MODIFIED", "DELETED", "BOOKMARK"})


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One change; for ``BOOKMARK`` the object holds only ``metadata.resourceVersion`` (resume from there)."""

    type: WatchEventType
    object: dict[str, Any]


def decode_event(line: bytes) -> WatchEvent:
    """Decode one line of a watch stream.

    Raises ``WatchExpired`` for an ``ERROR`` event with code 410 (the resourceVersion is too old: relist), the
    matching ``ApiError`` for any other ``ERROR`` event, and ``ProtocolError`` for a line that is not an event.
    """
    try:
        event = orjson.loads(line)
        kind, obj = event["type"], event["object"]
    except (ValueError, TypeError, KeyError) as e:
        raise ProtocolError(f"not a watch event: {line[:200]!r}") from e
    if kind == "ERROR":
        code = obj.get("code") if isinstance(obj, dict) else None
        error = api_error(code if isinstance(code, int) else 500, obj, fallback_reason="WatchError")
        if isinstance(error, Expired):
            raise WatchExpired(error.status, error.reason, error.message, error.body)
        raise error
    if kind not in _EVENT_TYPES or not isinstance(obj, dict):
        raise ProtocolError(f"unexpected watch event: {line[:200]!r}")
    return WatchEvent(cast(WatchEventType, kind), obj)


async def split_lines(chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    """Reassemble newline-terminated lines from ``chunks``, however long a line is.

    aiohttp's own line reader refuses lines over 128 KiB, and one object may be up to ~1.5 MiB.
    """
    pending = bytearray()
    async for chunk in chunks:
        # Only the new bytes can hold the next newline: the rest of `pending` was searched already.
        search_from = len(pending)
        pending += chunk
        start = 0
        while (end := pending.find(b"\n", search_from)) >= 0:
            if end > start:
                yield bytes(pending[start:end])
            start = search_from = end + 1
        del pending[:start]
    if pending.strip():
        yield bytes(pending)
