"""Validation at apply time: the real kube-apiserver calls the operator's admission webhook on 127.0.0.1.

Each test registers a ValidatingWebhookConfiguration with `clientConfig.url: https://127.0.0.1:<port>/validate`
and the caBundle of a CA of its own, scoped by namespaceSelector to its own namespace (the other tests of the
session never reach it), with the chart's default failurePolicy, Ignore. The operator runs as a local process with
the chart's identity and serves the webhook with a certificate that CA signed.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client import AdmissionregistrationV1Api, ApiClient
from kubernetes.client.exceptions import ApiException

from stargraph.triggers.validation import check_cron_trigger
from tests.e2e.conftest import Operators
from tests.e2e.kube import condition, create, cron_trigger, get, webhook_trigger
from tests.support.certs import CertAuthority
from tests.support.operator import Kubectl, OperatorProcess, eventually, free_port

pytestmark = [pytest.mark.cluster]

DENIED = 'admission webhook "triggers.stargraph.io" denied the request: '


def invalid(doc: dict[str, Any], message: str) -> str:
    """How kubectl prints a refusal with reason Invalid: from the field causes, as it prints a schema error."""
    return f'The {doc["kind"]} "{doc["metadata"]["name"]}" is invalid: {message}'


@dataclass
class Webhook:
    port: int
    tls_dir: Path
    namespace: str

    def args(self) -> list[str]:
        return ["--admission-port", str(self.port), "--tls-cert-dir", str(self.tls_dir)]


def configuration(
    name: str, *, port: int, ca: CertAuthority, namespace: str, failure_policy: str = "Ignore"
) -> dict[str, Any]:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [
            {
                "name": "triggers.stargraph.io",
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
                "failurePolicy": failure_policy,
                "timeoutSeconds": 5,
                "rules": [
                    {
                        "apiGroups": ["stargraph.io"],
                        "apiVersions": ["*"],
                        "resources": ["crontriggers", "webhooktriggers", "backfills"],
                        "operations": ["CREATE", "UPDATE"],
                        "scope": "Namespaced",
                    }
                ],
                "namespaceSelector": {
                    "matchExpressions": [
                        {"key": "kubernetes.io/metadata.name", "operator": "In", "values": [namespace]}
                    ]
                },
                "clientConfig": {
                    "url": f"https://127.0.0.1:{port}/validate",
                    "caBundle": base64.b64encode(ca.pem).decode(),
                },
            }
        ],
    }


def manifest(doc: dict[str, Any], namespace: str) -> str:
    return yaml.safe_dump({**doc, "metadata": {**doc["metadata"], "namespace": namespace}})


@pytest.fixture
def webhook(kube_api: ApiClient, namespace: str, tmp_path: Path, crds: None) -> Iterator[Webhook]:
    """The webhook configuration of this test's namespace; the operator is started by the test."""
    ca = CertAuthority.create()
    port = free_port()
    name = f"stargraph-e2e-{uuid.uuid4().hex[:8]}"
    admission = AdmissionregistrationV1Api(kube_api)
    admission.create_validating_webhook_configuration(configuration(name, port=port, ca=ca, namespace=namespace))
    try:
        yield Webhook(port=port, tls_dir=ca.issue(tmp_path / "tls"), namespace=namespace)
    finally:
        admission.delete_validating_webhook_configuration(name)


def start(operators: Operators, webhook: Webhook, kubectl: Kubectl) -> OperatorProcess:
    """An operator serving the webhook, once the apiserver is seen calling it (its configuration is cached)."""
    operator = operators.start("admission", extra_args=webhook.args())
    probe_doc = cron_trigger("probe", "61 * * * *")
    probe = manifest(probe_doc, webhook.namespace)

    def called() -> bool:
        result = kubectl.run("create", "--dry-run=server", "-f", "-", stdin=probe)
        assert invalid(probe_doc, "spec.schedule: '61 * * * *' is not a valid") in result.stderr, result.stderr
        return True

    eventually(called, timeout=15, what="the apiserver calling the webhook")
    return operator


def test_an_invalid_trigger_is_refused_at_apply_naming_the_field(
    operators: Operators, webhook: Webhook, kubectl: Kubectl, kube_api: ApiClient
) -> None:
    start(operators, webhook, kubectl)
    ns = webhook.namespace
    cases = {
        "spec.schedule: '61 * * * *'": cron_trigger("bad-schedule", "61 * * * *"),
        "spec.timeZone: unknown time zone 'Mars/Olympus'": cron_trigger("bad-zone", "@hourly", timeZone="Mars/Olympus"),
        "spec.signature.header: 'X Signature' is not a valid HTTP header name": webhook_trigger(
            "bad-header", "hook", signature={"header": "X Signature"}
        ),
        "spec.events.header: X-Hub-Signature-256 is read by the github scheme": webhook_trigger(
            "bad-events",
            "hook",
            signature={"scheme": "github"},
            events={"types": ["push"], "header": "X-Hub-Signature-256"},
        ),
        "spec.triggerRef.kind: WebhookTrigger has no schedule to backfill": {
            "apiVersion": "stargraph.io/v1alpha1",
            "kind": "Backfill",
            "metadata": {"name": "bad-kind"},
            "spec": {
                "triggerRef": {"kind": "WebhookTrigger", "name": "hook"},
                "from": "2026-01-01T00:00:00Z",
                "to": "2026-01-02T00:00:00Z",
            },
        },
    }
    for message, doc in cases.items():
        result = kubectl.run("apply", "-f", "-", stdin=manifest(doc, ns))
        assert result.returncode != 0, (doc, result.stdout)
        assert invalid(doc, message) in result.stderr, result.stderr
        assert get(kube_api, ns, f"{doc['kind'].lower()}s", doc["metadata"]["name"]) is None

    admitted = kubectl.run(
        "apply", "-f", "-", stdin=manifest(cron_trigger("nightly", "0 3 * * *", catchUpLimit=50), ns)
    )
    assert admitted.returncode == 0, admitted.stderr
    assert "Warning: spec.catchUpLimit: only read with catchUp: All" in admitted.stderr
    assert get(kube_api, ns, "crontriggers", "nightly") is not None


def test_an_update_to_an_invalid_schedule_is_refused(
    operators: Operators, webhook: Webhook, kubectl: Kubectl, kube_api: ApiClient
) -> None:
    start(operators, webhook, kubectl)
    ns = webhook.namespace
    kubectl.ok("apply", "-f", "-", stdin=manifest(cron_trigger("nightly", "0 3 * * *"), ns))
    patch = '{"spec": {"schedule": "0 3 * * 8"}}'
    refused = kubectl.run("patch", "crontrigger.stargraph.io", "nightly", "-n", ns, "--type=merge", "-p", patch)
    err = refused.stderr
    assert refused.returncode != 0, refused.stdout
    assert invalid(cron_trigger("nightly"), "spec.schedule: '0 3 * * 8'") in err, err
    obj = get(kube_api, ns, "crontriggers", "nightly")
    assert obj is not None and obj["spec"]["schedule"] == "0 3 * * *" and obj["metadata"]["generation"] == 1
    kubectl.ok("label", "crontrigger.stargraph.io", "nightly", "-n", ns, "team=a")
    kubectl.ok(
        "patch",
        "crontrigger.stargraph.io",
        "nightly",
        "-n",
        ns,
        "--type=merge",
        "-p",
        '{"spec": {"schedule": "0 4 * * *"}}',
    )


def test_with_the_operator_down_the_apply_is_admitted_and_goes_stalled_with_the_same_message(
    operators: Operators, webhook: Webhook, kubectl: Kubectl, kube_api: ApiClient
) -> None:
    ns = webhook.namespace
    operator = start(operators, webhook, kubectl)
    bad = cron_trigger("late", "0 9 * * *", timeZone="Europe/Atlantis")
    with pytest.raises(ApiException) as refused:
        create(kube_api, ns, bad)
    status = json.loads(refused.value.body)
    assert (status["code"], status["reason"]) == (422, "Invalid")
    assert status["message"].startswith(DENIED), status
    message = status["message"].removeprefix(DENIED)
    assert message == check_cron_trigger(bad["spec"]).message
    assert status["details"]["causes"] == [
        {"field": "spec.timeZone", "message": message.removeprefix("spec.timeZone: "), "reason": "FieldValueInvalid"}
    ]

    operator.stop()
    # Nothing listens on the webhook's port: failurePolicy Ignore admits the object unchecked.
    admitted = kubectl.run("apply", "-f", "-", stdin=manifest(bad, ns))
    assert admitted.returncode == 0, admitted.stderr
    assert get(kube_api, ns, "crontriggers", "late") is not None

    operators.start("admission-again", extra_args=webhook.args())

    def stalled() -> dict[str, Any] | None:
        obj = get(kube_api, ns, "crontriggers", "late")
        found = condition(obj, "Stalled") if obj else {}
        return found if found.get("status") == "True" else None

    stall = eventually(stalled, timeout=20, what="the trigger admitted during the outage Stalled")
    assert stall["reason"] == "UnknownTimeZone"
    assert stall["message"] == message
    # The object that got in can still be labelled (its spec is unchanged), and fixed.
    kubectl.ok("label", "crontrigger.stargraph.io", "late", "-n", ns, "outage=yes")
    kubectl.ok(
        "patch",
        "crontrigger.stargraph.io",
        "late",
        "-n",
        ns,
        "--type=merge",
        "-p",
        '{"spec": {"timeZone": "Europe/Lisbon"}}',
    )


def test_with_failure_policy_fail_an_unreachable_webhook_blocks_the_apply(
    kube_api: ApiClient, kubectl: Kubectl, namespace: str, crds: None
) -> None:
    """The trade-off the chart's default avoids: nothing listens on the port, and a valid trigger is refused."""
    name = f"stargraph-e2e-{uuid.uuid4().hex[:8]}"
    admission = AdmissionregistrationV1Api(kube_api)
    body = configuration(name, port=free_port(), ca=CertAuthority.create(), namespace=namespace, failure_policy="Fail")
    admission.create_validating_webhook_configuration(body)
    try:
        valid = manifest(cron_trigger("valid", "@hourly"), namespace)

        def refused() -> bool:  # a dry run while the apiserver's cache of webhook configurations catches up
            result = kubectl.run("create", "--dry-run=server", "-f", "-", stdin=valid)
            assert result.returncode != 0, result.stdout
            return True

        eventually(refused, timeout=15, what="the webhook configuration in effect")
        result = kubectl.run("apply", "-f", "-", stdin=valid)
        assert result.returncode != 0, result.stdout
        assert 'failed calling webhook "triggers.stargraph.io"' in result.stderr, result.stderr
        assert get(kube_api, namespace, "crontriggers", "valid") is None
    finally:
        admission.delete_validating_webhook_configuration(name)
