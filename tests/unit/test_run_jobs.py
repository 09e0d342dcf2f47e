"""A Run's Job (`stargraph.runs.jobs`) and the Run status a Job implies (`stargraph.runs.job_status`)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from stargraph.api.v1alpha1 import RunTemplate
from stargraph.runs.job_status import run_status, status_conditions
from stargraph.runs.jobs import LABEL_RUN, InvalidJobTemplate, build_job, env_name, run_template_errors

TEMPLATE: dict[str, Any] = {
    "metadata": {"labels": {"team": "a"}, "annotations": {"note": "x"}},
    "spec": {
        "backoffLimit": 0,
        "template": {
            "spec": {
                "restartPolicy": "Never",
                "initContainers": [{"name": "init", "image": "i", "args": ["$(run.name)"]}],
                "containers": [
                    {
                        "name": "main",
                        "image": "m",
                        "command": ["run", "--env=$(params.env)", "--size=$(params.size)"],
                        "args": ["$(trigger.kind)/$(trigger.name)", "$$(params.env)", "$(HOME)", "$(other.thing)"],
                        "env": [
                            {"name": "WHEN", "value": "$(run.scheduledFire)"},
                            {"name": "STARGRAPH_RUN", "value": "mine"},
                        ],
                    }
                ],
            }
        },
    },
}


def run(template: dict[str, Any] = TEMPLATE, **params: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "nightly-0123456789abcdef", "namespace": "team-a", "uid": "run-uid"},
        "spec": {
            "triggerRef": {"kind": "CronTrigger", "name": "nightly"},
            "source": "cron",
            "params": {"env": "prod", "size": 3, **params},
            "scheduledFire": "2026-11-30T00:00:00Z",
            "jobTemplate": template,
        },
    }


def test_the_job_is_named_after_its_run_owned_by_it_and_labelled() -> None:
    job = build_job(run())
    metadata = job["metadata"]
    assert metadata["name"] == "nightly-0123456789abcdef" and metadata["namespace"] == "team-a"
    assert metadata["ownerReferences"] == [
        {"apiVersion": "stargraph.io/v1alpha1", "kind": "Run", "name": "nightly-0123456789abcdef", "uid": "run-uid",
         "controller": True}
    ]  # fmt: skip
    assert metadata["labels"] == {
        "team": "a",
        LABEL_RUN: "nightly-0123456789abcdef",
        "stargraph.io/trigger": "nightly",
        "stargraph.io/trigger-kind": "crontrigger",
    }
    assert metadata["annotations"] == {"note": "x"}
    assert job["spec"]["template"]["metadata"]["labels"][LABEL_RUN] == "nightly-0123456789abcdef"
    assert job["spec"]["backoffLimit"] == 0


def test_references_are_replaced_escapes_kept_and_foreign_ones_left_for_kubernetes() -> None:
    pod = build_job(run())["spec"]["template"]["spec"]
    main = pod["containers"][0]
    assert main["command"] == ["run", "--env=prod", "--size=3"]
    assert main["args"] == ["CronTrigger/nightly", "$(params.env)", "$(HOME)", "$(other.thing)"]
    assert pod["initContainers"][0]["args"] == ["nightly-0123456789abcdef"]
    user_env = main["env"][-2:]
    assert user_env == [{"name": "WHEN", "value": "2026-11-30T00:00:00Z"}, {"name": "STARGRAPH_RUN", "value": "mine"}]


def test_every_container_gets_the_run_and_its_params_as_environment_before_its_own() -> None:
    pod = build_job(run(extra={"a": [1, 2]}))["spec"]["template"]["spec"]
    for container in (*pod["initContainers"], *pod["containers"]):
        env = {variable["name"]: variable["value"] for variable in container["env"][:9]}
        assert env == {
            "STARGRAPH_RUN": "nightly-0123456789abcdef",
            "STARGRAPH_NAMESPACE": "team-a",
            "STARGRAPH_TRIGGER": "nightly",
            "STARGRAPH_TRIGGER_KIND": "CronTrigger",
            "STARGRAPH_SCHEDULED_FIRE": "2026-11-30T00:00:00Z",
            "STARGRAPH_PARAM_ENV": "prod",
            "STARGRAPH_PARAM_EXTRA": '{"a":[1,2]}',
            "STARGRAPH_PARAM_SIZE": "3",
        } | ({"WHEN": "2026-11-30T00:00:00Z"} if container["name"] == "main" else {})


def test_building_leaves_the_runs_template_unchanged() -> None:
    template = copy.deepcopy(TEMPLATE)
    build_job(run(template))
    assert template == TEMPLATE


def test_an_undeclared_parameter_is_named_with_its_field_when_the_trigger_is_applied() -> None:
    template = RunTemplate.model_validate({"params": {"env": "prod"}, "jobTemplate": TEMPLATE})
    problem = "; ".join(map(str, run_template_errors(template)))
    assert problem == (
        "spec.runTemplate.jobTemplate.spec.template.spec.containers[0].command[2]: $(params.size) names no parameter "
        "(known: env)"
    )
    declared = RunTemplate.model_validate({"params": {"env": 1, "size": 2}, "jobTemplate": TEMPLATE})
    assert run_template_errors(declared) == []
    assert run_template_errors(RunTemplate()) == []


def test_unknown_run_fields_and_clashing_parameter_names_are_refused() -> None:
    bad = {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i", "args": ["$(run.uid)"]}]}}}}
    errors = run_template_errors(RunTemplate.model_validate({"params": {"a-b": 1, "a_b": 2}, "jobTemplate": bad}))
    problem = "; ".join(map(str, errors))
    assert "containers[0].args[0]: $(run.uid) is not one of name, namespace, scheduledFire" in problem
    assert "parameters 'a-b' and 'a_b' would both be STARGRAPH_PARAM_A_B" in problem
    assert env_name("dry.run") == "STARGRAPH_PARAM_DRY_RUN"


def test_a_run_whose_template_refers_to_an_unknown_parameter_cannot_have_a_job() -> None:
    body = run()
    del body["spec"]["params"]["size"]
    with pytest.raises(InvalidJobTemplate, match=r"containers\[0\]\.command\[2\]: \$\(params\.size\)"):
        build_job(body)


def job(**status: Any) -> dict[str, Any]:
    return {"metadata": {"name": "j"}, "status": status}


def condition(type_: str, **extra: Any) -> dict[str, Any]:
    return {"type": type_, "status": "True", "lastTransitionTime": "2026-11-30T00:01:05Z", **extra}


@pytest.mark.parametrize(
    ("status", "phase", "reason"),
    [
        ({}, "Pending", "JobPending"),
        ({"active": 1, "startTime": "2026-11-30T00:00:01Z"}, "Pending", "JobPending"),
        ({"active": 1, "ready": 1}, "Running", "JobRunning"),
        ({"failed": 1, "active": 1}, "Running", "JobRunning"),
        ({"conditions": [condition("SuccessCriteriaMet")], "succeeded": 1}, "Running", "SuccessCriteriaMet"),
        ({"conditions": [condition("FailureTarget", message="backoff")]}, "Running", "FailureTarget"),
        ({"conditions": [condition("SuccessCriteriaMet"), condition("Complete")]}, "Succeeded", "JobComplete"),
        ({"conditions": [condition("FailureTarget"), condition("Failed", reason="BackoffLimitExceeded")]}, "Failed",
         "BackoffLimitExceeded"),
        ({"conditions": [{"type": "Complete", "status": "False"}], "ready": 0}, "Pending", "JobPending"),
    ],
)  # fmt: skip
def test_the_run_phase_is_terminal_only_with_the_jobs_terminal_condition(
    status: dict[str, Any], phase: str, reason: str
) -> None:
    observed = run_status(job(**status))
    assert (observed["phase"], observed["reason"]) == (phase, reason)
    assert observed["jobRef"] == {"name": "j"}


def test_a_finished_run_has_its_completion_time_and_duration() -> None:
    done = run_status(
        job(startTime="2026-11-30T00:00:00Z", completionTime="2026-11-30T01:02:03Z", conditions=[condition("Complete")])
    )
    assert (done["completionTime"], done["duration"]) == ("2026-11-30T01:02:03Z", "1h2m3s")
    failed = run_status(job(startTime="2026-11-30T00:00:00Z", conditions=[condition("Failed", message="exit 3")]))
    assert (failed["completionTime"], failed["duration"]) == ("2026-11-30T00:01:05Z", "1m5s")
    assert failed["message"] == "Job j failed: exit 3"


@pytest.mark.parametrize(
    ("phase", "true_condition"),
    [("Succeeded", "Ready"), ("Failed", "Stalled"), ("Running", "Reconciling"), ("Pending", "Reconciling")],
)
def test_kstatus_conditions_follow_the_phase(phase: str, true_condition: str) -> None:
    found = status_conditions(phase, reason="R", message="m", generation=2)
    assert [c["type"] for c in found if c["status"] == "True"] == [true_condition]
    assert {c["observedGeneration"] for c in found} == {2}


def test_a_runs_body_reaches_its_containers_as_stargraph_body() -> None:
    body = run()
    body["spec"]["body"] = '{"ref": "main"}'
    container = build_job(body)["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "STARGRAPH_BODY", "value": '{"ref": "main"}'} in container["env"]
    without = build_job(run())["spec"]["template"]["spec"]["containers"][0]["env"]
    assert all(variable["name"] != "STARGRAPH_BODY" for variable in without)
