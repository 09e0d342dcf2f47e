"""Which Runs history limits prune and which count as active (`stargraph.runs.history`), from index records."""

from __future__ import annotations

from datetime import UTC, datetime

from stargraph.runs import RunInfo, RunRef, active_run_names, beyond_history_limits, last_success


def run(name: str, phase: str, *, created: str, finished: str = "") -> RunInfo:
    ref = RunRef(name=name, namespace="ns", idempotency_key=name, trigger_id="cron:ns/t", payload_sha256="")
    return RunInfo(
        ref=ref, trigger=("ns", "crontrigger", "t"), phase=phase, created=created, finished=finished or created
    )


RUNS = [
    run("s1", "Succeeded", created="2026-01-01T00:00:01Z", finished="2026-01-01T00:05:00Z"),
    run("s2", "Succeeded", created="2026-01-01T00:00:02Z", finished="2026-01-01T00:03:00Z"),
    run("s3", "Succeeded", created="2026-01-01T00:00:03Z", finished="2026-01-01T00:04:00Z"),
    run("f1", "Failed", created="2026-01-01T00:00:04Z"),
    run("f2", "Failed", created="2026-01-01T00:00:05Z"),
    run("p1", "Pending", created="2026-01-01T00:00:06Z"),
    run("r1", "Running", created="2026-01-01T00:00:07Z"),
]


def test_the_oldest_finished_runs_beyond_each_limit_are_pruned_by_completion_time() -> None:
    doomed = beyond_history_limits(RUNS, succeeded=1, failed=1)
    # s2 finished first and s3 next, although s1 was created first: pruning follows completion, not creation.
    assert [r.ref.name for r in doomed] == ["s2", "s3", "f1"]


def test_limits_at_or_above_the_count_prune_nothing_and_zero_prunes_every_finished_run() -> None:
    assert beyond_history_limits(RUNS, succeeded=3, failed=5) == []
    assert {r.ref.name for r in beyond_history_limits(RUNS, succeeded=0, failed=0)} == {"s1", "s2", "s3", "f1", "f2"}


def test_active_runs_are_the_unfinished_ones_in_the_order_given() -> None:
    assert active_run_names(RUNS) == ["p1", "r1"]


def test_the_last_success_is_the_newest_completion_of_a_succeeded_run() -> None:
    assert last_success(RUNS) == datetime(2026, 1, 1, 0, 5, tzinfo=UTC)
    assert last_success([r for r in RUNS if r.phase != "Succeeded"]) is None
