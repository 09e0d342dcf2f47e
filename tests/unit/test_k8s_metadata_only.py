"""`KubeClient` lists and watches with `metadata_only`: the Accept headers sent, and whole objects refused.

A small HTTP server on 127.0.0.1 stands in for the apiserver, so the test can also answer what a real apiserver
never does (whole objects despite the Accept header); tests/cluster/test_k8s_client.py covers the real one.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiohttp import web

from stargraph.k8s import Credentials, KubeClient, ProtocolError, path

SECRETS = path(group="", version="v1", plural="secrets", namespace="team-a")
PARTIAL = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": {"name": "s"}}
WHOLE = {"kind": "Secret", "apiVersion": "v1", "metadata": {"name": "s"}, "data": {"k": "dmFsdWU="}}


class FakeApiserver:
    def __init__(self) -> None:
        self.accepts: list[str] = []
        self.items: list[dict[str, Any]] = [PARTIAL]
        self.list_kind = "PartialObjectMetadataList"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.accepts.append(request.headers.get("Accept", ""))
        if request.query.get("watch") == "true":
            events = b"".join(orjson.dumps({"type": "ADDED", "object": item}) + b"\n" for item in self.items)
            return web.Response(body=events, content_type="application/json")
        body = {"kind": self.list_kind, "metadata": {"resourceVersion": "7"}, "items": self.items}
        return web.Response(body=orjson.dumps(body), content_type="application/json")


@pytest.fixture
async def served() -> AsyncIterator[tuple[FakeApiserver, KubeClient]]:
    fake = FakeApiserver()
    app = web.Application()
    app.router.add_get(SECRETS, fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with KubeClient(Credentials(server=f"http://127.0.0.1:{port}")) as api:
            yield fake, api
    finally:
        await runner.cleanup()


async def watched(api: KubeClient) -> list[dict[str, Any]]:
    stream = api.watch(SECRETS, resource_version="7", metadata_only=True)
    async with contextlib.aclosing(stream):
        return [event.object async for event in stream]


async def test_metadata_only_list_and_watch_ask_for_partial_object_metadata(
    served: tuple[FakeApiserver, KubeClient],
) -> None:
    fake, api = served
    listed = await api.list(SECRETS, metadata_only=True)
    assert listed["items"] == [PARTIAL]
    assert await watched(api) == [PARTIAL]
    await api.list(SECRETS)
    assert fake.accepts == [
        "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
        "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1",
        "application/json",
    ]


async def test_whole_objects_answering_a_metadata_only_request_are_refused(
    served: tuple[FakeApiserver, KubeClient],
) -> None:
    fake, api = served
    fake.list_kind, fake.items = "SecretList", [WHOLE]
    with pytest.raises(ProtocolError, match="asked for PartialObjectMetadataList, got kind 'SecretList'"):
        await api.list(SECRETS, metadata_only=True)
    with pytest.raises(ProtocolError, match="asked for PartialObjectMetadata, got kind 'Secret'"):
        await watched(api)
