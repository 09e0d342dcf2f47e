"""Who may `POST /v1/runs`: the bearer token is checked by TokenReview, the permission by SubjectAccessReview.

The caller needs the same right as for `kubectl create` of a Run in the target namespace (`create` on
`runs.stargraph.io`). Everything fails closed: no token or a token the apiserver does not accept is 401, no
permission is 403, and an apiserver that cannot answer (within `REVIEW_TIMEOUT_SECONDS`) is 503 with
`Retry-After`, never a pass.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import structlog

from stargraph.api.v1alpha1 import GROUP
from stargraph.http import HttpError, HttpRequest
from stargraph.k8s.auth import may, review_token
from stargraph.k8s.client import KubeClient
from stargraph.k8s.errors import KubeError
from stargraph.triggers.submission import RETRY_AFTER_SECONDS

__all__ = ["REVIEW_TIMEOUT_SECONDS", "KubeAuthorizer"]

REVIEW_TIMEOUT_SECONDS = 4.0
"""Both reviews together; the Run's creation gets its own budget after them."""

log = structlog.get_logger("stargraph.controller")


class KubeAuthorizer:
    def __init__(self, api: KubeClient) -> None:
        self._api = api

    async def __call__(self, request: HttpRequest, namespace: str) -> Mapping[str, Any]:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise HttpError(401, "unauthenticated", "send a Kubernetes bearer token: Authorization: Bearer <token>")
        try:
            async with asyncio.timeout(REVIEW_TIMEOUT_SECONDS):
                user = await review_token(self._api, token.strip())
                if user is None:
                    raise HttpError(401, "unauthenticated", "the apiserver did not accept this bearer token")
                allowed = await may(self._api, user, verb="create", group=GROUP, resource="runs", namespace=namespace)
        except (KubeError, TimeoutError) as exc:
            log.warning("authorization could not be checked", error=repr(exc))
            raise HttpError(
                503,
                "authorization_unavailable",
                "the apiserver could not be asked; retry",
                retry_after=RETRY_AFTER_SECONDS,
            ) from exc
        if not allowed:
            raise HttpError(403, "forbidden", f"{user.username} may not create runs.{GROUP} in namespace {namespace}")
        return {"username": user.username}
