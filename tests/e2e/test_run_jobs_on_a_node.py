"""Runs whose Jobs really run, on the test cluster's kubelet: their phases come back from real containers, and
concurrencyPolicy (Forbid, Replace) and the history limits act on them.

Every Job runs the project's test image (`exit CODE`, `sleep SECONDS [CODE]`) on the kubelet node; the order of
things is read from what the cluster recorded (creation and completion times, Events), not from when the test
happened to look.
"""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

import pytest
from kubernetes.client import ApiClient, CoreV1Api

from tests.e2e.kube import condition, create, cron_trigger, get, job_template, jobs, list_runs, parse_time, patch
from tests.support.images import TESTJOB_IMAGE
from tests.support.node import KUBELET_PLACEMENT, KubeletNode
from tests.support.operator import OperatorProcess, eventually

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("operator_survives", "kubelet_node")]

FINISHED = ("Succeeded", "Failed")


def running(*args: str) -> dict[str, Any]:
    """A jobTemplate running the test image with `args` on the kubelet node, once, without retries."""
    return job_template(*args, image=TESTJOB_IMAGE, terminationGracePeriodSeconds=2, **KUBELET_PLACEMENT)


def finished_runs(api: ApiClient, namespace: str, count: int) -> list[dict[str, Any]] | None:
    """The namespace's Runs, once at least `count` of them are finished."""
    runs = list_runs(api, namespace)
    done = [run for run in runs if (run.get("status") or {}).get("phase") in FINISHED]
    return runs if len(done) >= count else None


def when(run: dict[str, Any], field: str) -> datetime:
    return parse_time(run["status"][field])


def test_a_run_succeeds_or_fails_as_its_container_exits(
    kube_api: ApiClient, namespace: str, operator: OperatorProcess, kubelet_node: KubeletNode
) -> None:
    for name, args in (("works", ["sleep", "1"]), ("breaks", ["exit", "3"])):
        create(kube_api, namespace, cron_trigger(name, runTemplate={"jobTemplate": running(*args)}))

    def one_finished_of_each() -> dict[str, dict[str, Any]] | None:
        runs = finished_runs(kube_api, namespace, 1) or []
        done = {
            run["spec"]["triggerRef"]["name"]: run for run in runs if (run.get("status") or {}).get("phase") in FINISHED
        }
        return done if len(done) == 2 else None

    by_trigger = eventually(one_finished_of_each, timeout=40, what="a finished Run of each trigger")
    for name in ("works", "breaks"):
        patch(kube_api, namespace, "crontriggers", name, {"spec": {"suspend": True}})

    works = by_trigger["works"]["status"]
    assert works["phase"] == "Succeeded", works
    assert works["message"] == f"Job {works['jobRef']['name']} completed"
    assert when(by_trigger["works"], "startTime") <= when(by_trigger["works"], "completionTime")
    assert works["duration"].endswith("s")
    assert condition({"status": works}, "Ready")["status"] == "True"

    breaks = by_trigger["breaks"]["status"]
    assert breaks["phase"] == "Failed", breaks
    assert condition({"status": breaks}, "Stalled")["reason"] == "BackoffLimitExceeded"
    assert breaks["message"].startswith(f"Job {breaks['jobRef']['name']} failed")

    def reported() -> dict[str, Any] | None:
        trigger = get(kube_api, namespace, "crontriggers", "works")
        status = (trigger or {}).get("status") or {}
        return status if status.get("lastSuccessfulTime") else None

    status = eventually(reported, timeout=10, what="the trigger's lastSuccessfulTime")
    assert parse_time(status["lastSuccessfulTime"]) >= when(by_trigger["works"], "completionTime")


def test_forbid_skips_fires_while_a_run_is_unfinished(
    kube_api: ApiClient, namespace: str, operator: OperatorProcess
) -> None:
    spec = {"concurrencyPolicy": "Forbid", "runTemplate": {"jobTemplate": running("sleep", "5")}}
    create(kube_api, namespace, cron_trigger("forbid", "*/2 * * * * *", **spec))
    runs = eventually(lambda: finished_runs(kube_api, namespace, 2), timeout=60, what="two finished Runs")
    patch(kube_api, namespace, "crontriggers", "forbid", {"spec": {"suspend": True}})
    ordered = sorted(runs, key=lambda run: run["spec"]["scheduledFire"])
    # Each Run was created only once the one before it had finished (whole seconds on both sides).
    for earlier, later in itertools.pairwise(ordered):
        if (earlier.get("status") or {}).get("phase") in FINISHED:
            created = parse_time(later["metadata"]["creationTimestamp"])
            assert created >= when(earlier, "completionTime").replace(microsecond=0), (earlier, later)
    events = CoreV1Api(kube_api).list_namespaced_event(namespace, field_selector="involvedObject.name=forbid")
    assert any(event.reason == "Skipped" for event in events.items)


def test_replace_deletes_the_unfinished_run_and_its_job(
    kube_api: ApiClient, namespace: str, operator: OperatorProcess
) -> None:
    spec = {"concurrencyPolicy": "Replace", "runTemplate": {"jobTemplate": running("sleep", "60")}}
    create(kube_api, namespace, cron_trigger("replace", "*/2 * * * * *", **spec))

    def replaced() -> str | None:
        trigger = CoreV1Api(kube_api).list_namespaced_event(namespace, field_selector="involvedObject.name=replace")
        return next((e.message for e in trigger.items if e.reason == "Replaced"), None)

    message = eventually(replaced, timeout=30, what="a Replaced Event")
    patch(kube_api, namespace, "crontriggers", "replace", {"spec": {"suspend": True}})
    gone = message.rsplit(" ", 1)[-1]
    eventually(lambda: get(kube_api, namespace, "runs", gone) is None or None, timeout=15, what="the replaced Run")
    eventually(lambda: gone not in jobs(kube_api, namespace) or None, timeout=30, what="its Job collected")

    def one_active() -> list[dict[str, Any]] | None:
        runs = list_runs(kube_api, namespace)
        return runs if len(runs) == 1 else None

    (survivor,) = eventually(one_active, timeout=30, what="only the newest Run left")
    assert survivor["metadata"]["name"] != gone
    assert (survivor.get("status") or {}).get("phase") not in FINISHED


def test_history_limits_prune_finished_runs_and_their_jobs(
    kube_api: ApiClient, namespace: str, operator: OperatorProcess
) -> None:
    limits = {"successfulRunsHistoryLimit": 2, "failedRunsHistoryLimit": 1}
    for name, code in (("ok", "0"), ("ko", "1")):
        template = {"jobTemplate": running("exit", code)}
        create(kube_api, namespace, cron_trigger(name, "*/2 * * * * *", runTemplate=template, **limits))

    def pruning() -> bool:
        events = CoreV1Api(kube_api).list_namespaced_event(namespace, field_selector="involvedObject.kind=Run")
        created = {e.involved_object.name for e in events.items if e.reason == "JobCreated"}
        # At least 4 Runs of each trigger had their Jobs, and some of them are gone again.
        return len(created) >= 8 and bool(created - {run["metadata"]["name"] for run in list_runs(kube_api, namespace)})

    eventually(lambda: pruning() or None, timeout=60, what="Runs beyond the history limits deleted")
    for name in ("ok", "ko"):
        patch(kube_api, namespace, "crontriggers", name, {"spec": {"suspend": True}})

    def settled() -> dict[str, list[str]] | None:
        # Pruning follows each finished Run after a quiet second, so only the suspended state is a fixed point.
        runs = list_runs(kube_api, namespace)
        finished: dict[str, list[str]] = {"ok": [], "ko": []}
        for run in runs:
            if (run.get("status") or {}).get("phase") not in FINISHED:
                return None
            finished[run["spec"]["triggerRef"]["name"]].append(run["metadata"]["name"])
        return finished if len(finished["ok"]) <= 2 and len(finished["ko"]) <= 1 else None

    finished = eventually(settled, timeout=30, what="every Run finished and pruned to the limits")
    # Exactly the limits: pruning keeps that many, it does not delete everything finished.
    assert (len(finished["ok"]), len(finished["ko"])) == (2, 1), finished

    def jobs_follow_runs() -> bool:
        return set(jobs(kube_api, namespace)) <= {run["metadata"]["name"] for run in list_runs(kube_api, namespace)}

    # The garbage collector learns of CRDs installed after it started at its 30-s discovery resync, then retries
    # the Jobs whose owner it could not resolve with backoff: first in a session, this takes up to about a minute.
    eventually(lambda: jobs_follow_runs() or None, timeout=90, what="the pruned Runs' Jobs collected")
