"""The operator's process lifecycle end to end: SIGTERM, kill -9 and restart, deleting while it is down, two at once.

Each test starts the `stargraph operator` subprocesses it needs (fixture `operators`), so no operator shared by
another module interferes; every test works in a namespace of its own.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from kubernetes.client import ApiClient, BatchV1Api

from stargraph.api.v1alpha1 import GROUP
from stargraph.triggers.signatures import SignatureScheme, sign
from tests.e2e.conftest import Operators
from tests.e2e.kube import (
    create,
    cron_trigger,
    every,
    fire_of,
    fires,
    get,
    is_ready,
    job_template,
    jobs,
    list_runs,
    parse_time,
    put_secret,
    webhook_trigger,
)
from tests.support.operator import Kubectl, OperatorProcess, eventually

pytestmark = pytest.mark.cluster

JSON = {"content-type": "application/json"}


def now() -> datetime:
    return datetime.now(UTC)


def runs_by_trigger(api: ApiClient, namespace: str) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for run in list_runs(api, namespace):
        grouped[run["metadata"]["labels"][f"{GROUP}/trigger"]].append(run)
    return grouped


def run_job(run: dict[str, Any]) -> str | None:
    """The name of the Job a Run reports."""
    return ((run.get("status") or {}).get("jobRef") or {}).get("name")


def wait_ready(api: ApiClient, namespace: str, plural: str, name: str) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        obj = get(api, namespace, plural, name)
        return obj if is_ready(obj) else None

    return eventually(ready, timeout=10, what=f"{plural}/{name} Ready")


def test_sigterm_exits_zero_promptly(operators: Operators, kube_api: ApiClient, namespace: str) -> None:
    operator = operators.start()
    create(kube_api, namespace, cron_trigger("busy", "* * * * * *"))
    eventually(lambda: runs_by_trigger(kube_api, namespace)["busy"], timeout=5, what="a Run: the operator is busy")

    started = time.monotonic()
    code = operator.stop(timeout=10)
    elapsed = time.monotonic() - started
    assert code == 0, f"exit code {code} after SIGTERM"
    assert elapsed < 5, f"took {elapsed:.1f}s to exit after SIGTERM"


def test_deleting_triggers_does_not_wait_for_a_stopped_operator(
    operators: Operators, kubectl: Kubectl, kube_api: ApiClient, namespace: str
) -> None:
    operator = operators.start()
    create(kube_api, namespace, cron_trigger("orphaned", "* * * * * *"))
    put_secret(kube_api, namespace, "hook-secret", {"secret": "s"})
    create(kube_api, namespace, webhook_trigger("orphaned-hook", "hook-secret"))
    for plural, name in (("crontriggers", "orphaned"), ("webhooktriggers", "orphaned-hook")):
        obj = wait_ready(kube_api, namespace, plural, name)
        assert not obj["metadata"].get("finalizers"), obj["metadata"]
    assert operator.stop() == 0

    started = time.monotonic()
    kubectl.ok(
        "delete", "-n", namespace, "crontrigger/orphaned", "webhooktrigger/orphaned-hook", "--wait", "--timeout=10s"
    )
    elapsed = time.monotonic() - started
    assert elapsed < 5, f"kubectl delete took {elapsed:.1f}s with the operator down"
    assert get(kube_api, namespace, "crontriggers", "orphaned") is None
    assert get(kube_api, namespace, "webhooktriggers", "orphaned-hook") is None


def test_restart_after_kill_creates_each_missed_fire_inside_the_deadline_once(
    operators: Operators, kube_api: ApiClient, namespace: str
) -> None:
    first = operators.start("first")
    # `wide`: every fire of the outage lies inside its deadline. `narrow`: only the last 3 s before the restart do.
    for name, deadline in (("wide", 60), ("narrow", 3)):
        create(
            kube_api,
            namespace,
            cron_trigger(name, "*/2 * * * * *", startingDeadlineSeconds=deadline, catchUp="All"),
        )
    eventually(
        lambda: all(runs_by_trigger(kube_api, namespace)[n] for n in ("wide", "narrow")),
        timeout=10,
        what="a Run of each trigger before the kill",
    )

    first.kill()
    killed_at = now()  # the process is gone: no Run for a later fire can come from it
    time.sleep(6)  # the outage: three slots of the schedule pass with no operator
    restarted_at = now()
    operators.start("second")

    def caught_up() -> dict[str, list[dict[str, Any]]] | None:
        runs = runs_by_trigger(kube_api, namespace)
        # A Run for a slot after the restart: a trigger's caught-up fires are created before it, oldest first.
        done = all(any(fire_of(r) >= restarted_at + timedelta(seconds=2) for r in runs[n]) for n in ("wide", "narrow"))
        return runs if done else None

    runs = eventually(caught_up, timeout=15, what="both triggers firing on schedule after the restart")

    # wide: every slot from the first Run to the newest has exactly one Run: the outage's fires were created once.
    wide = fires(runs["wide"])
    assert wide == every(2, wide[0], wide[-1]), [f.isoformat() for f in wide]
    outage = [f for f in wide if killed_at < f <= restarted_at]
    assert len(outage) >= 2, f"the outage should have missed slots: {outage}"

    # narrow: the restart caught up at some instant `caught`, after restarted_at and no later than the creation
    # of the first Run the second process made (creationTimestamp has whole seconds, hence +1 s).
    narrow = fires(runs["narrow"])
    created_by_second = [
        parse_time(r["metadata"]["creationTimestamp"])
        for r in runs["narrow"]
        if parse_time(r["metadata"]["creationTimestamp"]) >= restarted_at.replace(microsecond=0)
    ]
    caught_by = min(created_by_second) + timedelta(seconds=1)
    # Fires within the deadline of `caught` (certainly those after caught_by - 3 s) each have exactly one Run ...
    inside = [f for f in every(2, narrow[0], narrow[-1]) if f > caught_by - timedelta(seconds=3)]
    assert set(inside) <= set(narrow), f"missing: {sorted(set(inside) - set(narrow))}"
    # ... and fires older than the deadline at restart (certainly those <= restarted_at - 3 s) have none.
    too_old = [f for f in narrow if killed_at < f <= restarted_at - timedelta(seconds=3)]
    assert not too_old, f"Runs for fires past startingDeadlineSeconds: {too_old}"

    def missed_reported() -> bool:
        obj = get(kube_api, namespace, "crontriggers", "narrow")
        return obj is not None and (obj.get("status") or {}).get("missedSchedules", 0) >= 1

    eventually(missed_reported, timeout=5, what="narrow's status.missedSchedules counting the skipped fires")
    wide_trigger = get(kube_api, namespace, "crontriggers", "wide")
    assert wide_trigger is not None
    assert not wide_trigger["status"].get("missedSchedules"), wide_trigger["status"]


def test_two_operators_never_duplicate_a_run(operators: Operators, kube_api: ApiClient, namespace: str) -> None:
    a, b = operators.start("a"), operators.start("b")
    create(kube_api, namespace, cron_trigger("contended", "* * * * * *"))
    put_secret(kube_api, namespace, "hook-secret", {"secret": "shared"})
    create(kube_api, namespace, webhook_trigger("hook", "hook-secret"))

    started = now()

    def eight_fires() -> list[dict[str, Any]] | None:
        runs = runs_by_trigger(kube_api, namespace)["contended"]
        return runs if len({fire_of(r) for r in runs if fire_of(r) > started}) >= 8 else None

    runs = eventually(eight_fires, timeout=15, what="8 fires with both operators running")
    scheduled = fires(runs)  # exactly one Run per scheduled-fire annotation
    assert scheduled == every(1, scheduled[0], scheduled[-1]), [f.isoformat() for f in scheduled]
    assert a.returncode is None and b.returncode is None

    # Both serve the webhook: a delivery to one and its redelivery to the other find the same Run.
    def armed(process: OperatorProcess) -> bool:
        response = httpx.post(f"{process.url}/v1/hooks/{namespace}/hook", content=b"{}", headers=JSON)
        return response.status_code == 401  # known trigger, unsigned delivery (404 until it is armed)

    eventually(lambda: armed(a) and armed(b), timeout=10, what="the webhook armed in both operators")
    for origin, other, payload in ((a, b, {"n": 1}), (b, a, {"n": 2})):
        body = json.dumps(payload).encode()
        headers = {**JSON, **sign(scheme=SignatureScheme.HMAC_SHA256, key=b"shared", body=body)}
        delivered = httpx.post(f"{origin.url}/v1/hooks/{namespace}/hook", content=body, headers=headers)
        redelivered = httpx.post(f"{other.url}/v1/hooks/{namespace}/hook", content=body, headers=headers)
        assert delivered.status_code == 201, delivered.text
        assert redelivered.status_code == 200, redelivered.text
        assert delivered.json()["run"] == redelivered.json()["run"]
    assert len(runs_by_trigger(kube_api, namespace)["hook"]) == 2


def test_a_restarted_operator_makes_no_second_job_and_catches_up_on_a_job_deleted_meanwhile(
    operators: Operators, kube_api: ApiClient, namespace: str
) -> None:
    first = operators.start("first")
    spec = {"runTemplate": {"jobTemplate": job_template()}, "failedRunsHistoryLimit": 100}
    create(kube_api, namespace, cron_trigger("jobs", "*/2 * * * * *", **spec))

    def reported_jobs() -> dict[str, str] | None:
        """Run name -> its Job's uid, once at least two Runs report their Job."""
        found = jobs(kube_api, namespace)
        reported = [r["metadata"]["name"] for r in list_runs(kube_api, namespace) if run_job(r) in found]
        return {name: found[name]["metadata"]["uid"] for name in reported} if len(reported) >= 2 else None

    before = eventually(reported_jobs, timeout=20, what="two Runs with their Jobs")
    first.kill()
    gone = sorted(before)[0]
    BatchV1Api(kube_api).delete_namespaced_job(gone, namespace, propagation_policy="Background")
    eventually(lambda: gone not in jobs(kube_api, namespace) or None, timeout=10, what="the Job deleted")
    operators.start("second")

    def caught_up() -> dict[str, Any] | None:
        run = get(kube_api, namespace, "runs", gone)
        return run if (run or {}).get("status", {}).get("phase") == "Failed" else None

    failed_run = eventually(caught_up, timeout=15, what="the Run whose Job went while no operator ran, Failed")
    assert failed_run["status"]["message"] == f"Job {gone} was deleted before it finished"
    eventually(lambda: len(list_runs(kube_api, namespace)) >= len(before) + 2 or None, timeout=15, what="more Runs")

    def one_job_per_run() -> dict[str, dict[str, Any]] | None:
        runs = {r["metadata"]["name"] for r in list_runs(kube_api, namespace)}
        found = jobs(kube_api, namespace)
        return found if set(found) == runs - {gone} else None

    after = eventually(one_job_per_run, timeout=15, what="exactly one Job for each Run but the failed one")
    for name, uid in before.items():
        if name != gone:
            assert after[name]["metadata"]["uid"] == uid, f"Job {name} was made again"
