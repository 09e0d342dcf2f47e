"""Webhook deliveries through the whole app: size cap, content type, signatures, keys and redelivery."""

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from stargraph.clock import ManualClock
from stargraph.runs import InMemoryRunSink
from stargraph.serve import AppState, create_app
from stargraph.triggers.signatures import SignatureScheme, parse_secret, sign
from stargraph.triggers.specs import WebhookSpec
from stargraph.triggers.webhook import PASSED_BODY_MAX
from tests.support.app import running_app

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
SECRET = "s3cr3t-for-tests"
WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
BODY = json.dumps({"ref": "refs/heads/main"}).encode()

SPECS = [
    WebhookSpec(name="generic", secrets=(SECRET,), max_body_bytes=2048),
    WebhookSpec(name="github", scheme=SignatureScheme.GITHUB, secrets=("old", SECRET)),
    WebhookSpec(name="std", scheme=SignatureScheme.STANDARD_WEBHOOKS, secrets=(WHSEC,), key_on_delivery_id=True),
    WebhookSpec(
        name="gh-push", scheme=SignatureScheme.GITHUB, secrets=(SECRET,), event_types=frozenset({"push", "release"})
    ),
    WebhookSpec(
        name="std-paid",
        scheme=SignatureScheme.STANDARD_WEBHOOKS,
        secrets=(WHSEC,),
        event_types=frozenset({"invoice.paid"}),
    ),
    WebhookSpec(name="deploys", secrets=(SECRET,), event_types=frozenset({"deploy"}), event_type_header="X-Kind"),
    WebhookSpec(name="passes", secrets=(SECRET,), pass_body=True),
]


@pytest.fixture
async def app() -> AsyncIterator[tuple[httpx.AsyncClient, AppState, InMemoryRunSink]]:
    sink = InMemoryRunSink()
    application = create_app(sink=sink, plugins=["webhook"], clock=ManualClock(NOW), deps={"webhook_specs": SPECS})
    async with running_app(application) as (client, state):
        yield client, state, sink


def signed(name: str, body: bytes = BODY, **kwargs: object) -> dict[str, str]:
    spec = next(s for s in SPECS if s.name == name)
    headers = sign(scheme=spec.scheme, key=parse_secret(spec.scheme, spec.secrets[-1]), body=body, **kwargs)  # type: ignore[arg-type]
    return {**headers, "content-type": "application/json"}


async def post(
    client: httpx.AsyncClient, name: str, body: bytes = BODY, headers: dict[str, str] | None = None
) -> httpx.Response:
    return await client.post(
        f"/v1/hooks/default/{name}", content=body, headers=headers if headers is not None else signed(name, body)
    )


async def test_signed_delivery_creates_one_run_and_redelivery_gets_it_back(app) -> None:  # type: ignore[no-untyped-def]
    client, _, sink = app
    first = await post(client, "generic")
    again = await post(client, "generic")
    assert first.status_code == 201 and first.json()["created"] is True
    assert again.status_code == 200 and again.json() == {**first.json(), "created": False}
    assert first.json()["run"]["name"].startswith("generic-")
    assert len(sink.runs) == 1


async def test_fifty_concurrent_identical_deliveries_make_one_run(app) -> None:  # type: ignore[no-untyped-def]
    client, _, sink = app
    responses = await asyncio.gather(*(post(client, "github") for _ in range(50)))
    assert sorted(r.status_code for r in responses) == [200] * 49 + [201]
    assert len({r.json()["run"]["name"] for r in responses}) == 1
    assert len(sink.runs) == 1


async def test_different_bodies_are_different_runs(app) -> None:  # type: ignore[no-untyped-def]
    client, _, sink = app
    await post(client, "generic", b'{"n": 1}')
    await post(client, "generic", b'{"n": 2}')
    assert len(sink.runs) == 2


async def test_delivery_id_keying_makes_a_resent_message_the_same_run(app) -> None:  # type: ignore[no-untyped-def]
    client, _, sink = app
    first = await post(client, "std", headers=signed("std", delivery_id="msg_1", timestamp=NOW))
    # The sender re-signs on retry (new timestamp) but keeps its message id.
    later = NOW + timedelta(seconds=30)
    second = await post(client, "std", headers=signed("std", delivery_id="msg_1", timestamp=later))
    assert first.status_code == 201 and second.status_code == 200
    assert first.json()["run"] == second.json()["run"] and len(sink.runs) == 1


@pytest.mark.parametrize(
    ("name", "headers", "status", "reason"),
    [
        ("generic", {"content-type": "application/json"}, 401, "missing_signature"),
        ("generic", {"content-type": "application/json", "x-signature-256": "sha256=zz"}, 400, "malformed_signature"),
        (
            "generic",
            {"content-type": "application/json", "x-signature-256": "sha256=" + "0" * 64},
            401,
            "invalid_signature",
        ),
        ("github", {"content-type": "application/json", "x-hub-signature-256": "md5=abc"}, 400, "malformed_signature"),
        (
            "std",
            {"content-type": "application/json", "webhook-id": "m", "webhook-signature": "v1,AAAA"},
            401,
            "missing_timestamp",
        ),
    ],
)
async def test_unsigned_or_badly_signed_deliveries_are_refused(app, name, headers, status, reason) -> None:  # type: ignore[no-untyped-def]
    client, state, sink = app
    response = await post(client, name, headers=headers)
    assert response.status_code == status
    assert response.json()["error"]["reason"] == reason
    assert not sink.runs
    assert state.metrics.webhook_rejects.labels(reason)._value.get() == 1


async def test_stale_standard_webhook_is_refused(app) -> None:  # type: ignore[no-untyped-def]
    client, _, sink = app
    response = await post(client, "std", headers=signed("std", delivery_id="m", timestamp=NOW - timedelta(minutes=6)))
    assert response.status_code == 401 and response.json()["error"]["reason"] == "timestamp_out_of_tolerance"
    assert not sink.runs


async def test_wrong_content_type_is_415(app) -> None:  # type: ignore[no-untyped-def]
    client, _, sink = app
    response = await post(client, "generic", headers={**signed("generic"), "content-type": "text/plain"})
    assert response.status_code == 415 and response.json()["error"]["reason"] == "unsupported_media_type"
    assert not sink.runs


async def test_oversize_body_is_413_from_content_length(app) -> None:  # type: ignore[no-untyped-def]
    client, _, sink = app
    body = b"x" * 2049
    response = await post(client, "generic", body=body)
    assert response.status_code == 413 and response.json()["error"]["reason"] == "payload_too_large"
    assert not sink.runs


async def test_oversize_chunked_body_is_413_while_streaming(app) -> None:  # type: ignore[no-untyped-def]
    client, _, sink = app
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(1000):
            sent += 1
            yield b"y" * 1024

    response = await client.post("/v1/hooks/default/generic", content=chunks(), headers=signed("generic"))
    assert response.status_code == 413
    assert sent < 10  # reading stopped at the cap: the rest of the megabyte was never pulled
    assert not sink.runs


async def test_unknown_trigger_is_404_json(app) -> None:  # type: ignore[no-untyped-def]
    client, _, _ = app
    response = await post(client, "nope", headers={"content-type": "application/json"})
    assert response.status_code == 404 and response.json()["error"]["reason"] == "unknown_trigger"


async def test_event_filter_by_header_creates_runs_only_for_listed_types(app) -> None:  # type: ignore[no-untyped-def]
    client, _, sink = app
    push = await post(client, "gh-push", headers={**signed("gh-push"), "x-github-event": "push"})
    assert push.status_code == 201, push.text
    other = json.dumps({"action": "opened"}).encode()
    issues = await post(client, "gh-push", other, headers={**signed("gh-push", other), "x-github-event": "issues"})
    # Acknowledged, so the sender does not retry it, and nothing is created.
    assert issues.status_code == 202, issues.text
    message = "event type 'issues' is not one of ['push', 'release']"
    assert issues.json() == {"ignored": {"reason": "event_type_filtered", "message": message}, "created": False}
    custom = await post(client, "deploys", headers={**signed("deploys"), "X-Kind": "deploy"})
    assert custom.status_code == 201, custom.text
    assert len(sink.runs) == 2


async def test_event_filter_reads_the_standard_webhooks_type_from_the_body(app) -> None:  # type: ignore[no-untyped-def]
    client, _, sink = app

    def event(kind: str, delivery: str) -> tuple[bytes, dict[str, str]]:
        body = json.dumps({"type": kind, "data": {"id": delivery}}).encode()
        return body, signed("std-paid", body, delivery_id=delivery, timestamp=NOW)

    paid = await post(client, "std-paid", *event("invoice.paid", "msg_1"))
    created = await post(client, "std-paid", *event("invoice.created", "msg_2"))
    assert (paid.status_code, created.status_code) == (201, 202)
    assert created.json()["ignored"]["reason"] == "event_type_filtered"
    assert len(sink.runs) == 1


@pytest.mark.parametrize(
    ("name", "body", "extra", "message"),
    [
        ("gh-push", BODY, {}, "header x-github-event (the event type) is missing"),
        ("deploys", BODY, {"x-event-type": "deploy"}, "header x-kind (the event type) is missing"),
        ("std-paid", b'{"data": {}}', {}, "the body has no string field `type` (the event type)"),
        ("std-paid", b"[1, 2]", {}, "the body has no string field `type` (the event type)"),
    ],
)
async def test_event_filter_without_an_event_type_is_400(app, name, body, extra, message) -> None:  # type: ignore[no-untyped-def]
    client, _, sink = app
    response = await post(client, name, body, headers={**signed(name, body, delivery_id="m", timestamp=NOW), **extra})
    assert response.status_code == 400, response.text
    assert response.json() == {"error": {"reason": "missing_event_type", "message": message}}
    assert sink.runs == {}


async def test_event_filter_is_judged_only_after_the_signature(app) -> None:  # type: ignore[no-untyped-def]
    client, _, sink = app
    unsigned = {"content-type": "application/json", "x-github-event": "issues"}
    response = await post(client, "gh-push", headers=unsigned)
    assert response.status_code == 401 and response.json()["error"]["reason"] == "missing_signature"
    assert sink.runs == {}


async def test_pass_body_hands_the_text_to_the_run_up_to_its_cap(app) -> None:  # type: ignore[no-untyped-def]
    client, _, sink = app
    text = json.dumps({"message": "grüße"}).encode()
    assert (await post(client, "passes", body=text)).status_code == 201
    assert [request.body for request in sink.requests.values()] == [text.decode()]
    assert (await post(client, "generic")).status_code == 201
    assert sorted(str(request.body) for request in sink.requests.values()) == sorted([text.decode(), "None"])

    over = b'"' + b"x" * PASSED_BODY_MAX + b'"'
    too_large = await post(client, "passes", body=over)
    assert too_large.status_code == 413 and too_large.json()["error"]["reason"] == "payload_too_large"
    not_text = await post(client, "passes", body=b"\xff\xfe")
    assert not_text.status_code == 400 and not_text.json()["error"]["reason"] == "body_not_text"
    assert len(sink.runs) == 2
