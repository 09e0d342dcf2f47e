"""Who is calling, and may they: TokenReview and SubjectAccessReview for the operator's HTTP API.

``POST /v1/runs`` authenticates the caller's bearer token with the apiserver (TokenReview) and asks it whether that
user may ``create runs.stargraph.io`` in the namespace (SubjectAccessReview), so RBAC stays the one place where
access is granted. The operator's ServiceAccount needs ``create`` on ``tokenreviews`` and
``subjectaccessreviews`` (the ``system:auth-delegator`` ClusterRole).

Failing closed: ``None`` and ``False`` mean the apiserver said no. When it cannot be asked (unreachable, or the
operator itself lacks the RBAC above) these functions raise the ``KubeError`` rather than returning no: the caller
must deny the request either way, but should answer 503 (retry later) rather than 401/403 (give up), and log it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from stargraph.k8s.client import KubeClient

__all__ = ["UserInfo", "may", "review_token"]

_TOKEN_REVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"
_SUBJECT_ACCESS_REVIEWS = "/apis/authorization.k8s.io/v1/subjectaccessreviews"


@dataclass(frozen=True)
class UserInfo:
    """An authenticated user as the apiserver sees it; pass it on unchanged to ``may``."""

    username: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


async def review_token(api: KubeClient, token: str, *, audiences: Sequence[str] = ()) -> UserInfo | None:
    """The user ``token`` authenticates as, or None if the apiserver does not accept it.

    ``audiences`` empty means the apiserver's own audience (what ``kubectl create token`` issues by default).
    """
    if not token:
        # The apiserver would reject an empty token as an invalid review (422), not as "not authenticated".
        return None
    spec: dict[str, Any] = {"token": token}
    if audiences:
        spec["audiences"] = list(audiences)
    review = await api.create(
        _TOKEN_REVIEWS, {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec}
    )
    status = review.get("status") or {}
    user = status.get("user") or {}
    if status.get("authenticated") is not True or not user.get("username"):
        return None
    return UserInfo(
        username=user["username"],
        uid=user.get("uid") or "",
        groups=tuple(user.get("groups") or ()),
        extra={key: tuple(values) for key, values in (user.get("extra") or {}).items()},
    )


async def may(api: KubeClient, user: UserInfo, *, verb: str, group: str, resource: str, namespace: str | None) -> bool:
    """Whether RBAC (or any authorizer) allows ``user`` to ``verb`` ``resource.group`` in ``namespace``.

    ``namespace=None`` asks about all namespaces (or a cluster-scoped resource).
    """
    attributes = {"verb": verb, "group": group, "resource": resource}
    if namespace is not None:
        attributes["namespace"] = namespace
    spec = {
        "user": user.username,
        "uid": user.uid,
        "groups": list(user.groups),
        "extra": {key: list(values) for key, values in user.extra.items()},
        "resourceAttributes": attributes,
    }
    review = await api.create(
        _SUBJECT_ACCESS_REVIEWS,
        {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec},
    )
    status = review.get("status") or {}
    # "denied" can only be true when "allowed" is false; checking both keeps a malformed answer a no.
    return status.get("allowed") is True and status.get("denied") is not True
