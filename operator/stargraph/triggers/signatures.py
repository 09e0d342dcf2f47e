"""Webhook signature verification: pure functions of the request headers and the raw body, no web framework.

Schemes
-------
``hmac-sha256``
    One header (``x-signature-256`` unless configured otherwise) holding ``sha256=<hex HMAC-SHA256 of the
    body>``. The optional ``x-delivery-id`` header names the delivery.
``github``
    GitHub's ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>``; ``X-GitHub-Delivery`` names the
    delivery.
``standard-webhooks``
    https://www.standardwebhooks.com: ``webhook-id`` names the delivery, ``webhook-timestamp`` is in integer
    Unix seconds and ``webhook-signature`` is a space-separated list of ``v1,<base64 HMAC-SHA256>`` entries
    over ``{webhook-id}.{webhook-timestamp}.{body}``. Entries of other versions (``v1a,`` ...) are skipped.
    The secret is ``whsec_<base64 key>``. The timestamp must lie within ``tolerance_seconds`` of now, either
    way (exactly the tolerance is still accepted), so a captured delivery cannot be replayed later.

Rules
-----
- The HMAC covers the raw body bytes, and nothing is parsed from the body.
- Digests are compared with `hmac.compare_digest` only.
- Several keys may be live during a secret rotation: a delivery verifies if any key matches any signature.
- Header names in ``headers`` must be lower-case, as ASGI servers deliver them.
- Every header value ends in a `Verification` or a `SignatureError`: status 400 when a header is
  syntactically malformed, 401 when one is missing, no signature matches or the timestamp is out of
  tolerance. Values longer than 8 KiB and more than 10 signature entries count as malformed, which bounds
  the work an unauthenticated sender can cause.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from stargraph.api.v1alpha1 import SignatureScheme
from stargraph.errors import StargraphError

__all__ = [
    "DEFAULT_SIGNATURE_HEADER",
    "SignatureError",
    "SignatureScheme",
    "Verification",
    "parse_secret",
    "scheme_headers",
    "sign",
    "verify",
]

_MAX_HEADER_CHARS = 8 * 1024
_MAX_SIGNATURE_ENTRIES = 10
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_HEX_SIGNATURE = re.compile(r"sha256=([0-9a-fA-F]{64})")
_V1_SIGNATURE = re.compile(r"[A-Za-z0-9+/]{43}=")  # a 32-byte digest in standard base64
# Thirteen digits and more would be past the year 33000: almost certainly milliseconds sent by mistake.
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
# Delivery ids end up in idempotency keys, Run payloads and logs, so only short visible ASCII is let through.
_DELIVERY_ID = re.compile(r"[\x21-\x7e]{1,256}")
_WHSEC_PREFIX = b"whsec_"
DEFAULT_SIGNATURE_HEADER = "x-signature-256"
"""What the hmac-sha256 scheme reads the signature from unless the trigger names another header."""


class SignatureError(StargraphError):
    """A delivery that failed verification.

    `status` is the HTTP answer (400 malformed, 401 unauthenticated), `reason` a stable snake_case label for
    metrics, `message` a sentence for the sender; none of them ever contains a secret.
    """

    def __init__(self, *, status: int, reason: str, message: str) -> None:
        super().__init__(reason, message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Verification:
    """A verified delivery; `delivery_id` is the sender's name for it, when the scheme carries one."""

    delivery_id: str | None
    scheme: SignatureScheme


def parse_secret(scheme: SignatureScheme, raw: str | bytes) -> bytes:
    """The HMAC key for `raw` as stored in a Secret; `ValueError` (a configuration error) when it has none.

    One trailing newline is dropped: Secrets created from files usually end with one. For standard-webhooks
    the key is the base64 text after the ``whsec_`` prefix, which may be left out, as the scheme's own
    libraries allow.
    """
    key = (raw.encode() if isinstance(raw, str) else raw).removesuffix(b"\n")
    if scheme == SignatureScheme.STANDARD_WEBHOOKS:
        try:
            key = base64.b64decode(key.removeprefix(_WHSEC_PREFIX), validate=True)
        except binascii.Error as exc:
            raise ValueError(f"a standard-webhooks secret must be whsec_ and base64 ({exc})") from None
    if not key:
        raise ValueError(f"the {scheme} secret is empty")
    return key


def verify(
    *,
    scheme: SignatureScheme,
    keys: Sequence[bytes],
    headers: Mapping[str, str],
    body: bytes,
    now: datetime,
    tolerance_seconds: int = 300,
    signature_header: str = DEFAULT_SIGNATURE_HEADER,
) -> Verification:
    """Check the delivery `body` against its `headers` (lower-case names), or raise `SignatureError`.

    `keys` come from `parse_secret`; with none, nothing verifies. `now` (timezone-aware) and
    `tolerance_seconds` matter only to standard-webhooks, `signature_header` only to hmac-sha256.
    """
    if scheme == SignatureScheme.STANDARD_WEBHOOKS:
        return _verify_standard_webhooks(
            keys=keys, headers=headers, body=body, now=now, tolerance_seconds=tolerance_seconds
        )
    signature_name, delivery_name = _hex_scheme_headers(scheme, signature_header)
    match = _HEX_SIGNATURE.fullmatch(_required(headers, signature_name, "signature"))
    if match is None:
        raise _malformed("signature", f"the {signature_name} header must be sha256=<64 hex digits>")
    if not _any_match(keys, body, [bytes.fromhex(match[1])]):
        raise _no_match(signature_name)
    delivery_id = _optional(headers, delivery_name, "delivery_id")
    if delivery_id is not None:
        _check_delivery_id(delivery_name, delivery_id)
    return Verification(delivery_id=delivery_id, scheme=scheme)


def sign(
    *,
    scheme: SignatureScheme,
    key: bytes,
    body: bytes,
    timestamp: datetime | None = None,
    delivery_id: str | None = None,
    signature_header: str = DEFAULT_SIGNATURE_HEADER,
) -> dict[str, str]:
    """The headers a sender sets for `body`, signed with `key` (as returned by `parse_secret`).

    standard-webhooks signs `timestamp` and `delivery_id` too, so both are required there; the other schemes
    ignore `timestamp` and send the delivery id header only when `delivery_id` is given.
    """
    if scheme == SignatureScheme.STANDARD_WEBHOOKS:
        if timestamp is None or delivery_id is None:
            raise ValueError("standard-webhooks signs a timestamp and a delivery id: pass both")
        seconds = str((timestamp - _EPOCH) // timedelta(seconds=1))
        digest = hmac.digest(key, f"{delivery_id}.{seconds}.".encode() + body, hashlib.sha256)
        return {
            "webhook-id": delivery_id,
            "webhook-timestamp": seconds,
            "webhook-signature": "v1," + base64.b64encode(digest).decode(),
        }
    signature_name, delivery_name = _hex_scheme_headers(scheme, signature_header)
    headers = {signature_name: "sha256=" + hmac.digest(key, body, hashlib.sha256).hex()}
    if delivery_id is not None:
        headers[delivery_name] = delivery_id
    return headers


def _verify_standard_webhooks(
    *, keys: Sequence[bytes], headers: Mapping[str, str], body: bytes, now: datetime, tolerance_seconds: int
) -> Verification:
    delivery_id = _required(headers, "webhook-id", "delivery_id")
    _check_delivery_id("webhook-id", delivery_id)
    timestamp = _required(headers, "webhook-timestamp", "timestamp")
    if not _TIMESTAMP.fullmatch(timestamp):
        raise _malformed("timestamp", "the webhook-timestamp header must be integer Unix seconds")
    # Timedeltas rather than datetimes: a far-off timestamp must fail the check, not overflow `datetime`.
    if abs((now - _EPOCH) - timedelta(seconds=int(timestamp))) > timedelta(seconds=tolerance_seconds):
        raise SignatureError(
            status=401,
            reason="timestamp_out_of_tolerance",
            message=f"webhook-timestamp is more than {tolerance_seconds} s away from the receiver's clock",
        )
    entries = [entry for entry in _required(headers, "webhook-signature", "signature").split(" ") if entry]
    if not 1 <= len(entries) <= _MAX_SIGNATURE_ENTRIES:
        raise _malformed("signature", f"webhook-signature must hold 1 to {_MAX_SIGNATURE_ENTRIES} entries")
    signatures: list[bytes] = []
    for entry in entries:
        version, comma, encoded = entry.partition(",")
        if not comma:
            raise _malformed("signature", "webhook-signature entries must be <version>,<signature>")
        if version != "v1":
            continue
        if not _V1_SIGNATURE.fullmatch(encoded):
            raise _malformed("signature", "a webhook-signature v1 entry must be a base64 SHA-256 digest")
        signatures.append(base64.b64decode(encoded))
    # The timestamp is signed as sent, not re-rendered from the integer: it is the sender's bytes that count.
    if not _any_match(keys, f"{delivery_id}.{timestamp}.".encode() + body, signatures):
        raise _no_match("webhook-signature")
    return Verification(delivery_id=delivery_id, scheme=SignatureScheme.STANDARD_WEBHOOKS)


def scheme_headers(scheme: SignatureScheme, signature_header: str = DEFAULT_SIGNATURE_HEADER) -> tuple[str, ...]:
    """The headers (lower-case) a scheme reads a delivery's signature and delivery id from."""
    if scheme == SignatureScheme.STANDARD_WEBHOOKS:
        return ("webhook-id", "webhook-timestamp", "webhook-signature")
    return _hex_scheme_headers(scheme, signature_header)


def _hex_scheme_headers(scheme: SignatureScheme, signature_header: str) -> tuple[str, str]:
    """Names of the signature and delivery id headers of a ``sha256=<hex>`` scheme."""
    if scheme == SignatureScheme.GITHUB:
        return "x-hub-signature-256", "x-github-delivery"
    return signature_header.lower(), "x-delivery-id"


def _any_match(keys: Sequence[bytes], content: bytes, signatures: Sequence[bytes]) -> bool:
    # Every pair is compared, without stopping at a match, so timing does not tell which key or entry matched.
    matched = False
    for key in keys:
        expected = hmac.digest(key, content, hashlib.sha256)
        for signature in signatures:
            matched |= hmac.compare_digest(expected, signature)
    return matched


def _optional(headers: Mapping[str, str], name: str, kind: str) -> str | None:
    value = headers.get(name)
    if value is not None and len(value) > _MAX_HEADER_CHARS:
        raise _malformed(kind, f"the {name} header is longer than {_MAX_HEADER_CHARS} characters")
    return value


def _required(headers: Mapping[str, str], name: str, kind: str) -> str:
    value = _optional(headers, name, kind)
    if value is None:
        raise SignatureError(status=401, reason=f"missing_{kind}", message=f"the {name} header is missing")
    return value


def _check_delivery_id(name: str, value: str) -> None:
    if not _DELIVERY_ID.fullmatch(value):
        raise _malformed("delivery_id", f"the {name} header must be 1 to 256 visible ASCII characters")


def _malformed(kind: str, message: str) -> SignatureError:
    return SignatureError(status=400, reason=f"malformed_{kind}", message=message)


def _no_match(name: str) -> SignatureError:
    return SignatureError(status=401, reason="invalid_signature", message=f"no key matches the {name} header")
