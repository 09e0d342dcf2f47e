"""CronJobs and their converted CronTriggers side by side for about two minutes on the real control plane: the Jobs
of each pair are for the same nominal instants, one for one.

kube-controller-manager's CronJob controller marks each Job with its nominal instant (annotation
`batch.kubernetes.io/cronjob-scheduled-timestamp`); a Run's Job carries it in `STARGRAPH_SCHEDULED_FIRE`. The Jobs
need not run for this (concurrencyPolicy Allow, nothing waits on them), so their Pods are left unscheduled.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kubernetes.client import ApiClient, BatchV1Api

from stargraph.triggers.cronjob import convert_cronjob
from tests.e2e.kube import create, job_template, parse_time
from tests.support.operator import OperatorProcess

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("operator_survives")]

# Schedules that fire within two minutes, written in the forms a CronJob allows.
SCHEDULES = {
    "every-minute": "* * * * *",
    "every-second-minute": "*/2 * * * *",
    "odd-minutes": "1-59/2 * * * *",
    "names-and-question-mark": "* * ? jan-DEC SUN-sat",
    "stepped-day-fields": "* * */1 * */1",
}
CRONJOB_FIRE = "batch.kubernetes.io/cronjob-scheduled-timestamp"


def cronjob(name: str, schedule: str) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name},
        "spec": {"schedule": schedule, "timeZone": "UTC", "jobTemplate": job_template("exit", "0")},
    }


def nominal_instants(api: ApiClient, namespace: str) -> dict[tuple[str, str], list[datetime]]:
    """The nominal instant of every Job in `namespace`, by (kind of its source, name of its source)."""
    found: dict[tuple[str, str], list[datetime]] = {}
    for job in BatchV1Api(api).list_namespaced_job(namespace).items:
        owner = job.metadata.owner_references[0]
        if owner.kind == "CronJob":
            key, fire = ("CronJob", owner.name), job.metadata.annotations[CRONJOB_FIRE]
        else:
            env = {var.name: var.value for var in job.spec.template.spec.containers[0].env}
            key, fire = ("CronTrigger", env["STARGRAPH_TRIGGER"]), env["STARGRAPH_SCHEDULED_FIRE"]
        found.setdefault(key, []).append(parse_time(fire).astimezone(UTC))
    return {key: sorted(instants) for key, instants in found.items()}


def test_cronjobs_and_converted_crontriggers_fire_the_same_instants(
    kube_api: ApiClient, namespace: str, operator: OperatorProcess
) -> None:
    # Start well clear of a minute boundary, so both sides are created before the same first fire.
    while not 5 <= datetime.now(UTC).second <= 40:
        time.sleep(0.5)
    batch = BatchV1Api(kube_api)
    for name, schedule in SCHEDULES.items():
        manifest = cronjob(name, schedule)
        batch.create_namespaced_cron_job(namespace, manifest)
        create(kube_api, namespace, convert_cronjob(manifest).trigger)
    started = datetime.now(UTC)
    window_end = started.replace(second=0, microsecond=0) + timedelta(minutes=2)
    # kube-controller-manager creates a CronJob's Job within seconds of its instant; give both sides 20.
    time.sleep((window_end - datetime.now(UTC)).total_seconds() + 20)

    instants = nominal_instants(kube_api, namespace)
    for name in SCHEDULES:
        cronjob_fires = [fire for fire in instants.get(("CronJob", name), []) if fire <= window_end]
        trigger_fires = [fire for fire in instants.get(("CronTrigger", name), []) if fire <= window_end]
        assert cronjob_fires, f"{name}: the CronJob made no Job in two minutes"
        assert trigger_fires == cronjob_fires, name
