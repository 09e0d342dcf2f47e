"""Kubernetes Events (``events.k8s.io/v1``) about the operator's objects: what ``kubectl describe`` shows.

Each call creates one Event; nothing is aggregated into series as client-go's recorder does, so record
transitions (a fire, a failure), not every reconcile. Recording is best effort: failures are logged on the
``stargraph.k8s`` logger and swallowed, because an Event must never break the reconciliation it describes. Only
whether the apiserver could take the Event at all is returned, so a caller may post it again after an outage.
"""

from __future__ import annotations

import datetime
import secrets
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import structlog

from stargraph.k8s.client import KubeClient
from stargraph.k8s.errors import KubeError, is_unavailable
from stargraph.k8s.paths import path

__all__ = ["REPORTING_CONTROLLER", "ObjectRef", "record_event"]

log = structlog.get_logger("stargraph.k8s")

REPORTING_CONTROLLER = "stargraph.io/operator"
# The apiserver's limits: note 1 kB (counted in bytes), reason/action/reportingInstance 128, names 253.
_NOTE_BYTES = 1024
_FIELD_CHARS = 128
_NAME_CHARS = 253
_SUFFIX_HEX = 16


@dataclass(frozen=True)
class ObjectRef:
    """The object an Event is about; ``namespace`` None for cluster-scoped objects."""

    api_version: str
    kind: str
    name: str
    namespace: str | None = None
    uid: str | None = None

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> ObjectRef:
        """The reference to a Kubernetes object given as its JSON dict."""
        metadata = obj["metadata"]
        return cls(obj["apiVersion"], obj["kind"], metadata["name"], metadata.get("namespace"), metadata.get("uid"))


async def record_event(
    api: KubeClient,
    *,
    involved: ObjectRef,
    type: Literal["Normal", "Warning"],
    reason: str,
    message: str,
    action: str | None = None,
    reporting_controller: str = REPORTING_CONTROLLER,
    reporting_instance: str | None = None,
) -> bool:
    """Create an Event about ``involved``; ``action`` (what was done) defaults to ``reason``.

    ``reporting_instance`` defaults to the host name, which in a Pod is the Pod's name. Returns False when the
    apiserver could not be reached or was overloaded (the same Event may succeed later), True otherwise.
    """
    # Cluster-scoped objects have their Events in "default", as kubectl and client-go expect.
    namespace = involved.namespace or "default"
    regarding = {"apiVersion": involved.api_version, "kind": involved.kind, "name": involved.name}
    if involved.namespace is not None:
        regarding["namespace"] = involved.namespace
    if involved.uid is not None:
        regarding["uid"] = involved.uid
    # Truncation must not leave a "-" or "." before the separator: the name would not be a DNS subdomain.
    prefix = involved.name[: _NAME_CHARS - _SUFFIX_HEX - 1].rstrip("-.")
    event = {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": f"{prefix}.{secrets.token_hex(_SUFFIX_HEX // 2)}", "namespace": namespace},
        "regarding": regarding,
        "type": type,
        "reason": reason[:_FIELD_CHARS],
        "action": (action or reason)[:_FIELD_CHARS],
        # Cut on a byte boundary without splitting a multi-byte character.
        "note": message.encode()[:_NOTE_BYTES].decode(errors="ignore"),
        # MicroTime: RFC 3339 with six fractional digits, the layout the apiserver parses.
        "eventTime": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "reportingController": reporting_controller,
        "reportingInstance": (reporting_instance or socket.gethostname())[:_FIELD_CHARS],
    }
    try:
        await api.create(path(group="events.k8s.io", version="v1", plural="events", namespace=namespace), event)
    except KubeError as exc:
        if is_unavailable(exc):
            return False
        _log_failure(involved, reason)
    except Exception:
        # Any failure, bugs included: the Event is a courtesy, the reconciliation that records it is the point.
        _log_failure(involved, reason)
    return True


def _log_failure(involved: ObjectRef, reason: str) -> None:
    log.warning(
        "could not record event",
        kind=involved.kind,
        namespace=involved.namespace,
        name=involved.name,
        reason=reason,
        exc_info=True,
    )
