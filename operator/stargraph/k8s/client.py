"""``KubeClient``: the async HTTP client every other part of the operator uses to talk to the apiserver.

One aiohttp session with a bounded pool of keep-alive connections serves all requests of the event loop: the
operator creates on the order of 1,000 objects/s at concurrency 8-32, which the blocking ``kubernetes`` client
(one thread per request) cannot do without a thread pool the size of the concurrency. Requests and responses
are plain JSON dicts; errors are ``KubeError`` subclasses (``stargraph.k8s.errors``). Nothing retries here:
whether a request may be repeated is the caller's decision (a create with a deterministic name may).

    async with KubeClient(load_credentials()) as api:
        cm = await api.get(path(group="", version="v1", plural="configmaps", namespace="ns", name="c"))

``metadata_only=True`` on a list or watch asks the apiserver for ``PartialObjectMetadata``: names, labels,
resourceVersions, never the objects' contents, which is how Secrets are watched without transferring their data.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncGenerator, Mapping
from types import TracebackType
from typing import Any, Literal, Self

import aiohttp
import orjson

from stargraph import __version__
from stargraph.k8s.credentials import Credentials
from stargraph.k8s.errors import ApiError, ApiUnavailable, Expired, KubeError, ProtocolError, WatchExpired, api_error
from stargraph.k8s.tokens import TokenProvider
from stargraph.k8s.watch import WatchEvent, decode_event, split_lines

__all__ = ["KubeClient", "PatchType", "QueryParams"]

PatchType = Literal["merge", "json", "strategic", "apply"]
QueryParams = Mapping[str, str | int]

_PATCH_CONTENT_TYPES: dict[PatchType, str] = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    # Server-side apply; needs a fieldManager param. JSON is valid YAML, so the body is still sent as JSON.
    "apply": "application/apply-patch+yaml",
}
# A watch that stays silent longer than the apiserver's longest expected gap (its bookmark interval, or the whole
# watch without bookmarks) plus this grace is presumed dead: a half-open connection would otherwise hide changes
# for minutes. The watch cache sends bookmarks every minute; uncached resources (events) send none, and for them
# a silent minute only costs a new watch.
_BOOKMARK_INTERVAL_SECONDS = 60
_WATCH_GRACE_SECONDS = 30
# No fallback media type: a server that cannot send metadata alone must refuse (406), never send whole objects.
_METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
_METADATA_OBJECT = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"


class KubeClient:
    """Async client for one apiserver; use as ``async with`` (it owns an aiohttp session).

    ``connections`` bounds the keep-alive pool (requests beyond it queue), ``timeout`` is each request's total
    time unless the request gives its own, ``token_check_interval`` how often a rotating token is re-checked.
    """

    def __init__(
        self,
        credentials: Credentials,
        *,
        connections: int = 64,
        timeout: float = 30.0,
        connect_timeout: float = 10.0,
        token_check_interval: float = 10.0,
    ) -> None:
        self.credentials = credentials
        self._server = credentials.server.rstrip("/")
        self._connections = connections
        self._timeout = aiohttp.ClientTimeout(total=timeout, connect=connect_timeout)
        self._connect_timeout = connect_timeout
        self._tokens = TokenProvider(credentials, check_interval=token_check_interval)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        # Reads the CA and key files: a one-off at start-up, cheap enough for the event loop.
        # Idle connections are kept for two minutes: a schedule firing every minute then finds them open, instead
        # of paying a TLS handshake per connection at the very moment many fires are due.
        connector = aiohttp.TCPConnector(
            limit=self._connections, ssl=self.credentials.ssl_context(), keepalive_timeout=120.0
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self._timeout,
            headers={"Accept": "application/json", "User-Agent": f"stargraph-operator/{__version__}"},
        )
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connections; idempotent."""
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: QueryParams | None = None,
        content_type: str | None = None,
        accept: str | None = None,
        timeout: float | None = None,
        decode: bool = True,
    ) -> dict[str, Any]:
        """Send ``json`` (if not None) to ``path`` and return the decoded JSON object of the answer (``{}`` with
        ``decode=False``, for a caller that knows what it sent and needs no echo of it).

        ``accept`` replaces the ``Accept`` header (an alternative representation, e.g. metadata only). Raises
        ``ApiError`` (a subclass per status, see ``errors``) for an error status, ``ApiUnavailable`` when the
        apiserver cannot be reached or does not answer within ``timeout`` seconds.
        """
        headers = await self._auth_headers()
        if accept is not None:
            headers["Accept"] = accept
        data = None
        if json is not None:
            data = orjson.dumps(json)
            headers["Content-Type"] = content_type or "application/json"
        request_timeout = (
            self._timeout if timeout is None else aiohttp.ClientTimeout(total=timeout, connect=self._connect_timeout)
        )
        try:
            async with self._open().request(
                method,
                self._server + path,
                params=params,
                data=data,
                headers=headers,
                timeout=request_timeout,
                server_hostname=self.credentials.tls_server_name,
            ) as response:
                payload = await response.read()
        except (aiohttp.ClientError, TimeoutError) as e:
            raise _unavailable(method, path, e) from e
        if response.status >= 400:
            raise _error(response, payload)
        return _decode_object(method, path, payload) if decode else {}

    async def create(
        self, path: str, body: Mapping[str, Any], *, params: QueryParams | None = None, decode: bool = True
    ) -> dict[str, Any]:
        """POST ``body`` to the collection ``path``; a name that exists raises ``Conflict`` (reason AlreadyExists)."""
        return await self.request("POST", path, json=body, params=params, decode=decode)

    async def get(self, path: str) -> dict[str, Any]:
        """The object at ``path``; ``NotFound`` if it does not exist."""
        return await self.request("GET", path)

    async def list(
        self, path: str, *, params: QueryParams | None = None, metadata_only: bool = False
    ) -> dict[str, Any]:
        """The list at collection ``path`` (``items`` and ``metadata.resourceVersion`` to watch from).

        With ``metadata_only`` each item is a ``PartialObjectMetadata``: ``metadata`` and nothing else.
        """
        if not metadata_only:
            return await self.request("GET", path, params=params)
        listed = await self.request("GET", path, params=params, accept=_METADATA_LIST)
        _require_kind("LIST", path, listed, "PartialObjectMetadataList")
        return listed

    async def patch(
        self,
        path: str,
        body: Mapping[str, Any] | builtins.list[Any],
        *,
        patch_type: PatchType = "merge",
        params: QueryParams | None = None,
    ) -> dict[str, Any]:
        """Patch the object at ``path``; ``body`` is a list of operations for ``patch_type="json"``."""
        return await self.request(
            "PATCH", path, json=body, params=params, content_type=_PATCH_CONTENT_TYPES[patch_type]
        )

    async def delete(
        self,
        path: str,
        *,
        propagation_policy: Literal["Foreground", "Background", "Orphan"] | None = None,
        preconditions: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Delete the object at ``path``; ``preconditions`` (``uid``/``resourceVersion``) guard against races.

        Returns the object (still present while finalizers run) or a ``Status``.
        """
        options: dict[str, Any] = {}
        if propagation_policy is not None:
            options["propagationPolicy"] = propagation_policy
        if preconditions is not None:
            options["preconditions"] = dict(preconditions)
        body = {"apiVersion": "v1", "kind": "DeleteOptions", **options} if options else None
        return await self.request("DELETE", path, json=body)

    async def watch(
        self,
        path: str,
        *,
        resource_version: str,
        params: QueryParams | None = None,
        timeout_seconds: int = 300,
        bookmarks: bool = True,
        metadata_only: bool = False,
    ) -> AsyncGenerator[WatchEvent, None]:
        """Changes to collection ``path`` after ``resource_version``, until the server ends the watch.

        The server ends it after ``timeout_seconds``; watch again from the last event's resourceVersion (bookmarks
        included). ``WatchExpired`` means that resourceVersion is gone: list again, then watch from the list's.
        To stop early and release the connection at once, wrap the iterator in ``contextlib.aclosing``.
        With ``metadata_only`` every event's object is a ``PartialObjectMetadata``.
        """
        query: dict[str, str | int] = {
            **(params or {}),
            "watch": "true",
            "resourceVersion": resource_version,
            "timeoutSeconds": timeout_seconds,
        }
        if bookmarks:
            query["allowWatchBookmarks"] = "true"
        # No total limit: the server ends the stream after timeout_seconds; sock_read catches a dead connection.
        longest_gap = min(timeout_seconds, _BOOKMARK_INTERVAL_SECONDS) if bookmarks else timeout_seconds
        stream_timeout = aiohttp.ClientTimeout(
            total=None, connect=self._connect_timeout, sock_read=longest_gap + _WATCH_GRACE_SECONDS
        )
        headers = await self._auth_headers()
        if metadata_only:
            headers["Accept"] = _METADATA_OBJECT
        try:
            async with self._open().get(
                self._server + path,
                params=query,
                headers=headers,
                timeout=stream_timeout,
                server_hostname=self.credentials.tls_server_name,
            ) as response:
                if response.status >= 400:
                    error = _error(response, await response.read())
                    if isinstance(error, Expired):
                        raise WatchExpired(error.status, error.reason, error.message, error.body)
                    raise error
                async for line in split_lines(response.content.iter_any()):
                    event = decode_event(line)
                    if metadata_only:
                        _require_kind("WATCH", path, event.object, "PartialObjectMetadata")
                    yield event
        except (aiohttp.ClientError, TimeoutError) as e:
            raise _unavailable("WATCH", path, e) from e

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise KubeError("KubeClient is not open: use it as `async with KubeClient(...) as api`")
        return self._session

    async def _auth_headers(self) -> dict[str, str]:
        token = await self._tokens.token()
        return {"Authorization": f"Bearer {token}"} if token is not None else {}


def _unavailable(method: str, path: str, error: BaseException) -> ApiUnavailable:
    # str() of a timeout is empty, so the type name carries the meaning.
    return ApiUnavailable(f"{method} {path}: {type(error).__name__}: {error}".rstrip(": "))


def _require_kind(method: str, path: str, body: Mapping[str, Any], kind: str) -> None:
    # Whatever sits between us and the apiserver must not turn "metadata only" into whole objects unnoticed.
    if body.get("kind") != kind:
        raise ProtocolError(f"{method} {path}: asked for {kind}, got kind {body.get('kind')!r}")


def _error(response: aiohttp.ClientResponse, payload: bytes) -> ApiError:
    try:
        body = orjson.loads(payload) if payload else None
    except ValueError:
        body = None
    return api_error(
        response.status,
        body,
        fallback_reason=response.reason or "HTTPError",
        fallback_message=payload[:500].decode("utf-8", "replace"),
        retry_after=_seconds(response.headers.get("Retry-After")),
    )


def _seconds(value: str | None) -> float | None:
    """A ``Retry-After`` in seconds; the apiserver never sends the HTTP-date form, so that form counts as absent."""
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _decode_object(method: str, path: str, payload: bytes) -> dict[str, Any]:
    if not payload:
        return {}
    try:
        body = orjson.loads(payload)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise ProtocolError(f"{method} {path}: expected a JSON object, got {payload[:200]!r}")
    return body
