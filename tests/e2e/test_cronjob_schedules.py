"""Every schedule in the table, as a batch/v1 CronJob and as a CronTrigger, against the real apiserver.

Both are created server-side with `dryRun=All`: the apiserver runs CronJob's own validation and the CronTrigger
CRD's CEL rules, and nothing is stored. A CronTrigger's verdict also includes the operator's (the schedule parse
that stalls a trigger with InvalidSpec). Where a CronJob accepts a schedule the CronTrigger must accept it too, and
fire when cron semantics say: the same times as a plainly numeric equivalent.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes.client import ApiClient, BatchV1Api, CustomObjectsApi
from kubernetes.client.exceptions import ApiException

from stargraph.api.cron_syntax import TZ_MESSAGE
from stargraph.api.v1alpha1 import GROUP, VERSION
from stargraph.triggers.cron_schedule import CronSchedule, ScheduleError
from tests.e2e.kube import cron_trigger, job_template

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("crds")]

START = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Case:
    schedule: str
    cronjob: bool
    """Whether kube-apiserver accepts it for a CronJob (checked, so a wrong table fails)."""
    stargraph: bool | None = None
    """Whether a CronTrigger takes it, when that differs from a CronJob (stargraph's extensions)."""
    same_as: str | None = None
    """A plainly numeric schedule with the same fire times."""


TABLE = [
    Case("*/5 * * * *", cronjob=True, same_as="0,5,10,15,20,25,30,35,40,45,50,55 * * * *"),
    Case("@yearly", cronjob=True, same_as="0 0 1 1 *"),
    Case("@annually", cronjob=True, same_as="0 0 1 1 *"),
    Case("@monthly", cronjob=True, same_as="0 0 1 * *"),
    Case("@weekly", cronjob=True, same_as="0 0 * * 0"),
    Case("@daily", cronjob=True, same_as="0 0 * * *"),
    Case("@midnight", cronjob=True, same_as="0 0 * * *"),
    Case("@hourly", cronjob=True, same_as="0 * * * *"),
    Case("0 9 * JAN-MAR MON-FRI", cronjob=True, same_as="0 9 * 1-3 1-5"),
    Case("0 9 * jan,Jul sun,Sat", cronjob=True, same_as="0 9 * 1,7 0,6"),
    Case("30 6 1-10/3 * *", cronjob=True, same_as="30 6 1,4,7,10 * *"),
    Case("5/20 * * * *", cronjob=True, same_as="5,25,45 * * * *"),
    Case("0 0 ? * 1", cronjob=True, same_as="0 0 * * 1"),
    Case("*-5 0 * * *", cronjob=True, same_as="* 0 * * *"),
    Case("+5 07 * * *", cronjob=True, same_as="5 7 * * *"),
    # Day of month and day of week: a stepped star is no star, so either day matches.
    Case("0 0 */10 * 1", cronjob=True, same_as="0 0 1,11,21,31 * 1"),
    Case("0 0 13 * 5", cronjob=True),
    Case("0 0 */1 * 5", cronjob=True, same_as="0 0 * * 5"),
    Case("  0 12  * * *  ", cronjob=True, same_as="0 12 * * *"),
    Case("@every 1h", cronjob=True, stargraph=False),  # decided: refused (see stargraph.api.cron_syntax)
    Case("CRON_TZ=UTC 0 * * * *", cronjob=False),
    Case("TZ=Europe/Berlin 0 * * * *", cronjob=False),
    Case("@reboot", cronjob=False),
    Case("@Hourly", cronjob=False),
    Case("@hourly ", cronjob=False),
    Case("60 * * * *", cronjob=False),
    Case("*/0 * * * *", cronjob=False),
    Case("0 0 5-3 * *", cronjob=False),
    Case("0 0 * 13 *", cronjob=False),
    Case("0 0 * * mon-", cronjob=False),
    Case("0 0 * *", cronjob=False),
    Case("0 0 1 1 * 2030 x", cronjob=False),
    # stargraph's extensions: CronJob refuses them.
    Case("*/10 * * * * *", cronjob=False, stargraph=True),
    Case("0 0 * * 7", cronjob=False, stargraph=True, same_as="0 0 * * 0"),
    Case("0 0 L * *", cronjob=False, stargraph=True),
]


def cronjob(schedule: str) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "table"},
        "spec": {"schedule": schedule, "jobTemplate": job_template()},
    }


def _accepted(create: Any) -> tuple[bool, str]:
    try:
        create()
    except ApiException as exc:
        assert exc.status == 422, exc
        return False, str(exc.body)
    return True, ""


def cronjob_verdict(api: ApiClient, namespace: str, schedule: str) -> tuple[bool, str]:
    batch = BatchV1Api(api)
    return _accepted(lambda: batch.create_namespaced_cron_job(namespace, cronjob(schedule), dry_run="All"))


def crontrigger_verdict(api: ApiClient, namespace: str, schedule: str) -> tuple[bool, str]:
    custom = CustomObjectsApi(api)
    body = cron_trigger("table", schedule)
    accepted, message = _accepted(
        lambda: custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "crontriggers", body, dry_run="All")
    )
    try:
        CronSchedule.parse(schedule)
    except ScheduleError as exc:
        return False, f"{message} {exc}"
    return accepted, message


def first_fires(schedule: str, count: int = 40) -> Iterator[datetime]:
    fires = CronSchedule.parse(schedule).fires_after(START)
    return (next(fires) for _ in range(count))


@pytest.mark.parametrize("case", TABLE, ids=[repr(case.schedule) for case in TABLE])
def test_a_crontrigger_accepts_what_a_cronjob_accepts(kube_api: ApiClient, namespace: str, case: Case) -> None:
    cronjob_ok, cronjob_message = cronjob_verdict(kube_api, namespace, case.schedule)
    trigger_ok, trigger_message = crontrigger_verdict(kube_api, namespace, case.schedule)
    assert cronjob_ok == case.cronjob, cronjob_message
    expected = case.cronjob if case.stargraph is None else case.stargraph
    assert trigger_ok == expected, trigger_message
    if "TZ" in case.schedule:
        assert TZ_MESSAGE in cronjob_message and TZ_MESSAGE in trigger_message
    if case.same_as is not None:
        assert list(first_fires(case.schedule)) == list(first_fires(case.same_as))
