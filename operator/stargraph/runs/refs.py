"""What the scheduler and its callers know of a Run: its reference, the outcome of a submission, the payload digest."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

__all__ = ["RunRef", "SubmitResult", "payload_sha256"]


def payload_sha256(payload: dict[str, Any]) -> str:
    """Fingerprint of an event payload (canonical JSON), kept on the Run to tell a replay from a different request."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class RunRef:
    name: str
    namespace: str
    idempotency_key: str
    trigger_id: str
    payload_sha256: str


@dataclass(frozen=True, slots=True)
class SubmitResult:
    run: RunRef
    created: bool
    """False when the event matched a Run that already existed or was being created."""
