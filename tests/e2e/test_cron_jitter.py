"""spec.jitterSeconds end to end: a real operator process, the real apiserver, a kill -9 and a restart.

A jittered trigger's Runs carry the nominal fire (name, annotation, spec.scheduledFire) and were created after
nominal + the trigger's offset, judged by the creationTimestamp the apiserver recorded. Killed between a nominal
instant and its delayed one, a restarted operator creates that slot's Run once, at its delayed instant, and fires
no slot that already had its Run (its own metrics count no duplicate).
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from kubernetes.client import ApiClient, CustomObjectsApi

from stargraph.api.v1alpha1 import GROUP, VERSION
from stargraph.fires.keys import cron_idempotency_key
from stargraph.runs.naming import run_name
from stargraph.triggers.jitter import jitter_offset
from tests.e2e.conftest import Operators
from tests.e2e.kube import (
    ANNOTATION_FIRE,
    condition,
    create,
    cron_trigger,
    every,
    fire_of,
    fires,
    get,
    is_ready,
    list_runs,
    parse_time,
)
from tests.support.operator import OperatorProcess, eventually

pytestmark = pytest.mark.cluster

SCHEDULE, PERIOD = "*/10 * * * * *", 10
JITTER = 9
SLACK = timedelta(seconds=3)
"""How late after its delayed instant a Run may be created on a loaded machine; far less than a period."""


def now() -> datetime:
    return datetime.now(UTC)


def jittered_trigger(api: ApiClient, namespace: str) -> tuple[str, timedelta]:
    """A Ready CronTrigger whose offset is at least 2 s (so that a delay shows in whole-second timestamps).

    The offset follows from the uid the apiserver assigns; a trigger with a smaller one is deleted and another made.
    """
    for attempt in range(20):
        name = f"jittered-{attempt}"
        created = create(api, namespace, cron_trigger(name, SCHEDULE, jitterSeconds=JITTER))
        offset = jitter_offset(created["metadata"]["uid"], jitter_seconds=JITTER)
        if offset >= timedelta(seconds=2):
            return name, offset
        CustomObjectsApi(api).delete_namespaced_custom_object(GROUP, VERSION, namespace, "crontriggers", name)
    raise AssertionError("20 uids in a row had an offset under 2 s of 9 s")


def runs_of(api: ApiClient, namespace: str, name: str) -> list[dict[str, Any]]:
    return [run for run in list_runs(api, namespace) if run["metadata"]["labels"][f"{GROUP}/trigger"] == name]


def created(run: dict[str, Any]) -> datetime:
    return parse_time(run["metadata"]["creationTimestamp"])


def assert_nominal_and_delayed(run: dict[str, Any], *, namespace: str, name: str, offset: timedelta) -> None:
    fire = fire_of(run)
    assert fire.microsecond == 0 and fire.second % PERIOD == 0, f"not a nominal instant: {fire}"
    key = cron_idempotency_key(f"cron:{namespace}/{name}", fire)
    assert run["metadata"]["name"] == run_name(trigger_name=name, idempotency_key=key)
    assert run["metadata"]["annotations"][f"{GROUP}/idempotency-key"] == key
    assert parse_time(run["spec"]["scheduledFire"]) == fire
    # creationTimestamp is truncated to whole seconds: created at or after nominal + offset means its second is not
    # before that instant's second. The offset is >= 2 s, so this is well after the nominal instant.
    due = fire + offset
    assert created(run) >= due.replace(microsecond=0), f"{run['metadata']['name']} created {created(run)}, due {due}"
    assert created(run) <= due + SLACK, f"{run['metadata']['name']} created {created(run)}, due {due}"


def counters(process: OperatorProcess) -> dict[str, float]:
    """The operator's cron fires, Runs created, and dedupes at every stage, from its /metrics."""
    text = httpx.get(f"{process.url}/metrics", timeout=2).text

    def total(pattern: str) -> float:
        return sum(float(value) for value in re.findall(rf"^{pattern} (\S+)$", text, flags=re.MULTILINE))

    return {
        "fires": total(r'stargraph_trigger_fires_total\{source="cron"\}'),
        "created": total(r'stargraph_runs_created_total\{source="cron"\}'),
        "dedupes": total(r"stargraph_dedupes_total\{[^}]*\}"),
    }


def test_jittered_runs_keep_the_nominal_fire_and_a_restart_fires_no_slot_twice(
    operators: Operators, kube_api: ApiClient, namespace: str
) -> None:
    # Each operator watches this namespace only: its counters below are about this trigger alone.
    watch = ["--watch-namespace", namespace]
    first = operators.start("first", extra_args=watch)
    name, offset = jittered_trigger(kube_api, namespace)

    def ready() -> dict[str, Any] | None:
        obj = get(kube_api, namespace, "crontriggers", name)
        return obj if is_ready(obj) else None

    trigger = eventually(ready, timeout=10, what=f"crontrigger/{name} Ready")
    # status.nextScheduleTime is the nominal instant; Ready says how long after it the Run comes.
    next_time = parse_time(trigger["status"]["nextScheduleTime"])
    assert next_time.second % PERIOD == 0 and next_time.microsecond == 0, next_time
    assert f"{offset.total_seconds():g}s" in condition(trigger, "Ready")["message"]

    def at_least(count: int) -> list[dict[str, Any]] | None:
        runs = runs_of(kube_api, namespace, name)
        return runs if len(runs) >= count else None

    before = eventually(lambda: at_least(2), timeout=3 * PERIOD + JITTER, what="two Runs of the jittered trigger")
    for run in before:
        assert_nominal_and_delayed(run, namespace=namespace, name=name, offset=offset)

    # Kill the operator halfway between a nominal instant and its delayed one: that slot has no Run yet.
    slot = datetime.fromtimestamp((time.time() // PERIOD + 1) * PERIOD, UTC)
    time.sleep(max(0.0, (slot + offset / 2 - now()).total_seconds()))
    first.kill()
    killed_at = now()
    assert slot < killed_at < slot + offset
    assert slot not in fires(runs_of(kube_api, namespace, name)), "the slot's Run came before its delayed instant"
    time.sleep(1)

    second = operators.start("second", extra_args=watch)

    def two_slots_later() -> list[dict[str, Any]] | None:
        runs = runs_of(kube_api, namespace, name)
        return runs if any(fire_of(run) >= slot + timedelta(seconds=2 * PERIOD) for run in runs) else None

    after_restart = eventually(two_slots_later, timeout=4 * PERIOD + JITTER, what="Runs of two slots after the kill")
    # Every slot from the first Run on has exactly one Run (`fires` fails on a duplicate), none is missing, and
    # each was created after its delayed instant: the killed slot too, by the second process.
    nominal = fires(after_restart)
    assert nominal == every(PERIOD, nominal[0], nominal[-1]), [f.isoformat() for f in nominal]
    assert slot in nominal
    for run in after_restart:
        assert_nominal_and_delayed(run, namespace=namespace, name=name, offset=offset)
    by_fire = {fire_of(run): run for run in after_restart}
    assert created(by_fire[slot]) >= killed_at.replace(microsecond=0), "the killed slot's Run predates the kill"

    # The second process fired no slot that had its Run: each of its fires created one, none met an existing Run.
    seen = counters(second)
    assert seen["fires"] >= 3 and seen["fires"] == seen["created"] and seen["dedupes"] == 0, seen
    trigger = get(kube_api, namespace, "crontriggers", name)
    assert trigger is not None and not trigger["status"].get("missedSchedules"), trigger["status"]
    assert {run["metadata"]["annotations"][ANNOTATION_FIRE] for run in after_restart} == {
        f.strftime("%Y-%m-%dT%H:%M:%SZ") for f in nominal
    }
