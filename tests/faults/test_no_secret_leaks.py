"""No webhook secret and no bearer token ever appears in the operator's log, its error answers, statuses or Events.

Every secret here is random and registered with the test's `LeakWatch`, which always watches the operator's own
ServiceAccount token (from its kubeconfig) too. The operator runs at DEBUG, its most talkative level, and is driven
through every path that touches a secret: deliveries valid, redelivered, forged, with the secret itself sent as
the signature, after a rotation, for each signature scheme; a secret the operator cannot use (Stalled); `POST
/v1/runs` with an allowed, a forbidden, a deleted ServiceAccount's, a made-up and the operator's own token; and the
apiserver failing the TokenReview, the SubjectAccessReview and the Run's create (through a fault-injecting proxy).
Then the whole log, every error body, the triggers' status and the namespace's Events are searched.
"""

from __future__ import annotations

import json
import secrets
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes.client import ApiClient, CoreV1Api, CustomObjectsApi

from stargraph.api.v1alpha1 import GROUP, VERSION
from stargraph.triggers.signatures import SignatureScheme, sign
from tests.e2e.conftest import OperatorIdentity, Operators
from tests.e2e.kube import condition, create, cron_trigger, get, put_secret, webhook_trigger
from tests.faults.leaks import LeakWatch, kubeconfig_token
from tests.faults.targets import JSON, bearer, ready_hook
from tests.support.controlplane import KubeCluster
from tests.support.fault_proxy import Fault, FaultProxy
from tests.support.operator import OperatorProcess, eventually

pytestmark = pytest.mark.cluster

DEBUG = ["--log-level", "DEBUG"]


def post(url: str, leaks: LeakWatch, **kwargs: Any) -> httpx.Response:
    response = httpx.post(url, timeout=30, **kwargs)
    if response.status_code >= 400:
        leaks.error_body(response.content)
    return response


def manual_run(operator: OperatorProcess, namespace: str, token: str, leaks: LeakWatch) -> httpx.Response:
    body = {"triggerRef": {"kind": "CronTrigger", "name": "target", "namespace": namespace}, "params": {}}
    headers = {"Idempotency-Key": str(uuid.uuid4()), "Authorization": f"Bearer {token}"}
    return post(f"{operator.url}/v1/runs", leaks, json=body, headers=headers)


def observe_cluster(api: ApiClient, namespace: str, leaks: LeakWatch) -> None:
    """The namespace's triggers (their status) and Events, as users read them."""
    for plural in ("webhooktriggers", "crontriggers"):
        listing = CustomObjectsApi(api).list_namespaced_custom_object(GROUP, VERSION, namespace, plural)
        leaks.observed(f"{plural} of {namespace}", json.dumps(listing).encode())
    events = api.sanitize_for_serialization(CoreV1Api(api).list_namespaced_event(namespace))  # type: ignore[no-untyped-call]
    assert events["items"], "no Event to search"
    leaks.observed(f"Events of {namespace}", json.dumps(events).encode())


def test_webhook_secrets_and_bearer_tokens_appear_nowhere(
    operators: Operators,
    operator_identity: OperatorIdentity,
    control_plane: KubeCluster,
    kube_api: ApiClient,
    namespace: str,
    leak_watch: LeakWatch,
) -> None:
    operator = operators.start("leaks", extra_args=DEBUG)
    hook = ready_hook(kube_api, namespace, "hmac", leak_watch)
    url = operator.url + hook.path
    body = b'{"ref": "refs/heads/main"}'
    assert post(url, leak_watch, content=body, headers=hook.headers(body)).status_code == 201
    assert post(url, leak_watch, content=body, headers=hook.headers(body)).status_code == 200
    wrong = leak_watch.secret(secrets.token_urlsafe(32), what="a secret that is not the trigger's")
    forged = sign(scheme=SignatureScheme.HMAC_SHA256, key=wrong.encode(), body=body)
    assert post(url, leak_watch, content=body, headers={**JSON, **forged}).status_code == 401
    for signature in (hook.secret, f"sha256={hook.secret}"):  # a sender that sends its secret as the signature
        sent = post(url, leak_watch, content=body, headers={**JSON, "x-signature-256": signature})
        assert sent.status_code == 400, sent.text

    rotated = leak_watch.secret(secrets.token_urlsafe(32), what="the rotated webhook secret")
    put_secret(kube_api, namespace, "hmac-secret", {"secret": rotated})
    after = b'{"ref": "refs/heads/rotated"}'
    signed = {**JSON, **sign(scheme=SignatureScheme.HMAC_SHA256, key=rotated.encode(), body=after)}
    eventually(lambda: post(url, leak_watch, content=after, headers=signed).status_code == 201, timeout=10)

    github = ready_hook(kube_api, namespace, "github", leak_watch, signature={"scheme": "github"})
    pushed = {**JSON, **sign(scheme=SignatureScheme.GITHUB, key=github.secret.encode(), body=body, delivery_id="d-1")}
    assert post(operator.url + github.path, leak_watch, content=body, headers=pushed).status_code == 201

    # A standard-webhooks secret that is no base64: the trigger stalls, saying why without saying the secret.
    unusable = leak_watch.secret("whsec_" + secrets.token_urlsafe(24) + "!!", what="an unusable webhook secret")
    put_secret(kube_api, namespace, "unusable-secret", {"secret": unusable})
    create(
        kube_api, namespace, webhook_trigger("unusable", "unusable-secret", signature={"scheme": "standard-webhooks"})
    )

    def stalled() -> bool:
        return condition(get(kube_api, namespace, "webhooktriggers", "unusable"), "Stalled").get("status") == "True"

    eventually(stalled, timeout=10, what="the trigger with an unusable secret Stalled")

    create(kube_api, namespace, cron_trigger("target", "0 0 1 1 *"))
    caller = bearer(control_plane, kube_api, namespace, "caller", leak_watch, may_create_runs=True)
    eventually(lambda: manual_run(operator, namespace, caller, leak_watch).status_code == 201, timeout=10)
    stranger = bearer(control_plane, kube_api, namespace, "stranger", leak_watch, may_create_runs=False)
    assert manual_run(operator, namespace, stranger, leak_watch).status_code == 403
    departed = bearer(control_plane, kube_api, namespace, "departed", leak_watch, may_create_runs=True)
    CoreV1Api(kube_api).delete_namespaced_service_account("departed", namespace)
    eventually(lambda: manual_run(operator, namespace, departed, leak_watch).status_code == 401, timeout=10)
    made_up = leak_watch.secret("eyJhbGciOiJSUzI1NiJ9." + secrets.token_urlsafe(48), what="a made-up bearer token")
    assert manual_run(operator, namespace, made_up, leak_watch).status_code == 401
    own = kubeconfig_token(operator_identity.kubeconfig)
    assert manual_run(operator, namespace, own, leak_watch).status_code in (201, 403)

    observe_cluster(kube_api, namespace, leak_watch)
    leak_watch.assert_none_leaked(operators)


def test_apiserver_errors_around_tokens_leak_no_token(
    proxy: FaultProxy,
    operators: Operators,
    control_plane: KubeCluster,
    kube_api: ApiClient,
    namespace: str,
    leak_watch: LeakWatch,
    proxied_kubeconfig: Path,
) -> None:
    operator = operators.start("leaks-proxied", kubeconfig=proxied_kubeconfig, extra_args=DEBUG)
    create(kube_api, namespace, cron_trigger("target", "0 0 1 1 *"))
    caller = bearer(control_plane, kube_api, namespace, "caller", leak_watch, may_create_runs=True)
    eventually(lambda: manual_run(operator, namespace, caller, leak_watch).status_code == 201, timeout=10)

    faults: list[tuple[str, str, Fault]] = [
        ("POST", r"/tokenreviews$", "500"),
        ("POST", r"/tokenreviews$", "reset"),
        ("POST", r"/tokenreviews$", "lose_response"),  # the apiserver's answer echoes the token; it never arrives
        ("POST", r"/subjectaccessreviews$", "500"),
        ("POST", r"/subjectaccessreviews$", "reset"),
    ]
    for method, path, fault in faults:
        proxy.arm(method=method, path=path, fault=fault)
        refused = manual_run(operator, namespace, caller, leak_watch)
        assert refused.status_code == 503, (fault, path, refused.text)
        assert proxy.armed() == 0, f"{fault} on {path} was not applied"
    proxy.arm(method="POST", path=rf"/namespaces/{namespace}/runs$", fault="500", times=20)
    failed = manual_run(operator, namespace, caller, leak_watch)
    assert failed.status_code == 503, failed.text

    leak_watch.assert_none_leaked(operators)
