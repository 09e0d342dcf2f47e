"""List-then-watch of one collection, kept running through disconnects and expired resource versions.

The callback sees every object of the first list (and of each relist, after which objects that vanished meanwhile
are reported deleted), then every change. `synced` is set once the first list has been delivered, so a consumer
can wait until its picture of the cluster is complete before acting on it. With `metadata_only` the callback gets
`PartialObjectMetadata` objects (what changed and when, never the contents).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from typing import Any, Literal

import structlog

from stargraph.k8s.client import KubeClient
from stargraph.k8s.errors import KubeError, WatchExpired

__all__ = ["Change", "Informer", "object_key"]

log = structlog.get_logger("stargraph.k8s")

Change = Literal["ADDED", "MODIFIED", "DELETED"]


def object_key(obj: Mapping[str, Any]) -> tuple[str, str]:
    """(namespace, name) of an object; cluster-scoped objects have namespace \"\"."""
    metadata = obj["metadata"]
    return metadata.get("namespace", ""), metadata["name"]


class Informer:
    def __init__(
        self,
        api: KubeClient,
        path: str,
        *,
        on_change: Callable[[Change, dict[str, Any]], None],
        params: Mapping[str, str] | None = None,
        page_size: int = 500,
        retry_delay: float = 1.0,
        metadata_only: bool = False,
    ) -> None:
        self._api = api
        self._path = path
        self._on_change = on_change
        self._params = dict(params or {})
        self._page_size = page_size
        self._retry_delay = retry_delay
        self._metadata_only = metadata_only
        self._known: dict[tuple[str, str], str] = {}  # key -> uid, to report deletions found by a relist
        self.synced = asyncio.Event()

    async def run(self) -> None:
        """List and watch until cancelled; errors are logged and retried, never raised."""
        while True:
            try:
                version = await self._list()
                self.synced.set()
                while True:
                    version = await self._watch(version)
            except WatchExpired:
                log.info("watch expired; relisting", path=self._path)
            except KubeError as exc:
                log.warning("watch interrupted; retrying", path=self._path, error=repr(exc))
                await asyncio.sleep(self._retry_delay)

    async def _list(self) -> str:
        seen: dict[tuple[str, str], str] = {}
        params = {**self._params, "limit": str(self._page_size)}
        while True:
            page = await self._api.list(self._path, params=params, metadata_only=self._metadata_only)
            for item in page.get("items") or ():
                key = object_key(item)
                seen[key] = item["metadata"].get("uid", "")
                self._on_change("MODIFIED" if key in self._known else "ADDED", item)
            continue_token = (page.get("metadata") or {}).get("continue")
            if not continue_token:
                break
            params = {**params, "continue": continue_token}
        for key in self._known.keys() - seen.keys():
            namespace, name = key
            self._on_change("DELETED", {"metadata": {"namespace": namespace, "name": name, "uid": self._known[key]}})
        self._known = seen
        return str(page["metadata"]["resourceVersion"])

    async def _watch(self, version: str) -> str:
        events = self._api.watch(
            self._path, resource_version=version, params=self._params, metadata_only=self._metadata_only
        )
        async with contextlib.aclosing(events):
            async for event in events:
                version = event.object.get("metadata", {}).get("resourceVersion", version)
                if event.type == "BOOKMARK":
                    continue
                key = object_key(event.object)
                if event.type == "DELETED":
                    self._known.pop(key, None)
                else:
                    self._known[key] = event.object["metadata"].get("uid", "")
                self._on_change(event.type, event.object)
        return version
