"""The only layer of stargraph that talks to the Kubernetes API: async, over one aiohttp session.

``load_credentials`` finds the credentials (kubeconfig or in-cluster), ``KubeClient`` makes requests and watches,
``paths.path`` builds resource URLs, ``auth`` and ``events`` wrap the review and Event APIs. Every error raised is
a ``KubeError``.
"""

from stargraph.k8s.auth import UserInfo, may, review_token
from stargraph.k8s.client import KubeClient, PatchType, QueryParams
from stargraph.k8s.credentials import Credentials, in_cluster_credentials, kubeconfig_credentials, load_credentials
from stargraph.k8s.errors import (
    ApiError,
    ApiUnavailable,
    ConfigError,
    Conflict,
    Expired,
    Forbidden,
    Invalid,
    KubeError,
    NotFound,
    ProtocolError,
    Unauthorized,
    WatchExpired,
)
from stargraph.k8s.events import ObjectRef, record_event
from stargraph.k8s.paths import path
from stargraph.k8s.tokens import TokenProvider
from stargraph.k8s.watch import WatchEvent, WatchEventType

__all__ = [
    "ApiError",
    "ApiUnavailable",
    "ConfigError",
    "Conflict",
    "Credentials",
    "Expired",
    "Forbidden",
    "Invalid",
    "KubeClient",
    "KubeError",
    "NotFound",
    "ObjectRef",
    "PatchType",
    "ProtocolError",
    "QueryParams",
    "TokenProvider",
    "Unauthorized",
    "UserInfo",
    "WatchEvent",
    "WatchEventType",
    "WatchExpired",
    "in_cluster_credentials",
    "kubeconfig_credentials",
    "load_credentials",
    "may",
    "path",
    "record_event",
    "review_token",
]
