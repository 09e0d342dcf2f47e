"""`kubectl stargraph convert cronjob/NAME --apply` against a real apiserver and operator: the CronTrigger is created
with the CronJob's behaviour and becomes Ready, the CronJob is suspended; `--dry-run` changes nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from kubernetes.client import ApiClient, BatchV1Api

from stargraph.cli import main
from tests.e2e.kube import get, is_ready, job_template, parse_time
from tests.support.controlplane import KubeCluster
from tests.support.operator import OperatorProcess, eventually

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("operator_survives")]


def create_cronjob(api: ApiClient, namespace: str, name: str) -> dict[str, Any]:
    template = job_template("exit", "0")
    template["metadata"] = {"labels": {"team": "a"}, "annotations": {"note": "kept"}}
    body = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name, "labels": {"app": name}, "annotations": {"owner": "ops"}},
        "spec": {
            "schedule": "@weekly",
            "timeZone": "Europe/Berlin",
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": 300,
            "successfulJobsHistoryLimit": 4,
            "failedJobsHistoryLimit": 2,
            "jobTemplate": template,
        },
    }
    BatchV1Api(api).create_namespaced_cron_job(namespace, body)
    return body


def suspended(api: ApiClient, namespace: str, name: str) -> bool:
    return bool(BatchV1Api(api).read_namespaced_cron_job(name, namespace).spec.suspend)


def convert(kubeconfig: Path, namespace: str, name: str, *flags: str) -> int:
    return main(["convert", f"cronjob/{name}", "-n", namespace, "--kubeconfig", str(kubeconfig), *flags])


def test_apply_creates_a_ready_crontrigger_and_suspends_the_cronjob(
    kube_api: ApiClient, namespace: str, control_plane: KubeCluster, operator: OperatorProcess
) -> None:
    source = create_cronjob(kube_api, namespace, "nightly")
    assert convert(control_plane.kubeconfig, namespace, "nightly", "--apply") == 0
    assert suspended(kube_api, namespace, "nightly")
    trigger = eventually(
        lambda: (found := get(kube_api, namespace, "crontriggers", "nightly")) and is_ready(found) and found,
        timeout=20,
        what="the CronTrigger Ready",
    )
    assert trigger["metadata"]["labels"] == {"app": "nightly"}
    assert trigger["metadata"]["annotations"] == {"owner": "ops"}
    spec = trigger["spec"]
    assert (spec["schedule"], spec["timeZone"], spec["suspend"]) == ("@weekly", "Europe/Berlin", False)
    assert (spec["concurrencyPolicy"], spec["startingDeadlineSeconds"]) == ("Forbid", 300)
    assert (spec["successfulRunsHistoryLimit"], spec["failedRunsHistoryLimit"]) == (4, 2)
    # The CRD keeps the Job template whole, its metadata included.
    assert spec["runTemplate"]["jobTemplate"]["metadata"] == source["spec"]["jobTemplate"]["metadata"]
    assert spec["runTemplate"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"] == ["exit", "0"]
    next_fire = parse_time(trigger["status"]["nextScheduleTime"]).astimezone(ZoneInfo("Europe/Berlin"))
    assert (next_fire.weekday(), next_fire.hour, next_fire.minute) == (6, 0, 0)  # @weekly: Sunday midnight


def test_dry_run_changes_nothing(kube_api: ApiClient, namespace: str, control_plane: KubeCluster) -> None:
    create_cronjob(kube_api, namespace, "nightly")
    assert convert(control_plane.kubeconfig, namespace, "nightly", "--apply", "--dry-run") == 0
    assert not suspended(kube_api, namespace, "nightly")
    assert get(kube_api, namespace, "crontriggers", "nightly") is None
