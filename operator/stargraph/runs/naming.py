"""Object names derived from idempotency keys: the deterministic Run name and label-safe values."""

from __future__ import annotations

import hashlib
import re

__all__ = ["label_value", "run_name"]

_MAX_LABEL = 63
_HASH_CHARS = 16
_INVALID = re.compile(r"[^a-z0-9-]+")


def run_name(*, trigger_name: str, idempotency_key: str) -> str:
    """`<trigger-name>-<16 hex of sha256(key)>`, a valid DNS label.

    The hash of the key (not the key itself) keeps names short and hides caller-chosen keys; 64 bits make an
    accidental collision within one trigger's history negligible, and a collision would surface as a 409 that the
    sink reports as a conflict, never as silent adoption. Names stay within 63 characters so they fit a label.
    """
    digest = hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()[:_HASH_CHARS]
    prefix = _INVALID.sub("-", trigger_name.lower()).strip("-")[: _MAX_LABEL - _HASH_CHARS - 1].rstrip("-")
    return f"{prefix}-{digest}" if prefix else f"run-{digest}"


def label_value(value: str) -> str:
    """`value` if it fits a label value, else a truncation made unique by a hash suffix."""
    if len(value) <= _MAX_LABEL:
        return value
    digest = hashlib.sha256(value.encode("utf-8")).hexdigest()[:8]
    return f"{value[: _MAX_LABEL - 9].rstrip('-.')}-{digest}"
