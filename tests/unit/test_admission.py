"""The admission webhook's review handling (through its ASGI app) and its TLS server with a rotating certificate.

The refusals must read exactly as the Stalled conditions do: both come from `triggers.validation`, and the
controllers' messages are checked against the same functions in tests/unit/test_webhook_secrets.py and the e2e tests.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import uuid
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509

from stargraph.models import FieldError
from stargraph.serve.admission import MAX_REVIEW_BYTES, create_admission_app
from stargraph.serve.server import serving_tls
from stargraph.serve.tls import ReloadingCertificate
from stargraph.triggers.validation import SPEC_CHECKS, SpecCheck, check_cron_trigger, check_webhook_trigger
from tests.support.certs import CertAuthority

CRON = {"group": "stargraph.io", "version": "v1alpha1", "kind": "CronTrigger"}
WEBHOOK = {"group": "stargraph.io", "version": "v1alpha1", "kind": "WebhookTrigger"}


def review(
    spec: Any,
    *,
    kind: Mapping[str, str] = CRON,
    operation: str = "CREATE",
    old_spec: Any = None,
    uid: str | None = None,
) -> dict[str, Any]:
    request: dict[str, Any] = {
        "uid": uid or str(uuid.uuid4()),
        "kind": dict(kind),
        "resource": {"group": kind["group"], "version": kind["version"], "resource": kind["kind"].lower() + "s"},
        "requestKind": dict(kind),
        "name": "nightly",
        "namespace": "team-a",
        "operation": operation,
        "userInfo": {"username": "alice", "groups": ["system:authenticated"]},
        "object": {"apiVersion": "stargraph.io/v1alpha1", "kind": kind["kind"], "spec": spec},
        "dryRun": False,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
    }
    if old_spec is not None:
        request["oldObject"] = {"apiVersion": "stargraph.io/v1alpha1", "kind": kind["kind"], "spec": old_spec}
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


async def post(body: Any, *, checks: Mapping[str, Any] = SPEC_CHECKS, raw: bytes | None = None) -> httpx.Response:
    transport = httpx.ASGITransport(app=create_admission_app(checks))
    async with httpx.AsyncClient(transport=transport, base_url="https://operator.test") as client:
        content = raw if raw is not None else json.dumps(body).encode()
        return await client.post("/validate", content=content, headers={"content-type": "application/json"})


async def answer(body: Any, **kwargs: Any) -> dict[str, Any]:
    response = await post(body, **kwargs)
    assert response.status_code == 200, response.text
    reply: dict[str, Any] = response.json()
    assert reply["apiVersion"] == "admission.k8s.io/v1" and reply["kind"] == "AdmissionReview"
    assert reply["response"]["uid"] == body["request"]["uid"]
    return dict(reply["response"])


async def test_a_valid_trigger_is_allowed_and_the_uid_echoed() -> None:
    body = review({"schedule": "*/5 * * * *", "timeZone": "Europe/Berlin"}, uid="705ab4f5-6393-11e8-b7cc-42010a800002")
    assert await answer(body) == {"uid": "705ab4f5-6393-11e8-b7cc-42010a800002", "allowed": True}


@pytest.mark.parametrize(
    ("spec", "field", "reason"),
    [
        ({"schedule": "61 * * * *"}, "spec.schedule", "InvalidSchedule"),
        ({"schedule": "* * * * *", "timeZone": "Mars/Olympus"}, "spec.timeZone", "UnknownTimeZone"),
        ({"schedule": 5}, "spec.schedule", "InvalidSpec"),
        ({"timeZone": "UTC"}, "spec.schedule", "InvalidSpec"),
        ({"schedule": "* * * * *", "catchUp": "Sometimes"}, "spec.catchUp", "InvalidSpec"),
    ],
)
async def test_an_unusable_cron_trigger_is_refused_with_the_stalled_message(
    spec: dict[str, Any], field: str, reason: str
) -> None:
    response = await answer(review(spec))
    checked = check_cron_trigger(spec)
    assert response["allowed"] is False
    assert checked.reason == reason
    status = response["status"]
    assert status["message"] == checked.message
    assert status["message"].startswith(f"{field}: ")
    assert status["code"] == 422 and status["reason"] == "Invalid"
    assert status["details"]["causes"][0]["field"] == field
    assert status["details"]["kind"] == "CronTrigger" and status["details"]["name"] == "nightly"


async def test_an_object_the_models_cannot_parse_is_refused_naming_the_spec() -> None:
    response = await answer(review("every night"))
    assert response["allowed"] is False
    assert response["status"]["message"].startswith("spec: Input should be a valid dictionary")
    missing = await answer(review(None))
    assert missing["allowed"] is False and missing["status"]["message"].startswith("spec: ")


async def test_every_error_is_reported_at_once() -> None:
    template = {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i", "args": ["$(params.x)"]}]}}}}
    response = await answer(review({"schedule": "61 * * * *", "runTemplate": {"jobTemplate": template}}))
    fields = [cause["field"] for cause in response["status"]["details"]["causes"]]
    assert fields == ["spec.schedule", "spec.runTemplate.jobTemplate.spec.template.spec.containers[0].args[0]"]


async def test_an_update_to_an_invalid_schedule_is_refused_one_leaving_the_spec_alone_is_not() -> None:
    good, bad = {"schedule": "@hourly"}, {"schedule": "0 25 * * *"}
    refused = await answer(review(bad, operation="UPDATE", old_spec=good))
    assert refused["allowed"] is False and refused["status"]["message"].startswith("spec.schedule: '0 25 * * *'")
    # A trigger that got in while the webhook was down can still be labelled, or have its finalizers removed.
    assert (await answer(review(bad, operation="UPDATE", old_spec=bad)))["allowed"] is True
    assert (await answer(review(good, operation="UPDATE", old_spec=bad)))["allowed"] is True


async def test_impossible_signature_configurations_are_refused() -> None:
    secret = {"secretRef": {"name": "hook"}}
    cases = {
        "spec.signature.header": {**secret, "signature": {"header": "X Signature"}},
        "spec.events.header": {
            **secret,
            "signature": {"scheme": "github"},
            "events": {"types": ["push"], "header": "X-Hub-Signature-256"},
        },
    }
    for field, spec in cases.items():
        response = await answer(review(spec, kind=WEBHOOK))
        assert response["allowed"] is False, field
        assert response["status"]["message"] == check_webhook_trigger(spec).message
        assert response["status"]["message"].startswith(f"{field}: "), response
    collision = {**secret, "signature": {"header": "X-Event"}, "events": {"types": ["push"], "header": "x-event"}}
    assert check_webhook_trigger(collision).errors == (
        FieldError("spec.events.header", "x-event is read by the hmac-sha256 scheme; name a header of its own"),
    )
    delivery = {**secret, "signature": {"header": "X-Delivery-ID"}}
    assert check_webhook_trigger(delivery).message == (
        "spec.signature.header: X-Delivery-ID is read by the hmac-sha256 scheme; name a header of its own"
    )
    transport = {**secret, "signature": {"header": "Content-Type"}}
    assert check_webhook_trigger(transport).reason == "InvalidSignature"


async def test_fields_without_effect_are_allowed_with_warnings() -> None:
    spec = {"secretRef": {"name": "hook"}, "signature": {"scheme": "github", "toleranceSeconds": 60}}
    response = await answer(review(spec, kind=WEBHOOK))
    assert response["allowed"] is True
    assert response["warnings"] == ["spec.signature.toleranceSeconds: only read by standard-webhooks (scheme: github)"]
    cron = await answer(review({"schedule": "@daily", "catchUpLimit": 50}))
    assert cron["warnings"] == ["spec.catchUpLimit: only read with catchUp: All (this trigger has catchUp: Latest)"]


async def test_other_kinds_groups_and_operations_are_allowed() -> None:
    assert (await answer(review("x", kind={**CRON, "group": "acme.example"})))["allowed"] is True
    assert (await answer(review("x", kind={**CRON, "kind": "Run"})))["allowed"] is True
    deleting = review("x", operation="DELETE")
    del deleting["request"]["object"]
    assert (await answer(deleting))["allowed"] is True


async def test_a_kind_is_checked_by_its_registry_entry() -> None:
    def backfill_check(spec: Mapping[str, Any]) -> SpecCheck[Any]:
        return (
            SpecCheck(spec=spec)
            if spec.get("from")
            else SpecCheck(spec=None, errors=(FieldError("spec.from", "required"),))
        )

    checks = {**SPEC_CHECKS, "Backfill": backfill_check}
    kind = {**CRON, "kind": "Backfill"}
    refused = await answer(review({}, kind=kind), checks=checks)
    assert refused["allowed"] is False and refused["status"]["message"] == "spec.from: required"
    assert (await answer(review({"from": "2026-01-01"}, kind=kind), checks=checks))["allowed"] is True


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{not json", "the body is not JSON"),
        (b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}', "request: Field required"),
        (b'{"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview", "request": {}}', "apiVersion"),
        (json.dumps(review({}) | {"request": {"uid": "", "operation": "CREATE"}}).encode(), "request.uid"),
        (b"[]", "not an admission.k8s.io/v1 AdmissionReview"),
    ],
)
async def test_a_malformed_review_gets_400_with_a_json_body(raw: bytes, message: str) -> None:
    response = await post(None, raw=raw)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["reason"] == "invalid_admission_review"
    assert message in error["message"]


async def test_wrong_method_path_and_size_are_answered_in_json() -> None:
    transport = httpx.ASGITransport(app=create_admission_app(SPEC_CHECKS))
    async with httpx.AsyncClient(transport=transport, base_url="https://operator.test") as client:
        assert (await client.get("/validate")).json()["error"]["reason"] == "method_not_allowed"
        assert (await client.post("/elsewhere", content=b"{}")).json()["error"]["reason"] == "not_found"
        huge = await client.post("/validate", content=b" " * (MAX_REVIEW_BYTES + 1))
        assert huge.status_code == 413 and huge.json()["error"]["reason"] == "payload_too_large"


# -- TLS ----------------------------------------------------------------------------------------------------------


async def _served_serial(port: int, ca: CertAuthority) -> int:
    """The serial number of the certificate a fresh connection is served (verified against `ca`)."""
    context = ssl.create_default_context(cadata=ca.pem.decode())
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    finally:
        writer.close()
    return x509.load_der_x509_certificate(der).serial_number


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[int, CertAuthority, Path, ReloadingCertificate]]:
    ca = CertAuthority.create()
    directory = ca.issue(tmp_path / "tls")
    certificate = ReloadingCertificate(directory / "tls.crt", directory / "tls.key")
    app = create_admission_app(SPEC_CHECKS)
    async with serving_tls(app, host="127.0.0.1", port=0, context=certificate.server_context()) as port:
        yield port, ca, directory, certificate


async def test_the_webhook_answers_over_https(served: tuple[int, CertAuthority, Path, ReloadingCertificate]) -> None:
    port, ca, _, _ = served
    context = ssl.create_default_context(cadata=ca.pem.decode())
    async with httpx.AsyncClient(verify=context) as client:
        body = review({"schedule": "@hourly", "timeZone": "Nowhere/Special"})
        response = await client.post(f"https://127.0.0.1:{port}/validate", json=body)
    assert response.status_code == 200
    assert response.json()["response"]["status"]["message"].startswith("spec.timeZone: unknown time zone")


async def test_a_rotated_certificate_is_served_to_the_next_connection(
    served: tuple[int, CertAuthority, Path, ReloadingCertificate],
) -> None:
    port, ca, directory, certificate = served
    first = await _served_serial(port, ca)
    assert await _served_serial(port, ca) == first
    assert certificate.loads == 1
    ca.issue(directory)
    second = await _served_serial(port, ca)
    assert second != first
    assert certificate.loads == 2
    # A broken pair (a key that does not match) leaves the last good certificate in service.
    other = CertAuthority.create().issue(directory.parent / "other")
    (directory / "tls.crt").write_bytes((other / "tls.crt").read_bytes())
    assert await _served_serial(port, ca) == second


def test_a_certificate_that_does_not_load_is_an_error_at_start(tmp_path: Path) -> None:
    (tmp_path / "tls.crt").write_text("not a certificate")
    (tmp_path / "tls.key").write_text("not a key")
    with pytest.raises(ssl.SSLError):
        ReloadingCertificate(tmp_path / "tls.crt", tmp_path / "tls.key")


async def test_a_backfill_of_a_kind_without_a_schedule_is_refused_naming_the_field() -> None:
    kind = {**CRON, "kind": "Backfill"}
    spec = {"triggerRef": {"kind": "WebhookTrigger", "name": "push"}, "from": "2026-01-01T00:00:00Z"}
    refused = await answer(review({**spec, "to": "2026-01-02T00:00:00Z"}, kind=kind))
    assert refused["allowed"] is False
    assert refused["status"]["message"].startswith("spec.triggerRef.kind: WebhookTrigger has no schedule to backfill")
    reversed_range = {**spec, "triggerRef": {"kind": "CronTrigger", "name": "n"}, "to": "2025-12-31T00:00:00Z"}
    assert (await answer(review(reversed_range, kind=kind)))["status"]["message"].startswith("spec.to: ")
    admitted = {**reversed_range, "to": "2026-01-02T00:00:00Z"}
    assert (await answer(review(admitted, kind=kind)))["allowed"] is True
