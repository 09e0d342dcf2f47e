"""Backfill's pure parts: which fires a range covers (ends, time zones, DST, the creation cut-off), the field checks,
and the bookkeeping of a Backfill's Runs. The operator and the CLI are tested end to end in tests/e2e/test_backfill.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from stargraph.api.v1alpha1 import BackfillSpec, CronTriggerSpec
from stargraph.controller.backfill_controller import BackfillController
from stargraph.controller.backfill_runs import LABEL_BACKFILL, BackfillRuns
from stargraph.controller.status_writer import StatusWriter
from stargraph.models import FieldError
from stargraph.runs import RunInfo, RunRef
from stargraph.triggers.backfill import COUNT_LIMIT, backfill_slots, plan_backfill, spec_errors
from stargraph.triggers.cron_schedule import CronSchedule, fire_times

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def spec(start: datetime, end: datetime, **fields: Any) -> BackfillSpec:
    return BackfillSpec.model_validate(
        {"triggerRef": {"name": "nightly"}, "from": start.isoformat(), "to": end.isoformat(), **fields}
    )


def trigger(schedule: str, time_zone: str = "UTC") -> CronTriggerSpec:
    return CronTriggerSpec(schedule=schedule, time_zone=time_zone)


def slots(schedule: str, start: datetime, end: datetime, time_zone: str = "UTC", **fields: Any) -> list[datetime]:
    plan = plan_backfill(spec(start, end, **fields), trigger=trigger(schedule, time_zone), created=NOW)
    assert plan.errors == []
    return plan.slots


# --- the fires of a range -------------------------------------------------------------------------------------------


def test_both_ends_of_the_range_are_included() -> None:
    assert slots("0 * * * *", utc(2026, 1, 1, 0), utc(2026, 1, 1, 3)) == [utc(2026, 1, 1, h) for h in range(4)]


def test_a_range_between_fires_holds_only_the_fires_inside() -> None:
    inside = slots("0 * * * *", utc(2026, 1, 1, 0, 0, 0, 1), utc(2026, 1, 1, 2, 59, 59, 999999))
    assert inside == [utc(2026, 1, 1, 1), utc(2026, 1, 1, 2)]
    assert slots("0 * * * *", utc(2026, 1, 1, 0, 1), utc(2026, 1, 1, 0, 59)) == []


def test_a_range_of_one_instant_is_that_fire() -> None:
    assert slots("*/5 * * * *", utc(2026, 1, 1, 0, 10), utc(2026, 1, 1, 0, 10)) == [utc(2026, 1, 1, 0, 10)]


def test_the_fires_are_the_live_schedules() -> None:
    schedule = CronSchedule.parse("*/7 9-17 * * MON-FRI", "America/New_York")
    start, end = utc(2026, 3, 1), utc(2026, 3, 20)
    live = fire_times(schedule, start=start - timedelta(seconds=1), end=end, limit=10_000)
    assert backfill_slots(schedule, start=start, end=end, limit=10_000) == live
    assert len(live) > 1000


def test_the_trigger_time_zone_applies() -> None:
    berlin = slots("0 9 * * *", utc(2026, 1, 10), utc(2026, 1, 12), "Europe/Berlin")
    assert berlin == [utc(2026, 1, 10, 8), utc(2026, 1, 11, 8)]  # 09:00 CET


def test_daylight_saving_time_is_the_live_fires() -> None:
    # Spring forward in Berlin: 02:30 does not exist on 2026-03-29 and fires once after the gap (03:00 CEST).
    spring = slots("30 2 * * *", utc(2026, 3, 28), utc(2026, 3, 30), "Europe/Berlin")
    assert spring == [utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1, 0)]
    # Fall back: a fixed 02:30 fires once, at its first occurrence (CEST); a step schedule fires in both passes.
    fixed = slots("30 2 * * *", utc(2026, 10, 25), utc(2026, 10, 25, 3), "Europe/Berlin")
    assert fixed == [utc(2026, 10, 25, 0, 30)]
    stepped = slots("*/30 2 * * *", utc(2026, 10, 25), utc(2026, 10, 25, 3), "Europe/Berlin")
    assert stepped == [utc(2026, 10, 25, 0), utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1), utc(2026, 10, 25, 1, 30)]


def test_fires_after_the_backfills_creation_are_left_to_the_trigger() -> None:
    created = utc(2026, 1, 1, 2, 30)
    plan = plan_backfill(spec(utc(2026, 1, 1), utc(2026, 1, 2)), trigger=trigger("0 * * * *"), created=created)
    assert plan.slots == [utc(2026, 1, 1, h) for h in range(3)]


def test_max_runs_is_a_bound_on_the_fires_not_on_the_range() -> None:
    day = (utc(2026, 1, 1), utc(2026, 1, 1, 23))
    assert len(slots("0 * * * *", *day, maxRuns=24)) == 24
    plan = plan_backfill(spec(*day, maxRuns=23), trigger=trigger("0 * * * *"), created=NOW)
    assert plan.slots == []
    (error,) = plan.errors
    assert (error.field, error.reason) == ("spec.maxRuns", "TooManySlots")
    assert "holds 24 fires" in error.message and "maxRuns (23)" in error.message and "at most 10000" in error.message


def test_a_huge_range_is_counted_only_so_far() -> None:
    plan = plan_backfill(spec(utc(2026, 1, 1), utc(2026, 6, 1)), trigger=trigger("* * * * * *"), created=NOW)
    assert f"holds more than {COUNT_LIMIT} fires" in plan.errors[0].message


# --- refusals -------------------------------------------------------------------------------------------------------


def test_to_before_from_names_spec_to() -> None:
    reversed_range = spec(utc(2026, 1, 2), utc(2026, 1, 1))
    assert [(e.field, e.reason) for e in spec_errors(reversed_range)] == [("spec.to", "InvalidRange")]
    plan = plan_backfill(reversed_range, trigger=trigger("0 * * * *"), created=NOW)
    assert str(plan.errors[0]).startswith("spec.to: 2026-01-01T00:00:00+00:00 is before from")


def test_every_error_of_the_spec_is_reported_at_once() -> None:
    both = spec(utc(2026, 1, 2), utc(2026, 1, 1), triggerRef={"kind": "WebhookTrigger", "name": "push"})
    plan = plan_backfill(both, trigger=None, created=NOW)
    assert [e.field for e in plan.errors] == ["spec.to", "spec.triggerRef.kind"]
    assert "WebhookTrigger has no schedule to backfill" in plan.errors[1].message


def test_an_unknown_trigger_names_spec_trigger_ref_name() -> None:
    plan = plan_backfill(spec(utc(2026, 1, 1), utc(2026, 1, 2)), trigger=None, created=NOW)
    assert plan.errors == [
        FieldError(
            "spec.triggerRef.name",
            reason="TriggerNotFound",
            message="no CronTrigger named 'nightly' in this namespace; the backfill starts when one is created",
        )
    ]


def test_a_trigger_with_an_invalid_schedule_cannot_be_backfilled() -> None:
    plan = plan_backfill(spec(utc(2026, 1, 1), utc(2026, 1, 2)), trigger=trigger("0 9 * * *", "Mars/Base"), created=NOW)
    (error,) = plan.errors
    assert (error.field, error.reason) == ("spec.triggerRef.name", "InvalidTrigger")
    assert "spec.timeZone: unknown time zone 'Mars/Base'" in error.message


@pytest.mark.parametrize(
    ("fields", "named"),
    [({"maxRuns": 0}, "maxRuns"), ({"maxRuns": 10_001}, "maxRuns"), ({"parallelism": 0}, "parallelism")],
)
def test_bounds_are_the_models(fields: dict[str, Any], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        spec(utc(2026, 1, 1), utc(2026, 1, 2), **fields)


def test_a_time_without_an_offset_is_refused() -> None:
    with pytest.raises(ValueError, match="from"):
        BackfillSpec.model_validate({"triggerRef": {"name": "t"}, "from": "2026-01-01T00:00:00", "to": NOW})


# --- the Runs of a Backfill -----------------------------------------------------------------------------------------


def run(name: str, backfill: str | None, phase: str | None = None) -> dict[str, Any]:
    labels = {LABEL_BACKFILL: backfill} if backfill else {}
    return {
        "metadata": {"name": name, "namespace": "ns", "labels": labels},
        "status": {"phase": phase} if phase else {},
    }


def test_backfill_runs_counts_the_unfinished_runs_of_each_backfill() -> None:
    runs = BackfillRuns()
    runs.run_changed("ADDED", run("a", "bf"))
    runs.run_changed("ADDED", run("b", "bf", "Running"))
    runs.run_changed("ADDED", run("c", "other"))
    runs.run_changed("ADDED", run("d", None))
    assert runs.unfinished("ns", "bf") == 2 and runs.ours("ns", "bf", "a") and not runs.ours("ns", "bf", "c")
    runs.run_changed("MODIFIED", run("a", "bf", "Succeeded"))
    runs.run_changed("DELETED", run("b", "bf", "Running"))
    assert runs.unfinished("ns", "bf") == 0 and runs.ours("ns", "bf", "a") and not runs.ours("ns", "bf", "b")
    runs.created("ns", "bf", "e")
    runs.created("ns", "bf", "a")  # already known finished: the informer's word stands
    assert runs.unfinished("ns", "bf") == 1


def backfill_object(status: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {"name": "bf", "namespace": "ns", "uid": "u1", "generation": 1},
        "spec": {"triggerRef": {"name": "nightly"}, "from": "2026-11-01T00:00:00Z", "to": "2026-11-02T00:00:00Z"},
        "status": status,
    }


def run_info(name: str, fire: datetime) -> RunInfo:
    ref = RunRef(name=name, namespace="ns", idempotency_key=name, trigger_id="cron:ns/nightly", payload_sha256="")
    created = fire.strftime("%Y-%m-%dT%H:%M:%SZ")
    return RunInfo(
        ref=ref,
        trigger=("ns", "crontrigger", "nightly"),
        phase="Succeeded",
        created=created,
        finished=created,
        scheduled_fire=created,
    )


async def test_a_backfills_runs_after_the_progress_its_object_records_are_held_from_pruning() -> None:
    runs, released = BackfillRuns(), list[tuple[str, str]]()
    controller = BackfillController(
        api=cast(Any, None),
        scheduler=cast(Any, None),
        index=cast(Any, None),
        runs=runs,
        status=StatusWriter(cast(Any, None)),  # only told to forget the Backfill's pending status when it goes
        events=cast(Any, None),
        clock=cast(Any, None),
        runs_released=released.append,
        leading=False,
    )
    early, late, live = (
        run_info("early", utc(2026, 11, 1, 1)),
        run_info("late", utc(2026, 11, 1, 3)),
        run_info("live", utc(2026, 11, 1, 4)),
    )
    for name in ("early", "late"):
        runs.run_changed("ADDED", run(name, "bf", "Succeeded"))
    runs.run_changed("ADDED", run("live", None, "Succeeded"))

    await controller.reconcile("ADDED", backfill_object({"lastSlotTime": "2026-11-01T02:00:00Z"}))
    # A restart would resume after 02:00 and look for the 03:00 Run: it must still be there.
    assert (controller.holds(early), controller.holds(late), controller.holds(live)) == (False, True, False)

    await controller.reconcile("MODIFIED", backfill_object({"lastSlotTime": "2026-11-01T03:00:00Z"}))
    assert released == [("ns", "nightly")] and not controller.holds(late)

    await controller.reconcile("MODIFIED", backfill_object({"lastSlotTime": "2026-11-01T03:00:00Z"}))
    assert released == [("ns", "nightly")]  # nothing recorded changed: the trigger is not told again

    await controller.reconcile("MODIFIED", backfill_object({}))  # no progress recorded at all: all held
    assert controller.holds(early) and controller.holds(late)
    ready = {"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "True"}]}
    await controller.reconcile("MODIFIED", backfill_object(ready))  # done: nothing resumes it any more
    assert not controller.holds(early) and not controller.holds(late)
    await controller.reconcile("DELETED", backfill_object({}))
    assert released[-1] == ("ns", "nightly") and not controller.holds(early)
