from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from stargraph.triggers import TriggerEvent

WHEN = datetime(2026, 1, 1, tzinfo=UTC)


def event(**overrides: object) -> TriggerEvent:
    fields: dict[str, object] = {"trigger_id": "cron:default/a", "scheduled_fire": WHEN, "idempotency_key": "k"}
    return TriggerEvent(**(fields | overrides))


def test_extra_fields_are_rejected() -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        event(run_name="x")


def test_scheduled_fire_is_normalised_to_utc() -> None:
    local = datetime(2026, 1, 1, 1, tzinfo=timezone(timedelta(hours=1)))
    assert event(scheduled_fire=local).scheduled_fire == WHEN
    assert event(scheduled_fire=local).scheduled_fire.tzinfo is UTC


def test_naive_scheduled_fire_is_rejected() -> None:
    with pytest.raises(ValidationError, match="timezone-aware"):
        event(scheduled_fire=datetime(2026, 1, 1))


@pytest.mark.parametrize(
    "payload",
    [{"x": object()}, {"x": float("nan")}, {"x": {1, 2}}, {"x": [float("inf")]}, {"x": 1 << 63}, {"x": {1: "a"}}],
)
def test_payload_must_be_json(payload: dict[str, object]) -> None:
    with pytest.raises(ValidationError, match="JSON-serialisable"):
        event(payload=payload)


@pytest.mark.parametrize("field", ["trigger_id", "idempotency_key"])
def test_identity_fields_reject_empty_and_nul(field: str) -> None:
    for bad in ["", "a\x00b"]:
        with pytest.raises(ValidationError):
            event(**{field: bad})


def test_events_are_immutable() -> None:
    with pytest.raises(ValidationError):
        event().trigger_id = "other"  # type: ignore[misc]
