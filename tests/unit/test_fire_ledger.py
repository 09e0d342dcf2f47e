"""The fire ledger (`status.recentFires`): its order, bound and entries, and how the cron reports fill it.

The reports are driven with fakes of their collaborators; what reaches the apiserver is proven in
tests/e2e/test_fire_ledger.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

from stargraph.api.v1alpha1 import CronTriggerSpec, CronTriggerStatus, FireOutcome
from stargraph.clock import ManualClock
from stargraph.controller.cron_reports import CronReports
from stargraph.controller.cron_state import CronTriggerState
from stargraph.controller.event_recorder import EventRecorder
from stargraph.controller.fire_ledger import FireLedger, fire_record
from stargraph.controller.status_writer import StatusWriter
from stargraph.k8s.events import ObjectRef
from stargraph.runs import PermanentSinkError, RunRef, SubmitResult
from stargraph.triggers.cron import CronTriggerPlugin
from stargraph.triggers.specs import CronSpec

T0 = datetime(2026, 12, 1, 2, 30, tzinfo=UTC)


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def created(fire: datetime, *, run: str = "r") -> dict[str, Any]:
    return fire_record(FireOutcome.CREATED, fire, now=fire + timedelta(milliseconds=40), run_name=run)


def times(ledger: FireLedger) -> list[str]:
    return [entry["scheduledTime"] for entry in ledger.status()]


# -- the reducer ---------------------------------------------------------------------------------------------------


def test_newest_fire_first_and_a_late_outcome_goes_in_its_place() -> None:
    ledger = FireLedger()
    for fire in (at(0), at(10), at(30)):
        ledger.add(fire, created(fire))
    ledger.add(at(20), created(at(20)))  # a catch-up fire created after a newer one
    assert times(ledger) == [
        "2026-12-01T02:30:30Z",
        "2026-12-01T02:30:20Z",
        "2026-12-01T02:30:10Z",
        "2026-12-01T02:30:00Z",
    ]


def test_only_the_newest_limit_fires_are_kept() -> None:
    ledger = FireLedger(limit=3)
    for second in range(5):
        ledger.add(at(second), created(at(second)))
    assert times(ledger) == ["2026-12-01T02:30:04Z", "2026-12-01T02:30:03Z", "2026-12-01T02:30:02Z"]
    ledger.add(at(-1), created(at(-1)))  # older than everything kept: dropped at once
    assert len(ledger.status()) == 3 and "2026-12-01T02:29:59Z" not in times(ledger)


def test_a_second_outcome_of_one_fire_replaces_the_first() -> None:
    ledger = FireLedger()
    ledger.add(at(0), fire_record(FireOutcome.SKIPPED, at(0), now=at(0), reason="ConcurrencyPolicy"))
    ledger.add(at(0), created(at(0), run="t-1"))
    [entry] = ledger.status()
    assert (entry["outcome"], entry["runName"]) == ("Created", "t-1")


def test_an_entry_has_the_delay_to_its_outcome_and_only_the_fields_that_apply() -> None:
    entry = fire_record(
        FireOutcome.MISSED, at(0), now=at(90) + timedelta(milliseconds=250), count=7, reason="StartingDeadlineExceeded"
    )
    assert entry == {
        "scheduledTime": "2026-12-01T02:30:00Z",
        "outcome": "Missed",
        "delayMilliseconds": 90250,
        "count": 7,
        "reason": "StartingDeadlineExceeded",
    }
    # A clock a little behind the fire's instant gives no negative delay.
    assert fire_record(FireOutcome.CREATED, at(0), now=at(-1))["delayMilliseconds"] == 0


def test_the_ledger_read_back_from_status_is_the_one_written_and_valid_for_the_crd_model() -> None:
    ledger = FireLedger()
    ledger.add(at(0), created(at(0)))
    ledger.add(at(5), fire_record(FireOutcome.FAILED, at(5), now=at(6), reason="RunNameConflict", message="held"))
    written = ledger.status()
    assert FireLedger.from_status(written).status() == written
    CronTriggerStatus.model_validate({"recentFires": written})


def test_unreadable_status_entries_are_dropped_and_the_rest_ordered() -> None:
    items = [
        created(at(0)),
        {"outcome": "Created"},
        {"scheduledTime": "yesterday", "outcome": "Created"},
        {"scheduledTime": "2026-12-01T02:30:00", "outcome": "Created"},  # no zone: not an instant
        "not an object",
        created(at(9)),
    ]
    assert times(FireLedger.from_status(items)) == ["2026-12-01T02:30:09Z", "2026-12-01T02:30:00Z"]
    assert FireLedger.from_status(None).status() == []
    assert FireLedger.from_status({"not": "a list"}).status() == []


# -- the reports fill it, in the status patch they write anyway -----------------------------------------------------


class Writes:
    def __init__(self) -> None:
        self.patches: list[dict[str, Any]] = []

    def update(self, *, plural: str, namespace: str, name: str, status: dict[str, Any]) -> None:
        self.patches.append(status)


class Events:
    def normal(self, ref: ObjectRef, reason: str, message: str) -> None: ...
    def warning(self, ref: ObjectRef, reason: str, message: str) -> None: ...


def reports(*, deadline: int | None = None) -> tuple[CronReports, Writes, ManualClock, CronSpec, CronTriggerState]:
    clock, writes = ManualClock(at(0)), Writes()
    spec = CronSpec(
        name="nightly",
        namespace="team-a",
        schedule="* * * * * *",
        starting_deadline_seconds=deadline,
        concurrency_policy="Forbid",
    )
    state = CronTriggerState(
        uid="u",
        generation=1,
        spec=CronTriggerSpec(schedule="* * * * * *"),
        ref=ObjectRef(api_version="stargraph.io/v1alpha1", kind="CronTrigger", name="nightly", namespace="team-a"),
        last_schedule_time=None,
        missed=0,
        last_missed=None,
        active=["nightly-1"],
    )
    observer = CronReports(
        plugin=CronTriggerPlugin(),
        status=cast(StatusWriter, writes),
        events=cast(EventRecorder, Events()),
        triggers={("team-a", "nightly"): state},
        clock=clock,
    )
    return observer, writes, clock, spec, state


def run_ref(name: str) -> RunRef:
    return RunRef(
        name=name, namespace="team-a", idempotency_key=name, trigger_id="cron:team-a/nightly", payload_sha256=""
    )


def test_each_outcome_is_one_status_patch_that_carries_the_whole_ledger() -> None:
    observer, writes, clock, spec, _ = reports(deadline=30)
    clock.jump(at(1) + timedelta(milliseconds=120))
    observer.fired(spec, at(1), SubmitResult(run=run_ref("nightly-1"), created=True))
    observer.fired(spec, at(2), SubmitResult(run=run_ref("nightly-2"), created=False))
    observer.skipped(spec, at(3))
    clock.jump(at(100))
    observer.missed(spec, count=40, latest=at(60))
    observer.failed(spec, at(4), PermanentSinkError("name held by another object", reason="run_name_conflict"))

    assert len(writes.patches) == 5  # one per outcome, the same as without the ledger (failed had none)
    fired = writes.patches[0]
    assert {"recentFires", "lastScheduleTime", "lastRunName"} <= fired.keys()
    missed = writes.patches[3]
    assert {"recentFires", "missedSchedules", "lastMissedScheduleTime"} <= missed.keys()
    ledger = writes.patches[-1]["recentFires"]
    assert [(e["scheduledTime"][-3:-1], e["outcome"]) for e in ledger] == [
        ("00", "Missed"),  # 02:31:00, the newest of the 40
        ("04", "Failed"),
        ("03", "Skipped"),
        ("02", "AlreadyExisted"),
        ("01", "Created"),
    ]
    by_outcome = {e["outcome"]: e for e in ledger}
    assert by_outcome["Created"]["runName"] == "nightly-1" and by_outcome["Created"]["delayMilliseconds"] == 120
    assert by_outcome["AlreadyExisted"]["runName"] == "nightly-2"
    assert by_outcome["Skipped"]["reason"] == "ConcurrencyPolicy" and "nightly-1" in by_outcome["Skipped"]["message"]
    assert by_outcome["Missed"]["count"] == 40 and by_outcome["Missed"]["reason"] == "StartingDeadlineExceeded"
    assert by_outcome["Failed"]["reason"] == "RunNameConflict" and "held" in by_outcome["Failed"]["message"]
    CronTriggerStatus.model_validate({"recentFires": ledger})


def test_fires_crowded_out_inside_the_deadline_are_missed_by_catch_up() -> None:
    observer, writes, clock, spec, _ = reports(deadline=300)
    clock.jump(at(10))
    observer.missed(spec, count=3, latest=at(8))
    [entry] = writes.patches[-1]["recentFires"]
    assert (entry["reason"], entry["count"]) == ("CatchUp", 3)


def test_without_a_deadline_a_miss_is_always_the_catch_up_policys() -> None:
    observer, writes, clock, spec, _ = reports()
    clock.jump(at(3600))
    observer.missed(spec, count=1, latest=at(0))
    assert writes.patches[-1]["recentFires"][0]["reason"] == "CatchUp"
