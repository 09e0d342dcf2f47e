"""What the fault tests aim at: a Ready WebhookTrigger and its signed deliveries, and callers of `POST /v1/runs`.

Every secret and token made here is random and registered with the test's `LeakWatch`, so whatever a test throws
at the operator, its logs and answers are searched for them afterwards.
"""

from __future__ import annotations

import secrets
from typing import Any

from kubernetes.client import (
    ApiClient,
)

from stargraph.api.v1alpha1 import GROUP
from stargraph.triggers.signatures import SignatureScheme, sign
from tests.e2e.kube import create, get, is_ready, put_secret, webhook_trigger
from tests.faults.leaks import LeakWatch, kubeconfig_token
from tests.support.controlplane import KubeCluster
from tests.support.operator import eventually
from tests.support.rbac import grant

__all__ = ["JSON", "Hook", "bearer", "ready_hook"]

JSON = {"content-type": "application/json"}


class Hook:
    """A Ready WebhookTrigger (scheme hmac-sha256) and the secret that signs its deliveries."""

    def __init__(self, name: str, path: str, secret: str) -> None:
        self.name = name
        self.path = path
        self.secret = secret

    def headers(self, body: bytes) -> dict[str, str]:
        """Content type and a valid signature of `body`."""
        return {**JSON, **sign(scheme=SignatureScheme.HMAC_SHA256, key=self.secret.encode(), body=body)}


def ready_hook(api: ApiClient, namespace: str, name: str, leaks: LeakWatch, **spec: Any) -> Hook:
    """Create a Secret with a fresh random key and a WebhookTrigger using it; return once the trigger is Ready."""
    secret = leaks.secret(secrets.token_urlsafe(32), what=f"webhook secret of {namespace}/{name}")
    put_secret(api, namespace, f"{name}-secret", {"secret": secret})
    create(api, namespace, webhook_trigger(name, f"{name}-secret", **spec))

    def ready() -> dict[str, Any] | None:
        obj = get(api, namespace, "webhooktriggers", name)
        return obj if is_ready(obj) else None

    path: str = eventually(ready, timeout=15, what=f"webhooktrigger {name} Ready")["status"]["path"]
    return Hook(name, path, secret)


def bearer(
    cluster: KubeCluster, api: ApiClient, namespace: str, name: str, leaks: LeakWatch, *, may_create_runs: bool
) -> str:
    """The token of a new ServiceAccount `name`; with `may_create_runs`, RBAC lets it create Runs in `namespace`."""
    token = kubeconfig_token(cluster.service_account_kubeconfig(namespace=namespace, name=name))
    leaks.secret(token, what=f"bearer token of {namespace}/{name}")
    if may_create_runs:
        role = f"{name}-creates-runs"
        grant(api, namespace, service_account=name, role=role, group=GROUP, resource="runs", verb="create")
    return token
