"""The HTTP server's limits: how long a client may take and how much it may send before it is cut off.

Every endpoint is reachable by anyone who can reach the Service (webhooks must be), so each of these bounds what
one unauthenticated client can hold: a connection, a task, memory. README.md ("HTTP limits") documents them.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["HTTP_LIMITS", "HttpLimits"]


@dataclass(frozen=True, slots=True)
class HttpLimits:
    header_timeout: float = 10.0
    """Seconds from accepting a connection (or from the end of the previous response on a kept-alive one) until
    the request head has arrived; then 408 (or a silent close if nothing came at all)."""
    body_timeout: float = 20.0
    """Seconds from the end of the request head until the whole body has arrived; then 408. Webhook senders
    give up sooner (GitHub after 10 s), so a body this slow is never a delivery worth waiting for."""
    keep_alive_timeout: int = 5
    """Seconds an idle kept-alive connection stays open between requests; also how long the rest of a body is
    read and dropped when the request was answered before it arrived (413, a route that reads no body)."""
    max_head_bytes: int = 16 << 10
    """Request line plus headers; larger heads get 431. Bearer tokens and signatures fit many times over."""
    max_connections: int = 256
    """Open connections (or requests in progress) served at once; beyond it requests get 503 with Retry-After.
    With the default 1 MiB body cap this bounds the memory bodies in flight can take to well under the chart's
    512 MiB limit."""


HTTP_LIMITS = HttpLimits()
"""What `stargraph operator` and `stargraph serve` run with."""
