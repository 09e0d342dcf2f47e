"""`kubectl stargraph convert`: every CronJob field onto its CronTrigger field, and the notes on what does not carry."""

from __future__ import annotations

import copy
import io
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from stargraph.api.v1alpha1 import CronTriggerSpec
from stargraph.cli import main
from stargraph.runs.jobs import build_job
from stargraph.triggers.cronjob import ConversionError, convert_cronjob

ARGS = "spec.jobTemplate.spec.template.spec.containers[0].args"

CRONJOB: dict[str, Any] = {
    "apiVersion": "batch/v1",
    "kind": "CronJob",
    "metadata": {
        "name": "nightly",
        "namespace": "team-a",
        "labels": {"app": "nightly"},
        "annotations": {"owner": "ops"},
        "uid": "1234",
        "resourceVersion": "99",
    },
    "spec": {
        "schedule": "0 3 * * MON-FRI",
        "timeZone": "Europe/Berlin",
        "suspend": True,
        "concurrencyPolicy": "Replace",
        "startingDeadlineSeconds": 120,
        "successfulJobsHistoryLimit": 5,
        "failedJobsHistoryLimit": 2,
        "jobTemplate": {
            "metadata": {"labels": {"team": "a"}, "annotations": {"note": "x"}},
            "spec": {
                "backoffLimit": 2,
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [{"name": "main", "image": "busybox", "args": ["backup", "$(HOME)"]}],
                    }
                },
            },
        },
    },
    "status": {"lastScheduleTime": "2026-01-01T03:00:00Z"},
}


def cronjob(**spec: Any) -> dict[str, Any]:
    manifest = copy.deepcopy(CRONJOB)
    manifest["spec"].update(spec)
    return manifest


def test_every_field_is_carried_over() -> None:
    conversion = convert_cronjob(CRONJOB)
    assert conversion.trigger == {
        "apiVersion": "stargraph.io/v1alpha1",
        "kind": "CronTrigger",
        "metadata": {
            "name": "nightly",
            "namespace": "team-a",
            "labels": {"app": "nightly"},
            "annotations": {"owner": "ops"},
        },
        "spec": {
            "schedule": "0 3 * * MON-FRI",
            "timeZone": "Europe/Berlin",
            "suspend": True,
            "concurrencyPolicy": "Replace",
            "startingDeadlineSeconds": 120,
            "successfulRunsHistoryLimit": 5,
            "failedRunsHistoryLimit": 2,
            "runTemplate": {"jobTemplate": CRONJOB["spec"]["jobTemplate"]},
        },
    }
    assert conversion.notes == []
    CronTriggerSpec.model_validate(conversion.trigger["spec"])


@pytest.mark.parametrize("policy", ["Allow", "Forbid", "Replace"])
def test_concurrency_policies_map_one_to_one(policy: str) -> None:
    assert convert_cronjob(cronjob(concurrencyPolicy=policy)).trigger["spec"]["concurrencyPolicy"] == policy


def test_unset_fields_stay_unset_so_the_defaults_match() -> None:
    manifest = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "a"}}
    manifest["spec"] = {"schedule": "@hourly", "timeZone": "UTC", "jobTemplate": {"spec": {}}}
    trigger = convert_cronjob(manifest).trigger
    assert trigger["metadata"] == {"name": "a"}
    assert trigger["spec"] == {"schedule": "@hourly", "timeZone": "UTC", "runTemplate": {"jobTemplate": {"spec": {}}}}
    # Both kinds keep 3 succeeded and 1 failed by default, and allow concurrent runs.
    defaults = CronTriggerSpec.model_validate(trigger["spec"])
    assert (defaults.successful_runs_history_limit, defaults.failed_runs_history_limit) == (3, 1)
    assert defaults.concurrency_policy == "Allow" and defaults.suspend is False


def test_unset_time_zone_is_noted() -> None:
    manifest = cronjob()
    del manifest["spec"]["timeZone"]
    conversion = convert_cronjob(manifest)
    assert "timeZone" not in conversion.trigger["spec"]
    assert [note.split(":")[0] for note in conversion.notes] == ["spec.timeZone"]


def test_a_time_zone_prefix_becomes_the_time_zone() -> None:
    manifest = cronjob(schedule="CRON_TZ=Asia/Tokyo 30 9 * * *")
    del manifest["spec"]["timeZone"]
    conversion = convert_cronjob(manifest)
    assert (conversion.trigger["spec"]["schedule"], conversion.trigger["spec"]["timeZone"]) == (
        "30 9 * * *",
        "Asia/Tokyo",
    )
    assert conversion.notes == ["spec.schedule: its time zone prefix is now spec.timeZone (Asia/Tokyo)"]
    with pytest.raises(
        ConversionError, match=re.escape("spec.schedule: has a TZ= prefix and spec.timeZone is set too")
    ):
        convert_cronjob(cronjob(schedule="TZ=UTC 30 9 * * *"))


def test_references_stargraph_would_replace_are_escaped_and_noted() -> None:
    args = ["run $(params.day) for $(trigger.name)", "$$(params.kept) $(HOME)"]
    manifest = cronjob()
    manifest["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"] = args
    conversion = convert_cronjob(manifest)
    assert [note.split(":")[0] for note in conversion.notes] == [f"{ARGS}[0]", f"{ARGS}[1]"]
    # The Job of a Run gets exactly what the CronJob's Jobs got.
    run = {
        "metadata": {"name": "nightly-1", "namespace": "team-a", "uid": "u"},
        "spec": {
            "jobTemplate": conversion.trigger["spec"]["runTemplate"]["jobTemplate"],
            "triggerRef": {"kind": "CronTrigger", "name": "nightly"},
            "scheduledFire": "2026-01-01T03:00:00Z",
        },
    }
    assert build_job(run)["spec"]["template"]["spec"]["containers"][0]["args"] == args


def test_kubectl_and_owner_metadata_is_dropped_and_noted() -> None:
    manifest = cronjob()
    manifest["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] = "{}"
    manifest["metadata"]["ownerReferences"] = [{"kind": "Thing", "name": "t"}]
    manifest["metadata"]["finalizers"] = ["example.com/keep"]
    manifest["spec"]["somethingNew"] = 1
    conversion = convert_cronjob(manifest)
    assert conversion.trigger["metadata"]["annotations"] == {"owner": "ops"}
    assert [note.split(":")[0] for note in conversion.notes] == [
        "spec.somethingNew",
        "metadata.annotations[kubectl.kubernetes.io/last-applied-configuration]",
        "metadata.ownerReferences",
        "metadata.finalizers",
    ]


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"schedule": "@every 1h"}, "spec.schedule: '@every 1h': @every is not supported"),
        ({"concurrencyPolicy": "Sometimes"}, "spec.concurrencyPolicy"),
        ({"startingDeadlineSeconds": -1}, "spec.startingDeadlineSeconds"),
        ({"jobTemplate": None}, "spec.jobTemplate"),
    ],
)
def test_what_cannot_be_converted_names_the_field(change: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConversionError, match=re.escape(fragment)):
        convert_cronjob(cronjob(**change))


def test_not_a_cronjob_is_refused() -> None:
    with pytest.raises(ConversionError, match="kind"):
        convert_cronjob({**CRONJOB, "kind": "Job"})


def test_cli_reads_files_lists_and_stdin(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    listed = {"apiVersion": "v1", "kind": "List", "items": [cronjob(), {**cronjob(), "metadata": {"name": "b"}}]}
    (tmp_path / "list.yaml").write_text(yaml.safe_dump(listed))
    monkeypatch.setattr("sys.stdin", io.StringIO(yaml.safe_dump(cronjob(schedule="@daily"))))
    assert main(["convert", str(tmp_path / "list.yaml"), "-"]) == 0
    out = capsys.readouterr()
    triggers = list(yaml.safe_load_all(out.out))
    assert [t["metadata"]["name"] for t in triggers] == ["nightly", "b", "nightly"]
    assert triggers[2]["spec"]["schedule"] == "@daily"
    assert out.err == ""


def test_cli_error_names_the_source_and_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "cj.yaml").write_text(yaml.safe_dump(cronjob(schedule="@every 5m")))
    with pytest.raises(SystemExit) as exited:
        main(["convert", str(tmp_path / "cj.yaml")])
    assert exited.value.code == 2
    assert f"{tmp_path / 'cj.yaml'}#0: spec.schedule: '@every 5m'" in capsys.readouterr().err


def test_cli_warnings_go_to_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = cronjob()
    del manifest["spec"]["timeZone"]
    (tmp_path / "cj.yaml").write_text(yaml.safe_dump(manifest))
    assert main(["convert", str(tmp_path / "cj.yaml")]) == 0
    out = capsys.readouterr()
    assert yaml.safe_load(out.out)["kind"] == "CronTrigger"
    assert out.err.startswith(f"stargraph: warning: {tmp_path / 'cj.yaml'}#0: spec.timeZone: unset")
