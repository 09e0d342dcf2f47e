"""Runs with a jobTemplate, end to end: one Job per Run, owned by it, with the Run's parameters; a Job the apiserver
refuses, or one deleted by hand, fails its Run and nothing else; a template naming an unknown parameter stalls the
trigger when it is applied; a Run without a jobTemplate is its executor's, whose status reports the trigger shows.

These need no node: the Jobs' Pods never start here, so every Run stays Pending. Jobs that really run (phases,
Forbid, Replace, history limits) are in test_run_jobs_on_a_node.py.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from kubernetes.client import ApiClient, BatchV1Api, CoreV1Api, CustomObjectsApi

from stargraph.api.v1alpha1 import GROUP, VERSION
from stargraph.runs.jobs import LABEL_RUN
from stargraph.triggers.signatures import SignatureScheme, sign
from tests.e2e.kube import (
    condition,
    create,
    cron_trigger,
    get,
    is_ready,
    job_template,
    jobs,
    list_runs,
    patch,
    patch_status,
    put_secret,
    webhook_trigger,
)
from tests.support.operator import OperatorProcess, eventually, stays

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("operator_survives")]


def firing(api: ApiClient, namespace: str, name: str, *, runs: int, **spec: Any) -> list[dict[str, Any]]:
    """CronTrigger `name` every two seconds with `spec`, suspended once it has `runs` Runs; those Runs."""
    create(api, namespace, cron_trigger(name, **spec))
    eventually(lambda: len(list_runs(api, namespace)) >= runs or None, timeout=20, what=f"{runs} Runs")
    patch(api, namespace, "crontriggers", name, {"spec": {"suspend": True}})
    return list_runs(api, namespace)


def run_status(api: ApiClient, namespace: str, name: str) -> dict[str, Any]:
    run = get(api, namespace, "runs", name)
    return (run or {}).get("status") or {}


def failed(api: ApiClient, namespace: str, name: str) -> dict[str, Any] | None:
    """The Run's status once it is Failed."""
    status = run_status(api, namespace, name)
    return status if status.get("phase") == "Failed" else None


def test_each_run_has_exactly_one_job_owned_by_it_with_its_parameters(
    kube_api: ApiClient, namespace: str, operator: OperatorProcess
) -> None:
    template = {"params": {"env": "prod"}, "jobTemplate": job_template("--env=$(params.env)", "$(run.name)")}
    firing(kube_api, namespace, "nightly", runs=2, runTemplate=template)
    runs = {run["metadata"]["name"]: run for run in list_runs(kube_api, namespace)}
    eventually(lambda: set(jobs(kube_api, namespace)) == set(runs) or None, timeout=15, what="a Job for every Run")

    def one_job_per_run() -> None:
        assert set(jobs(kube_api, namespace)) == set(runs)

    stays(one_job_per_run, duration=3)
    for name, job in jobs(kube_api, namespace).items():
        run = runs[name]
        assert job["metadata"]["ownerReferences"] == [
            {"apiVersion": "stargraph.io/v1alpha1", "kind": "Run", "name": name, "uid": run["metadata"]["uid"],
             "controller": True}
        ]  # fmt: skip
        assert job["metadata"]["labels"][LABEL_RUN] == name
        assert job["metadata"]["labels"]["stargraph.io/trigger"] == "nightly"
        container = job["spec"]["template"]["spec"]["containers"][0]
        assert container["args"] == ["--env=prod", name]
        env = {variable["name"]: variable.get("value") for variable in container["env"]}
        assert env["STARGRAPH_RUN"] == name and env["STARGRAPH_PARAM_ENV"] == "prod"
        assert env["STARGRAPH_SCHEDULED_FIRE"] == run["spec"]["scheduledFire"]

        def reported(run_name: str = name) -> dict[str, Any] | None:
            status = run_status(kube_api, namespace, run_name)
            return status if status.get("jobRef") == {"name": run_name} else None

        status = eventually(reported, timeout=10, what=f"Run {name} reporting its Job")
        assert status["phase"] == "Pending"
        assert condition({"status": status}, "Reconciling")["status"] == "True"
        assert condition({"status": status}, "Ready")["status"] == "False"


def test_deleting_a_run_deletes_its_job(kube_api: ApiClient, namespace: str, operator: OperatorProcess) -> None:
    run = firing(kube_api, namespace, "once", runs=1, runTemplate={"jobTemplate": job_template()})[0]
    name = run["metadata"]["name"]
    eventually(lambda: name in jobs(kube_api, namespace) or None, timeout=15, what="the Run's Job")
    CustomObjectsApi(kube_api).delete_namespaced_custom_object(GROUP, VERSION, namespace, "runs", name)
    eventually(lambda: name not in jobs(kube_api, namespace) or None, timeout=30, what="the Job garbage-collected")


def test_a_job_the_apiserver_refuses_fails_its_run_and_the_trigger_keeps_firing(
    kube_api: ApiClient, namespace: str, operator: OperatorProcess
) -> None:
    # The CRD schema cannot say a container name must be a DNS label; the Job's validation does.
    refusing = {"jobTemplate": job_template(container="Bad_Name")}
    # Failed Runs are kept (the default history limit of 1 would prune all but the newest).
    runs = firing(kube_api, namespace, "refused", runs=2, runTemplate=refusing, failedRunsHistoryLimit=100)
    for run in runs:
        name = run["metadata"]["name"]
        status = eventually(lambda n=name: failed(kube_api, namespace, n), timeout=15, what=f"Run {name} Failed")
        assert condition({"status": status}, "Stalled")["reason"] == "JobRefused"
        assert f"the apiserver refused Job {name}" in status["message"] and "Bad_Name" in status["message"]
    assert jobs(kube_api, namespace) == {}
    events = CoreV1Api(kube_api).list_namespaced_event(namespace, field_selector="involvedObject.kind=Run")
    refused = [e for e in events.items if e.reason == "JobRefused"]
    assert {e.involved_object.name for e in refused} == {run["metadata"]["name"] for run in runs}
    assert all(e.type == "Warning" for e in refused)


def test_a_job_deleted_by_hand_fails_its_run(kube_api: ApiClient, namespace: str, operator: OperatorProcess) -> None:
    run = firing(kube_api, namespace, "handled", runs=1, runTemplate={"jobTemplate": job_template()})[0]
    name = run["metadata"]["name"]
    eventually(lambda: run_status(kube_api, namespace, name).get("jobRef") or None, timeout=15, what="the Job")
    BatchV1Api(kube_api).delete_namespaced_job(name, namespace, propagation_policy="Background")
    status = eventually(lambda: failed(kube_api, namespace, name), timeout=15, what="the Run Failed")
    assert condition({"status": status}, "Stalled")["reason"] == "JobDeleted"
    assert status["message"] == f"Job {name} was deleted before it finished"

    def not_made_again() -> None:
        assert name not in jobs(kube_api, namespace)

    stays(not_made_again, duration=3)


def test_an_undeclared_parameter_stalls_the_trigger_naming_the_field(
    kube_api: ApiClient, namespace: str, operator: OperatorProcess
) -> None:
    template = {"params": {"env": "prod"}, "jobTemplate": job_template("$(params.region)")}
    create(kube_api, namespace, cron_trigger("typo", runTemplate=template))
    stalled = eventually(
        lambda: (
            condition(get(kube_api, namespace, "crontriggers", "typo"), "Stalled").get("status") == "True"
            and get(kube_api, namespace, "crontriggers", "typo")
        ),
        timeout=15,
        what="the trigger Stalled",
    )
    found = condition(stalled, "Stalled")
    assert found["reason"] == "InvalidSpec"
    assert found["message"] == (
        "spec.runTemplate.jobTemplate.spec.template.spec.containers[0].args[0]: $(params.region) names no parameter "
        "(known: env)"
    )

    def no_runs() -> None:
        assert list_runs(kube_api, namespace) == []

    stays(no_runs, duration=3)


def test_a_webhook_with_pass_body_hands_the_delivery_to_its_runs_job(
    kube_api: ApiClient, namespace: str, operator: OperatorProcess
) -> None:
    put_secret(kube_api, namespace, "hook-key", {"secret": "k3y"})
    spec = {"passBody": True, "runTemplate": {"jobTemplate": job_template()}}
    create(kube_api, namespace, webhook_trigger("pushes", "hook-key", **spec))
    eventually(lambda: is_ready(get(kube_api, namespace, "webhooktriggers", "pushes")), timeout=10, what="Ready")
    body = json.dumps({"ref": "refs/heads/main", "pusher": "zoë"}).encode()
    headers = {**sign(scheme=SignatureScheme.HMAC_SHA256, key=b"k3y", body=body), "content-type": "application/json"}
    answer = httpx.post(f"{operator.url}/v1/hooks/{namespace}/pushes", content=body, headers=headers)
    assert answer.status_code == 201, answer.text
    name = answer.json()["run"]["name"]
    run = get(kube_api, namespace, "runs", name)
    assert run is not None and run["spec"]["body"] == body.decode()
    job = eventually(lambda: jobs(kube_api, namespace).get(name), timeout=15, what="the delivery's Job")
    env = {v["name"]: v.get("value") for v in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["STARGRAPH_BODY"] == body.decode()

    def listed() -> list[str] | None:
        status = (get(kube_api, namespace, "webhooktriggers", "pushes") or {}).get("status") or {}
        return [active["name"] for active in status.get("active") or ()] or None

    assert eventually(listed, timeout=10, what="the unfinished Run in the trigger's active list") == [name]


def test_runs_without_a_job_template_are_left_to_their_executor_whose_reports_the_trigger_shows(
    kube_api: ApiClient, namespace: str, operator: OperatorProcess
) -> None:
    run = firing(kube_api, namespace, "external", runs=1, runTemplate={"graph": "etl"})[0]
    name = run["metadata"]["name"]
    eventually(
        lambda: [a["name"] for a in get(kube_api, namespace, "crontriggers", "external")["status"].get("active", [])]
        == [name] or None,
        timeout=10,
        what="the unfinished Run in the trigger's active list",
    )  # fmt: skip
    # The executor reports through the status subresource, as the README's contract says.
    patch_status(kube_api, namespace, "runs", name, {"phase": "Running", "startTime": "2026-11-30T02:30:04Z"})
    done = {"phase": "Succeeded", "completionTime": "2026-11-30T02:31:10Z", "duration": "1m6s", "message": "ok"}
    patch_status(kube_api, namespace, "runs", name, done)

    def reported() -> dict[str, Any] | None:
        status = get(kube_api, namespace, "crontriggers", "external")["status"]
        return status if status.get("lastSuccessfulTime") and not status.get("active") else None

    status = eventually(reported, timeout=10, what="the trigger reporting the executor's success")
    assert status["lastSuccessfulTime"] == "2026-11-30T02:31:10Z"
    assert jobs(kube_api, namespace) == {}
    assert run_status(kube_api, namespace, name) == {**done, "startTime": "2026-11-30T02:30:04Z"}
