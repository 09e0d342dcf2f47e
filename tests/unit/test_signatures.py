"""Webhook signatures: published vectors, round trips, rotation, tampering, clock skew, hostile headers."""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stargraph.triggers.signatures import (
    SignatureError,
    SignatureScheme,
    Verification,
    parse_secret,
    sign,
    verify,
)

HMAC = SignatureScheme.HMAC_SHA256
GITHUB = SignatureScheme.GITHUB
STANDARD = SignatureScheme.STANDARD_WEBHOOKS
SCHEMES = list(SignatureScheme)

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
BODY = b'{"ref": "refs/heads/main", "after": "9f2c"}'
KEY = b"current-secret-of-32-bytes-long!"
OLD_KEY = b"previous-secret"
UNKNOWN_KEY = b"somebody-else's-secret"
DELIVERY_ID = "msg_2bXq1"

SIGNATURE_HEADER = {HMAC: "x-signature-256", GITHUB: "x-hub-signature-256", STANDARD: "webhook-signature"}
DELIVERY_HEADER = {HMAC: "x-delivery-id", GITHUB: "x-github-delivery", STANDARD: "webhook-id"}
HEADERS = {
    HMAC: ("x-signature-256", "x-delivery-id"),
    GITHUB: ("x-hub-signature-256", "x-github-delivery"),
    STANDARD: ("webhook-id", "webhook-timestamp", "webhook-signature"),
}
SIGNED_HEADERS = {HMAC: ("x-signature-256",), GITHUB: ("x-hub-signature-256",), STANDARD: HEADERS[STANDARD]}
# Well-formed digests that match nothing.
_HEX = "ab" * 32
_B64 = "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def _sign(scheme: SignatureScheme, *, key: bytes = KEY, body: bytes = BODY) -> dict[str, str]:
    return sign(scheme=scheme, key=key, body=body, timestamp=NOW, delivery_id=DELIVERY_ID)


def _verify(
    scheme: SignatureScheme,
    headers: Mapping[str, str],
    *,
    keys: Sequence[bytes] = (KEY,),
    body: bytes = BODY,
    now: datetime = NOW,
    tolerance_seconds: int = 300,
) -> Verification:
    return verify(scheme=scheme, keys=keys, headers=headers, body=body, now=now, tolerance_seconds=tolerance_seconds)


def _rejection(scheme: SignatureScheme, headers: Mapping[str, str], **options: Any) -> SignatureError:
    """The error `_verify` raises with these `options` (its keyword arguments)."""
    with pytest.raises(SignatureError) as info:
        _verify(scheme, headers, **options)
    return info.value


def _flip(data: bytes, bit: int) -> bytes:
    flipped = bytearray(data)
    flipped[bit // 8] ^= 1 << (bit % 8)
    return bytes(flipped)


def _decode_signature(scheme: SignatureScheme, value: str) -> bytes:
    return base64.b64decode(value.removeprefix("v1,")) if scheme == STANDARD else bytes.fromhex(value[7:])


def _encode_signature(scheme: SignatureScheme, digest: bytes) -> str:
    return "v1," + base64.b64encode(digest).decode() if scheme == STANDARD else "sha256=" + digest.hex()


# --- published known-answer vectors -------------------------------------------------------------------------


def test_github_documentation_vector() -> None:
    expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    key = parse_secret(GITHUB, "It's a Secret to Everybody")

    assert sign(scheme=GITHUB, key=key, body=b"Hello, World!") == {"x-hub-signature-256": expected}
    headers = {"x-hub-signature-256": expected, "x-github-delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958"}
    assert _verify(GITHUB, headers, keys=[key], body=b"Hello, World!") == Verification(
        delivery_id="72d3162e-cc78-11e3-81ab-4c9367dc0958", scheme=GITHUB
    )


def test_standard_webhooks_specification_vector() -> None:
    key = parse_secret(STANDARD, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    body = b'{"test": 2432232314}'
    sent_at = datetime.fromtimestamp(1614265330, UTC)
    msg_id = "msg_p5jXN8AQM9LWM0D4loKWxJek"
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": "1614265330",
        "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    }

    assert sign(scheme=STANDARD, key=key, body=body, timestamp=sent_at, delivery_id=msg_id) == headers
    verification = _verify(STANDARD, headers, keys=[key], body=body, now=sent_at)
    assert verification == Verification(delivery_id=msg_id, scheme=STANDARD)


# --- round trips and options --------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", SCHEMES)
def test_round_trip(scheme: SignatureScheme) -> None:
    assert _verify(scheme, _sign(scheme)) == Verification(delivery_id=DELIVERY_ID, scheme=scheme)


@pytest.mark.parametrize("scheme", [HMAC, GITHUB])
def test_delivery_id_is_optional_for_hex_schemes(scheme: SignatureScheme) -> None:
    headers = sign(scheme=scheme, key=KEY, body=BODY)

    assert list(headers) == [SIGNATURE_HEADER[scheme]]
    assert _verify(scheme, headers).delivery_id is None


def test_hmac_signature_header_is_configurable_and_case_insensitive() -> None:
    headers = sign(scheme=HMAC, key=KEY, body=BODY, signature_header="X-Acme-Signature")

    assert list(headers) == ["x-acme-signature"]
    verification = verify(
        scheme=HMAC, keys=[KEY], headers=headers, body=BODY, now=NOW, signature_header="X-Acme-Signature"
    )
    assert verification.scheme == HMAC
    assert _rejection(HMAC, headers).reason == "missing_signature"


@pytest.mark.parametrize("scheme", [HMAC, GITHUB])
def test_upper_case_hex_is_accepted(scheme: SignatureScheme) -> None:
    headers = _sign(scheme)
    name = SIGNATURE_HEADER[scheme]
    headers[name] = "sha256=" + headers[name].removeprefix("sha256=").upper()

    assert _verify(scheme, headers).delivery_id == DELIVERY_ID


def test_standard_webhooks_needs_timestamp_and_delivery_id_to_sign() -> None:
    with pytest.raises(ValueError, match="timestamp and a delivery id"):
        sign(scheme=STANDARD, key=KEY, body=BODY, delivery_id=DELIVERY_ID)
    with pytest.raises(ValueError, match="timestamp and a delivery id"):
        sign(scheme=STANDARD, key=KEY, body=BODY, timestamp=NOW)


# --- secrets ------------------------------------------------------------------------------------------------


def test_standard_webhooks_secret_prefix_is_optional_and_newline_dropped() -> None:
    expected = base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")

    assert parse_secret(STANDARD, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw") == expected
    assert parse_secret(STANDARD, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw") == expected
    assert parse_secret(STANDARD, b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n") == expected


@pytest.mark.parametrize("scheme", [HMAC, GITHUB])
def test_hex_scheme_secret_is_utf8_with_one_trailing_newline_dropped(scheme: SignatureScheme) -> None:
    assert parse_secret(scheme, "s3crét") == "s3crét".encode()
    assert parse_secret(scheme, "s3cret\n") == b"s3cret"
    assert parse_secret(scheme, b"s3cret\n\n") == b"s3cret\n"


@pytest.mark.parametrize(
    ("scheme", "raw"),
    [
        (STANDARD, "whsec_"),
        (STANDARD, "whsec_not base64!"),
        (STANDARD, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS"),  # padding missing
        (STANDARD, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n\n"),
        (STANDARD, b"whsec_\xff\xfe"),
        (HMAC, ""),
        (GITHUB, b"\n"),
    ],
)
def test_bad_secret_is_a_value_error(scheme: SignatureScheme, raw: str | bytes) -> None:
    with pytest.raises(ValueError, match="secret"):
        parse_secret(scheme, raw)


@settings(max_examples=100, deadline=None)
@given(scheme=st.sampled_from(SCHEMES), raw=st.text() | st.binary())
def test_any_secret_gives_a_key_or_a_value_error(scheme: SignatureScheme, raw: str | bytes) -> None:
    try:
        key = parse_secret(scheme, raw)
    except ValueError:
        return
    assert isinstance(key, bytes)
    assert key


# --- rotation and tampering ---------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", SCHEMES)
def test_rotation_accepts_either_live_key_and_nothing_else(scheme: SignatureScheme) -> None:
    keys = (OLD_KEY, KEY)

    assert _verify(scheme, _sign(scheme, key=OLD_KEY), keys=keys).delivery_id == DELIVERY_ID
    assert _verify(scheme, _sign(scheme, key=KEY), keys=keys).delivery_id == DELIVERY_ID
    rejection = _rejection(scheme, _sign(scheme, key=UNKNOWN_KEY), keys=keys)
    assert (rejection.status, rejection.reason) == (401, "invalid_signature")


@pytest.mark.parametrize("scheme", SCHEMES)
def test_no_keys_verifies_nothing(scheme: SignatureScheme) -> None:
    assert _rejection(scheme, _sign(scheme), keys=()).reason == "invalid_signature"


@pytest.mark.parametrize("scheme", SCHEMES)
def test_every_single_bit_flip_is_rejected(scheme: SignatureScheme) -> None:
    headers = _sign(scheme)
    name = SIGNATURE_HEADER[scheme]
    digest = _decode_signature(scheme, headers[name])
    tampered: list[tuple[dict[str, str], bytes, bytes]] = []  # (headers, body, key)
    tampered += [(headers, _flip(BODY, bit), KEY) for bit in range(len(BODY) * 8)]
    tampered += [(_sign(scheme, key=_flip(KEY, bit)), BODY, KEY) for bit in range(len(KEY) * 8)]
    tampered += [
        ({**headers, name: _encode_signature(scheme, _flip(digest, bit))}, BODY, KEY) for bit in range(len(digest) * 8)
    ]

    for tampered_headers, body, key in tampered:
        rejection = _rejection(scheme, tampered_headers, body=body, keys=[key])
        assert (rejection.status, rejection.reason) == (401, "invalid_signature")


def test_standard_webhooks_signs_the_id_and_timestamp() -> None:
    headers = _sign(STANDARD)

    assert _rejection(STANDARD, {**headers, "webhook-id": "msg_other"}).reason == "invalid_signature"
    # Same instant, different text: the signature covers the header as sent.
    padded = {**headers, "webhook-timestamp": "0" + headers["webhook-timestamp"]}
    assert _rejection(STANDARD, padded).reason == "invalid_signature"


# --- standard-webhooks entries and timestamps ---------------------------------------------------------------


def test_one_matching_entry_among_several_is_enough() -> None:
    good = _sign(STANDARD)["webhook-signature"]
    wrong = _sign(STANDARD, key=UNKNOWN_KEY)["webhook-signature"]
    headers = {**_sign(STANDARD), "webhook-signature": f"{wrong}  v1a,c2lnbmF0dXJl v2,anything  {good} "}

    assert _verify(STANDARD, headers).delivery_id == DELIVERY_ID


def test_entries_of_other_versions_only_are_invalid() -> None:
    headers = {**_sign(STANDARD), "webhook-signature": f"v1a,{_B64} v2,x"}
    rejection = _rejection(STANDARD, headers)

    assert (rejection.status, rejection.reason) == (401, "invalid_signature")


def test_entry_count_is_capped() -> None:
    good = _sign(STANDARD)["webhook-signature"]
    wrong = _sign(STANDARD, key=UNKNOWN_KEY)["webhook-signature"]

    ten = {**_sign(STANDARD), "webhook-signature": " ".join([wrong] * 9 + [good])}
    eleven = {**_sign(STANDARD), "webhook-signature": " ".join([wrong] * 10 + [good])}

    assert _verify(STANDARD, ten).delivery_id == DELIVERY_ID
    rejection = _rejection(STANDARD, eleven)
    assert (rejection.status, rejection.reason) == (400, "malformed_signature")


@pytest.mark.parametrize("tolerance", [1, 300])
@pytest.mark.parametrize("direction", [1, -1], ids=["sent-earlier", "sent-later"])
def test_timestamp_tolerance_boundary(tolerance: int, direction: int) -> None:
    headers = _sign(STANDARD)  # signed at NOW
    at_limit = NOW + direction * timedelta(seconds=tolerance)

    assert _verify(STANDARD, headers, now=at_limit, tolerance_seconds=tolerance).delivery_id == DELIVERY_ID
    for beyond in (timedelta(seconds=1), timedelta(microseconds=1)):
        now = at_limit + direction * beyond
        rejection = _rejection(STANDARD, headers, now=now, tolerance_seconds=tolerance)
        assert (rejection.status, rejection.reason) == (401, "timestamp_out_of_tolerance")


def test_far_off_timestamp_is_out_of_tolerance_not_an_overflow() -> None:
    headers = {**_sign(STANDARD), "webhook-timestamp": "999999999999"}

    assert _rejection(STANDARD, headers).reason == "timestamp_out_of_tolerance"


# --- missing and malformed headers --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scheme", "header", "reason"),
    [
        (HMAC, "x-signature-256", "missing_signature"),
        (GITHUB, "x-hub-signature-256", "missing_signature"),
        (STANDARD, "webhook-signature", "missing_signature"),
        (STANDARD, "webhook-timestamp", "missing_timestamp"),
        (STANDARD, "webhook-id", "missing_delivery_id"),
    ],
)
def test_missing_header_is_401(scheme: SignatureScheme, header: str, reason: str) -> None:
    headers = _sign(scheme)
    del headers[header]
    rejection = _rejection(scheme, headers)

    assert (rejection.status, rejection.reason) == (401, reason)
    assert header in rejection.message


def test_no_headers_at_all_is_401_for_every_scheme() -> None:
    for scheme in SCHEMES:
        assert _rejection(scheme, {}).status == 401


@pytest.mark.parametrize(
    ("scheme", "header", "value", "reason"),
    [
        (HMAC, "x-signature-256", "", "malformed_signature"),
        (HMAC, "x-signature-256", _HEX, "malformed_signature"),
        (HMAC, "x-signature-256", "sha1=" + _HEX, "malformed_signature"),
        (HMAC, "x-signature-256", "SHA256=" + _HEX, "malformed_signature"),
        (HMAC, "x-signature-256", "sha256=" + _HEX[:-1], "malformed_signature"),
        (HMAC, "x-signature-256", "sha256=" + _HEX + "00", "malformed_signature"),
        (HMAC, "x-signature-256", "sha256=" + _HEX[:-1] + "g", "malformed_signature"),
        (HMAC, "x-signature-256", "sha256=" + _HEX[:-1] + "٣", "malformed_signature"),  # a non-ASCII digit
        (HMAC, "x-signature-256", "sha256=" + _HEX + "\n", "malformed_signature"),
        (GITHUB, "x-hub-signature-256", "sha256=" + _HEX + ",sha256=" + _HEX, "malformed_signature"),
        (HMAC, "x-delivery-id", "", "malformed_delivery_id"),
        (GITHUB, "x-github-delivery", "a b", "malformed_delivery_id"),
        (GITHUB, "x-github-delivery", "x" * 257, "malformed_delivery_id"),
        (STANDARD, "webhook-id", "msg_ü", "malformed_delivery_id"),
        (STANDARD, "webhook-timestamp", "", "malformed_timestamp"),
        (STANDARD, "webhook-timestamp", "1714564800.5", "malformed_timestamp"),
        (STANDARD, "webhook-timestamp", "-1", "malformed_timestamp"),
        (STANDARD, "webhook-timestamp", " 1714564800", "malformed_timestamp"),
        (STANDARD, "webhook-timestamp", "1714564800000", "malformed_timestamp"),  # milliseconds
        (STANDARD, "webhook-timestamp", "2024-05-01T12:00:00Z", "malformed_timestamp"),
        (STANDARD, "webhook-signature", "", "malformed_signature"),
        (STANDARD, "webhook-signature", "   ", "malformed_signature"),
        (STANDARD, "webhook-signature", _B64, "malformed_signature"),
        (STANDARD, "webhook-signature", "v1," + _B64[:-1], "malformed_signature"),
        (STANDARD, "webhook-signature", "v1," + _B64.replace("+", "-"), "malformed_signature"),
        (STANDARD, "webhook-signature", "v1," + _B64 + "," + _B64, "malformed_signature"),
        (STANDARD, "webhook-signature", "v1," + "x" * 9000, "malformed_signature"),
    ],
)
def test_malformed_header_is_400(scheme: SignatureScheme, header: str, value: str, reason: str) -> None:
    rejection = _rejection(scheme, {**_sign(scheme), header: value})

    assert (rejection.status, rejection.reason) == (400, reason)


# --- hostile header values ----------------------------------------------------------------------------------

_HOSTILE_VALUES = st.one_of(
    st.text(),
    st.text(st.characters(exclude_categories=())),  # lone surrogates too
    st.binary().map(lambda raw: raw.decode("latin-1")),  # raw bytes as an ASGI server decodes them
    st.tuples(st.sampled_from(["a", "0", "v1,", " ", ",", "é", "\x00"]), st.integers(1, 20_000)).map(
        lambda piece_count: piece_count[0] * piece_count[1]
    ),
    st.lists(
        st.sampled_from([" ", "  ", ",", "=", "v1", "v1,", "v1a,", "v2,", "sha256=", _HEX, _B64, "\t", "1714564800"]),
        max_size=400,
    ).map("".join),
    st.integers().map(str),
)


@pytest.mark.parametrize("scheme", SCHEMES)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_hostile_headers_only_raise_signature_errors(scheme: SignatureScheme, data: st.DataObject) -> None:
    base = data.draw(st.sampled_from([_sign(scheme), {}]), label="base")
    overrides = data.draw(st.dictionaries(st.sampled_from(HEADERS[scheme]), _HOSTILE_VALUES, min_size=1))
    headers = {**base, **overrides}

    try:
        verification = _verify(scheme, headers)
    except SignatureError as exc:
        assert exc.status in {400, 401}
        assert exc.reason
        assert KEY.decode() not in exc.message
    else:
        # Success needs every signed header as the sender sent it; the hex schemes' delivery id is unsigned.
        assert all(headers.get(name) == base.get(name) for name in SIGNED_HEADERS[scheme])
        assert verification.delivery_id == headers.get(DELIVERY_HEADER[scheme])
