"""`POST /v1/runs`: Idempotency-Key rules, body validation, and the fail-closed default."""

import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
import pytest

from stargraph.http import HttpError, HttpRequest
from stargraph.runs import InMemoryRunSink
from stargraph.serve import create_app
from tests.support.app import running_app

BODY = {"triggerRef": {"kind": "CronTrigger", "name": "nightly", "namespace": "team-a"}, "params": {"env": "prod"}}


async def allow(request: HttpRequest, namespace: str) -> Mapping[str, Any]:
    if request.headers.get("authorization") != "Bearer good":
        raise HttpError(403, "forbidden", f"may not create runs in {namespace}")
    return {"username": "system:serviceaccount:team-a:ci"}


@pytest.fixture
async def client() -> AsyncIterator[tuple[httpx.AsyncClient, InMemoryRunSink]]:
    sink = InMemoryRunSink()
    async with running_app(create_app(sink=sink, plugins=["manual"], deps={"authorizer": allow})) as (client, _):
        yield client, sink


async def post(client: httpx.AsyncClient, body: Any = BODY, key: str | None = "auto", **headers: str) -> httpx.Response:
    sent = {"authorization": "Bearer good", **headers}
    if key is not None:
        sent["idempotency-key"] = str(uuid.uuid4()) if key == "auto" else key
    return await client.post("/v1/runs", json=body, headers=sent)


async def test_same_key_same_body_returns_the_same_run(client) -> None:  # type: ignore[no-untyped-def]
    http, sink = client
    key = str(uuid.uuid4())
    first, again = await post(http, key=key), await post(http, key=key.upper())
    assert first.status_code == 201 and again.status_code == 200
    assert first.json()["run"] == again.json()["run"]
    assert first.json()["run"]["namespace"] == "team-a"
    assert len(sink.runs) == 1
    event = next(iter(sink.events.values()))
    assert event.trigger_id == "manual:team-a/nightly"
    assert event.payload["requestedBy"] == "system:serviceaccount:team-a:ci"


async def test_same_key_different_body_is_422(client) -> None:  # type: ignore[no-untyped-def]
    http, sink = client
    key = str(uuid.uuid4())
    await post(http, key=key)
    response = await post(http, body={**BODY, "params": {"env": "dev"}}, key=key)
    assert response.status_code == 422 and response.json()["error"]["reason"] == "idempotency_key_reused"
    assert len(sink.runs) == 1


@pytest.mark.parametrize(("key", "reason"), [(None, "missing_idempotency_key"), ("abc", "malformed_idempotency_key")])
async def test_missing_or_malformed_key_is_400(client, key, reason) -> None:  # type: ignore[no-untyped-def]
    http, sink = client
    response = await post(http, key=key)
    assert response.status_code == 400 and response.json()["error"]["reason"] == reason
    assert not sink.runs


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"params": {}}, "triggerRef"),
        ({"triggerRef": {"kind": "CronTrigger", "name": "Bad_Name"}}, "triggerRef.name"),
        ({**BODY, "extra": 1}, "extra"),
        ({"triggerRef": {"kind": "CronTrigger", "name": "x"}, "params": []}, "params"),
    ],
)
async def test_invalid_body_is_400_naming_the_field(client, body, field) -> None:  # type: ignore[no-untyped-def]
    http, sink = client
    response = await post(http, body=body)
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith(field)
    assert not sink.runs


async def test_non_json_is_415_and_garbage_json_400(client) -> None:  # type: ignore[no-untyped-def]
    http, _ = client
    headers = {"authorization": "Bearer good", "idempotency-key": str(uuid.uuid4())}
    assert (
        await http.post("/v1/runs", content=b"x", headers={**headers, "content-type": "text/plain"})
    ).status_code == 415
    garbage = await http.post("/v1/runs", content=b"{not json", headers={**headers, "content-type": "application/json"})
    assert garbage.status_code == 400 and garbage.json()["error"]["reason"] == "invalid_body"


@pytest.mark.parametrize("number", [b"1e999", b"-1e999", b"9223372036854775808", b"-9223372036854775809"])
async def test_params_a_run_cannot_hold_are_400_naming_them(client, number) -> None:  # type: ignore[no-untyped-def]
    http, sink = client
    headers = {"authorization": "Bearer good", "idempotency-key": str(uuid.uuid4()), "content-type": "application/json"}
    body = b'{"triggerRef": {"kind": "CronTrigger", "name": "x"}, "params": {"a": [' + number + b"]}}"
    response = await http.post("/v1/runs", content=body, headers=headers)
    assert response.status_code == 400 and response.json()["error"]["reason"] == "invalid_body"
    assert "params.a[0]" in response.json()["error"]["message"]
    assert not sink.runs


async def test_authorizer_refusal_creates_nothing(client) -> None:  # type: ignore[no-untyped-def]
    http, sink = client
    response = await post(http, authorization="Bearer bad")
    assert response.status_code == 403 and not sink.runs


async def test_without_an_authorizer_every_request_is_refused() -> None:
    sink = InMemoryRunSink()
    async with running_app(create_app(sink=sink, plugins=["manual"])) as (http, _):
        response = await post(http)
    assert response.status_code == 401 and response.json()["error"]["reason"] == "unauthenticated"
    assert not sink.runs
