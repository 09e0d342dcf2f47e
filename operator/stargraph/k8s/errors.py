"""The one exception tree of the Kubernetes layer: everything it raises is a ``KubeError``.

``ApiError`` carries what the apiserver said (its ``Status`` object); subclasses exist for the statuses that
callers branch on, so ``except NotFound:`` and ``err.status == 404`` are equivalent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "ApiError",
    "ApiUnavailable",
    "ConfigError",
    "Conflict",
    "Expired",
    "Forbidden",
    "Invalid",
    "KubeError",
    "NotFound",
    "ProtocolError",
    "Unauthorized",
    "WatchExpired",
    "api_error",
    "is_unavailable",
]


class KubeError(Exception):
    """Base of every error raised by ``stargraph.k8s``."""


class ConfigError(KubeError):
    """No usable credentials: the message names the kubeconfig path and context (or in-cluster files) tried."""


class ApiUnavailable(KubeError):
    """The apiserver could not be reached or did not answer in time (connection, TLS, timeout)."""


class ProtocolError(KubeError):
    """The server's answer did not follow the Kubernetes API (not JSON, an unknown watch event): wrong URL?"""


class ApiError(KubeError):
    """The apiserver answered with an error status.

    ``reason`` is the Status reason (``AlreadyExists``, ``Conflict``, ``NotFound``, ``Forbidden``, ``Invalid``,
    ...) or the HTTP reason phrase when the body was not a Status; ``body`` is the decoded Status, if any.
    """

    def __init__(
        self,
        status: int,
        reason: str,
        message: str,
        body: Mapping[str, Any] | None = None,
        *,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.body = body
        self.retry_after = retry_after
        """Seconds the apiserver asked the client to wait (``Retry-After`` on 429 and some 5xx), if it said."""


class Unauthorized(ApiError):
    """401: the credentials were not accepted (expired or revoked token, unknown client certificate)."""


class Forbidden(ApiError):
    """403: authenticated, but RBAC does not allow the request."""


class NotFound(ApiError):
    """404: the object (or its namespace, or its resource type) does not exist."""


class Conflict(ApiError):
    """409: ``reason`` tells ``AlreadyExists`` (create) from ``Conflict`` (stale resourceVersion on update)."""


class Expired(ApiError):
    """410 Gone: a resourceVersion or continue token older than the apiserver keeps; list again from scratch."""


class WatchExpired(Expired):
    """A watch's resourceVersion is too old (410, as HTTP status or as an ``ERROR`` event): relist, then watch."""


class Invalid(ApiError):
    """422: the object failed validation; ``message`` lists the offending fields."""


_BY_STATUS: dict[int, type[ApiError]] = {
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: Expired,
    422: Invalid,
}


def api_error(
    status: int,
    body: object,
    *,
    fallback_reason: str,
    fallback_message: str = "",
    retry_after: float | None = None,
) -> ApiError:
    """The ``ApiError`` (subclass chosen by ``status``) for a response whose decoded JSON is ``body``.

    ``body`` is used only when it is a Kubernetes ``Status``; a proxy's HTML error page or an empty body gives
    the fallbacks instead.
    """
    status_body = body if isinstance(body, Mapping) and body.get("kind") == "Status" else None
    reason, message = fallback_reason, fallback_message
    if status_body is not None:
        reason = str(status_body.get("reason") or fallback_reason)
        message = str(status_body.get("message") or fallback_message)
    return _BY_STATUS.get(status, ApiError)(status, reason, message, status_body, retry_after=retry_after)


def is_unavailable(error: KubeError) -> bool:
    """Whether the apiserver could not take the request (unreachable, overloaded, failing): the same request may
    succeed later, unlike one it refused (4xx other than 429)."""
    return isinstance(error, ApiUnavailable) or (
        isinstance(error, ApiError) and (error.status == 429 or error.status >= 500)
    )
