"""Idempotency keys are a stored format: fixed vectors pin every byte of the encoding."""

import hashlib
from datetime import UTC, datetime, timedelta, timezone

import pytest

from stargraph.fires import keys

FIRE = datetime(2026, 3, 29, 1, 30, tzinfo=UTC)


def test_cron_key_fixed_vector() -> None:
    expected = "e80e8694446a875f51675b4027977162ebc53d1c1de968816264c0ad79a91bad"
    explicit = hashlib.sha256(b"cron:default/nightly\x002026-03-29T01:30:00Z").hexdigest()
    assert keys.cron_idempotency_key("cron:default/nightly", FIRE) == explicit
    assert explicit == expected


def test_cron_key_same_instant_any_offset() -> None:
    berlin = FIRE.astimezone(timezone(timedelta(hours=2)))
    nightly = "cron:default/nightly"
    assert keys.cron_idempotency_key(nightly, berlin) == keys.cron_idempotency_key(nightly, FIRE)


def test_fire_time_format_keeps_microseconds_only_when_present() -> None:
    assert keys.format_fire_time(FIRE) == "2026-03-29T01:30:00Z"
    assert keys.format_fire_time(FIRE.replace(microsecond=1500)) == "2026-03-29T01:30:00.001500Z"
    with pytest.raises(ValueError, match="timezone-aware"):
        keys.format_fire_time(datetime(2026, 1, 1))


def test_webhook_key_fixed_vector() -> None:
    body = b'{"ref":"refs/heads/main"}'
    body_hash = keys.body_sha256(body)
    assert body_hash == hashlib.sha256(body).hexdigest()
    explicit = hashlib.sha256(b"webhook:ci/github-push\x00" + body_hash.encode()).hexdigest()
    assert keys.webhook_idempotency_key("webhook:ci/github-push", body_hash) == explicit
    assert explicit == "065d4880149cbfab20ce00599467f49e5546ef5a836ad3a89472e5b6688a6f7c"


def test_webhook_delivery_key_fixed_vector() -> None:
    explicit = hashlib.sha256(b"webhook:ci/github-push\x00delivery\x00msg_p5jXN8AQM9LWM0D4loKWxJek").hexdigest()
    assert keys.webhook_delivery_idempotency_key("webhook:ci/github-push", "msg_p5jXN8AQM9LWM0D4loKWxJek") == explicit
    assert explicit == "6dd1b3203b78d51e500014d409a3b69cd741653b574915f9fd4f3ef9430c1ab0"


def test_keys_differ_by_trigger_and_kind() -> None:
    body_hash = keys.body_sha256(b"x")
    distinct = {
        keys.cron_idempotency_key("cron:a/b", FIRE),
        keys.cron_idempotency_key("cron:a/c", FIRE),
        keys.webhook_idempotency_key("webhook:a/b", body_hash),
        keys.webhook_delivery_idempotency_key("webhook:a/b", body_hash),
    }
    assert len(distinct) == 4


@pytest.mark.parametrize("bad", ["", "cron:\x00x"])
def test_trigger_id_rejects_empty_and_nul(bad: str) -> None:
    with pytest.raises(ValueError):
        keys.cron_idempotency_key(bad, FIRE)


def test_webhook_key_rejects_non_digest() -> None:
    with pytest.raises(ValueError):
        keys.webhook_idempotency_key("webhook:a/b", "ABC")


def test_manual_key_is_canonical_uuid() -> None:
    canonical = "1b4e28ba-2fa1-11d2-883f-0016d3cca427"
    assert keys.manual_idempotency_key(" 1B4E28BA-2FA1-11D2-883F-0016D3CCA427 ") == canonical
    for bad in ["", "not-a-uuid", "1b4e28ba-2fa1-11d2-883f"]:
        with pytest.raises(ValueError, match="UUID"):
            keys.manual_idempotency_key(bad)
