"""Run identity: the deterministic object name that makes a second copy of a fire impossible."""

from __future__ import annotations

import hashlib
import re

__all__ = ["run_name"]

_MAX_NAME = 63  # Run names double as label values (`stargraph.io/run`), which are capped at 63 characters.
_HASH_CHARS = 16
_INVALID = re.compile(r"[^a-z0-9-]+")


def run_name(*, trigger_name: str, idempotency_key: str) -> str:
    """`<trigger-name>-<16 hex of sha256(key)>`, a valid DNS label.

    The hash of the key (not the key itself) keeps names short and hides caller-chosen keys; 64 bits make an
    accidental collision within one trigger's history negligible, and a collision would surface as a 409 that the
    sink reports as a conflict, never as silent adoption.
    """
    digest = hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()[:_HASH_CHARS]
    prefix = _INVALID.sub("-", trigger_name.lower()).strip("-")[: _MAX_NAME - _HASH_CHARS - 1].rstrip("-")
    return f"{prefix}-{digest}" if prefix else f"run-{digest}"
