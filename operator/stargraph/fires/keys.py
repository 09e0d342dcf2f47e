"""Idempotency keys: the identity of a fire, fixed byte for byte so that it never drifts between releases.

Encoding (version 1; changing any byte here would make old Runs unrecognisable, so never do):

- cron:     ``sha256( utf8(trigger_id) ‖ 0x00 ‖ ascii(rfc3339(scheduled_fire)) )``
- webhook:  ``sha256( utf8(trigger_id) ‖ 0x00 ‖ ascii(lowerhex(sha256(body))) )``
- webhook keyed on the sender's delivery id:
            ``sha256( utf8(trigger_id) ‖ 0x00 ‖ "delivery" ‖ 0x00 ‖ utf8(delivery_id) )``
- manual:   the caller's UUID in canonical lower-case 8-4-4-4-12 form.

``rfc3339`` is the instant in UTC as ``YYYY-MM-DDTHH:MM:SSZ``, with ``.ffffff`` before the ``Z`` only when the
microseconds are not zero. Digests are lower-case hex (64 characters). NUL cannot occur in a trigger id, so the
concatenation is unambiguous. docs/architecture.md ("Idempotency keys") states the same for readers of the docs.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime

__all__ = [
    "body_sha256",
    "cron_idempotency_key",
    "format_fire_time",
    "manual_idempotency_key",
    "split_trigger_id",
    "trigger_id",
    "webhook_delivery_idempotency_key",
    "webhook_idempotency_key",
]

_SEP = b"\x00"


def trigger_id(source: str, namespace: str, name: str) -> str:
    """`<source>:<namespace>/<name>`, e.g. `cron:team-a/nightly`: the trigger part of every key and Run."""
    return f"{source}:{namespace}/{name}"


def split_trigger_id(value: str) -> tuple[str, str, str]:
    """(source, namespace, name) of a trigger id; an id without a namespace lives in `default`."""
    source, _, qualified = value.partition(":")
    namespace, _, name = qualified.rpartition("/")
    return source, namespace or "default", name


def format_fire_time(when: datetime) -> str:
    """The canonical RFC 3339 form of an instant, as used in keys and the `scheduled-fire` annotation."""
    if when.tzinfo is None:
        raise ValueError("fire time must be timezone-aware")
    # isoformat() prints the microseconds exactly when they are not zero, and is several times faster than strftime.
    return when.astimezone(UTC).replace(tzinfo=None).isoformat() + "Z"


def _digest(*parts: bytes) -> str:
    return hashlib.sha256(_SEP.join(parts)).hexdigest()


def _trigger_bytes(trigger_id: str) -> bytes:
    if not trigger_id or "\x00" in trigger_id:
        raise ValueError("trigger_id must be non-empty and contain no NUL")
    return trigger_id.encode("utf-8")


def cron_idempotency_key(trigger_id: str, scheduled_fire: datetime) -> str:
    """Key of the cron fire of `trigger_id` at the nominal instant `scheduled_fire`."""
    return _digest(_trigger_bytes(trigger_id), format_fire_time(scheduled_fire).encode("ascii"))


def body_sha256(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def webhook_idempotency_key(trigger_id: str, body_hash: str) -> str:
    """Key of a webhook delivery identified by its body (`body_hash` = `body_sha256(raw body)`)."""
    if len(body_hash) != 64 or body_hash != body_hash.lower():
        raise ValueError("body_hash must be 64 lower-case hex characters")
    return _digest(_trigger_bytes(trigger_id), body_hash.encode("ascii"))


def webhook_delivery_idempotency_key(trigger_id: str, delivery_id: str) -> str:
    """Key of a webhook delivery identified by the sender's delivery id (`webhook-id`, `X-GitHub-Delivery`)."""
    if not delivery_id:
        raise ValueError("delivery_id must be non-empty")
    return _digest(_trigger_bytes(trigger_id), b"delivery", delivery_id.encode("utf-8"))


def manual_idempotency_key(raw: str) -> str:
    """Validate a caller-supplied UUID and return its canonical form; `ValueError` when it is not a UUID."""
    try:
        return str(uuid.UUID(raw.strip()))
    except (ValueError, AttributeError) as exc:
        raise ValueError("idempotency key must be a UUID such as 1b4e28ba-2fa1-11d2-883f-0016d3cca427") from exc
