"""The operator end to end: `stargraph operator` as a subprocess against the real control plane, one for the module.

Every test works in a namespace of its own, creates its triggers as users do (kubectl or the API) and judges the
operator only by what it leaves in the cluster (Runs, status, garbage collection) and by its HTTP answers.
Schedules are seconds-level so each test needs a few seconds; waits are polls with bounded timeouts.
Tests that restart, kill or duplicate the operator are in test_operator_lifecycle.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kubernetes.client import (
    ApiClient,
    CustomObjectsApi,
)

from stargraph.api.v1alpha1 import GROUP, VERSION
from stargraph.fires.keys import (
    body_sha256,
    cron_idempotency_key,
    webhook_delivery_idempotency_key,
    webhook_idempotency_key,
)
from stargraph.runs.naming import run_name
from stargraph.triggers.signatures import SignatureScheme, sign
from tests.e2e.kube import (
    API_VERSION,
    added_runs,
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
    patch,
    patch_status,
    put_secret,
    runs_resource_version,
    webhook_trigger,
)
from tests.support.controlplane import KubeCluster
from tests.support.operator import Kubectl, OperatorProcess, eventually, stays
from tests.support.rbac import grant

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("operator_survives")]

SAMPLES = Path(__file__).resolve().parents[2] / "crds" / "samples"
JSON = {"content-type": "application/json"}


def now() -> datetime:
    return datetime.now(UTC)


def runs_of(api: ApiClient, namespace: str, trigger: str) -> list[dict[str, Any]]:
    return [r for r in list_runs(api, namespace) if r["metadata"]["labels"].get(f"{GROUP}/trigger") == trigger]


def wait_ready(api: ApiClient, namespace: str, plural: str, name: str, timeout: float = 10.0) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        obj = get(api, namespace, plural, name)
        return obj if is_ready(obj) else None

    return eventually(ready, timeout=timeout, what=f"{plural}/{name} Ready for its generation")


def wait_runs(api: ApiClient, namespace: str, trigger: str, count: int, timeout: float = 15.0) -> list[dict[str, Any]]:
    def enough() -> list[dict[str, Any]] | None:
        runs = runs_of(api, namespace, trigger)
        return runs if len(runs) >= count else None

    return eventually(enough, timeout=timeout, what=f"{count} Runs of {trigger}")


def names(runs: list[dict[str, Any]]) -> set[str]:
    return {run["metadata"]["name"] for run in runs}


def runs_besides(api: ApiClient, namespace: str, trigger: str, known: set[str]) -> list[dict[str, Any]] | None:
    """All Runs of `trigger` once there is one not in `known`, else None."""
    runs = runs_of(api, namespace, trigger)
    return runs if names(runs) - known else None


# -- samples -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sample", ["crontrigger.yaml", "crontrigger-nightly.yaml", "webhooktrigger.yaml"])
def test_sample_applied_with_kubectl_reconciles_to_ready(
    sample: str, operator: OperatorProcess, kubectl: Kubectl, kube_api: ApiClient, namespace: str
) -> None:
    docs = [doc for doc in yaml.safe_load_all((SAMPLES / sample).read_text()) if doc]
    for doc in docs:
        doc["metadata"]["namespace"] = namespace
    kubectl.ok("apply", "-f", "-", stdin=yaml.safe_dump_all(docs))

    triggers = [doc for doc in docs if doc["kind"] in ("CronTrigger", "WebhookTrigger")]
    assert triggers, f"{sample} holds no trigger"
    for doc in triggers:
        plural, name = f"{doc['kind'].lower()}s", doc["metadata"]["name"]
        obj = wait_ready(kube_api, namespace, plural, name)
        status = obj["status"]
        assert status["observedGeneration"] == obj["metadata"]["generation"]
        assert condition(obj, "Stalled")["status"] == "False"
        assert condition(obj, "Reconciling")["status"] == "False"
        assert not obj["metadata"].get("finalizers"), "triggers must not carry finalizers"
        if doc["kind"] == "WebhookTrigger":
            assert status["path"] == f"/v1/hooks/{namespace}/{name}"
            # The sample is a GitHub hook keyed on the delivery id: one Run per delivery, whatever the retries.
            secret = next(d for d in docs if d["kind"] == "Secret")["stringData"]["secret"]
            body = b'{"ref": "refs/heads/main"}'
            signature = sign(scheme=SignatureScheme.GITHUB, key=secret.encode(), body=body, delivery_id="d1")
            headers = {**JSON, **signature, "X-GitHub-Event": "push"}
            first = httpx.post(operator.url + status["path"], content=body, headers=headers)
            again = httpx.post(operator.url + status["path"], content=body, headers=headers)
            assert (first.status_code, again.status_code) == (201, 200), (first.text, again.text)
            # It filters on push: GitHub's ping (sent when the hook is created) is acknowledged, no Run.
            ping_headers = {**headers, "X-GitHub-Event": "ping"}
            ping = httpx.post(operator.url + status["path"], content=body, headers=ping_headers)
            assert ping.status_code == 202, ping.text
            key = webhook_delivery_idempotency_key(f"webhook:{namespace}/{name}", "d1")
            assert (
                first.json()["run"]["name"]
                == again.json()["run"]["name"]
                == run_name(trigger_name=name, idempotency_key=key)
            )
        else:
            assert status["scheduleDescription"]
            assert parse_time(status["nextScheduleTime"]) > now() - timedelta(seconds=1)


# -- cron ----------------------------------------------------------------------------------------------------------


def test_cron_trigger_creates_one_run_per_fire(operator: OperatorProcess, kube_api: ApiClient, namespace: str) -> None:
    template = {
        "graph": "hello-world",
        "params": {"greeting": "hello", "retries": 3, "nested": {"list": [1, 2]}},
        "labels": {"team": "platform"},
        "annotations": {"example.com/owner": "e2e"},
    }
    trigger = create(kube_api, namespace, cron_trigger("tick", "*/2 * * * * *", runTemplate=template))
    uid, created_at = trigger["metadata"]["uid"], parse_time(trigger["metadata"]["creationTimestamp"])
    runs = wait_runs(kube_api, namespace, "tick", 3)

    trigger_id = f"cron:{namespace}/tick"
    scheduled = fires(runs)  # also: no two Runs for one fire
    for run in runs:
        fire = fire_of(run)
        key = cron_idempotency_key(trigger_id, fire)
        metadata = run["metadata"]
        assert metadata["name"] == run_name(trigger_name="tick", idempotency_key=key)
        assert metadata["annotations"][f"{GROUP}/idempotency-key"] == key
        assert metadata["annotations"][f"{GROUP}/trigger-id"] == trigger_id
        assert metadata["annotations"]["example.com/owner"] == "e2e"
        assert metadata["labels"] == {
            "team": "platform",
            f"{GROUP}/trigger": "tick",
            f"{GROUP}/trigger-kind": "crontrigger",
            f"{GROUP}/source": "cron",
        }
        [owner] = metadata["ownerReferences"]
        assert (owner["apiVersion"], owner["kind"], owner["name"], owner["uid"], owner.get("controller")) == (
            API_VERSION,
            "CronTrigger",
            "tick",
            uid,
            True,
        )
        assert run["spec"] == {
            "triggerRef": {"kind": "CronTrigger", "name": "tick"},
            "source": "cron",
            "graph": "hello-world",
            "params": template["params"],
            "scheduledFire": metadata["annotations"][f"{GROUP}/scheduled-fire"],
        }
        # On the schedule, never before its instant, never before the trigger existed.
        assert fire.microsecond == 0 and fire.second % 2 == 0, fire
        assert parse_time(metadata["creationTimestamp"]) >= fire
        assert fire >= created_at
    # The operator ran throughout, so the fires are consecutive slots of the schedule: none skipped, none twice.
    assert scheduled == every(2, scheduled[0], scheduled[-1])

    def status_follows() -> bool:
        obj = get(kube_api, namespace, "crontriggers", "tick")
        assert obj is not None
        status = obj["status"]
        by_name = {run["metadata"]["name"]: run for run in runs_of(kube_api, namespace, "tick")}
        assert status.get("lastRunName") in by_name, status
        last = parse_time(status["lastScheduleTime"])
        assert fire_of(by_name[status["lastRunName"]]) == last
        assert parse_time(status["nextScheduleTime"]) == last + timedelta(seconds=2), status
        assert not obj["metadata"].get("finalizers")
        return True

    eventually(status_follows, timeout=5, what="status.lastScheduleTime/lastRunName/next")


def test_schedule_edit_applies_without_restart_and_never_fires_the_slots_between(
    operator: OperatorProcess, kube_api: ApiClient, namespace: str
) -> None:
    create(kube_api, namespace, cron_trigger("edited", "*/2 * * * * *"))
    wait_runs(kube_api, namespace, "edited", 1)

    patch(kube_api, namespace, "crontriggers", "edited", {"spec": {"schedule": "0 0 1 1 *"}})
    new_year = datetime(now().year + 1, 1, 1, tzinfo=UTC)

    def yearly() -> bool:
        obj = get(kube_api, namespace, "crontriggers", "edited")
        assert obj is not None and obj["metadata"]["generation"] == 2
        return is_ready(obj) and (obj.get("status") or {}).get("nextScheduleTime") == f"{new_year:%Y-%m-%dT%H:%M:%SZ}"

    eventually(yearly, timeout=5, what="observedGeneration 2 with the yearly schedule")
    settled = now()
    before = names(runs_of(kube_api, namespace, "edited"))

    def no_new_runs() -> None:
        assert names(runs_of(kube_api, namespace, "edited")) == before

    stays(no_new_runs, duration=3.0)  # at least one slot of the old schedule passes

    resumed_at = now()
    patch(kube_api, namespace, "crontriggers", "edited", {"spec": {"schedule": "*/2 * * * * *"}})
    wait_ready(kube_api, namespace, "crontriggers", "edited")
    runs = eventually(
        lambda: runs_besides(kube_api, namespace, "edited", before), timeout=6, what="a Run after the edit back"
    )
    obj = get(kube_api, namespace, "crontriggers", "edited")
    assert obj is not None and obj["status"]["observedGeneration"] == 3
    for fire in fires(runs):
        # Slots between the edits (yearly in force) never get a Run, neither late nor by catch-up.
        assert fire <= settled or fire > resumed_at, f"a Run for {fire}, a slot while the yearly schedule applied"


def test_suspend_stops_runs_and_resume_starts_them_again(
    operator: OperatorProcess, kube_api: ApiClient, namespace: str
) -> None:
    create(kube_api, namespace, cron_trigger("paused", "* * * * * *"))
    wait_runs(kube_api, namespace, "paused", 1)

    patch(kube_api, namespace, "crontriggers", "paused", {"spec": {"suspend": True}})

    def suspended() -> bool:
        obj = get(kube_api, namespace, "crontriggers", "paused")
        assert obj is not None
        return (
            is_ready(obj)
            and obj["metadata"]["generation"] == 2
            and not (obj.get("status") or {}).get("nextScheduleTime")
        )

    eventually(suspended, timeout=5, what="suspended (generation 2, no nextScheduleTime)")
    before = names(runs_of(kube_api, namespace, "paused"))

    def no_new_runs() -> None:
        assert names(runs_of(kube_api, namespace, "paused")) == before

    stays(no_new_runs, duration=2.5)

    resumed_at = now()
    patch(kube_api, namespace, "crontriggers", "paused", {"spec": {"suspend": False}})
    runs = eventually(lambda: runs_besides(kube_api, namespace, "paused", before), timeout=5, what="a Run after resume")
    fires(runs)
    assert all(fire_of(r) > resumed_at - timedelta(seconds=1) for r in runs if r["metadata"]["name"] not in before)


# -- webhooks ------------------------------------------------------------------------------------------------------


def test_webhook_delivery_redelivery_rejections_and_secret_rotation(
    operator: OperatorProcess, kube_api: ApiClient, namespace: str
) -> None:
    put_secret(kube_api, namespace, "hook-secret", {"secret": "first-secret"})
    trigger = create(
        kube_api,
        namespace,
        webhook_trigger("hook", "hook-secret", runTemplate={"graph": "on-push", "params": {"branch": "main"}}),
    )
    status = wait_ready(kube_api, namespace, "webhooktriggers", "hook")["status"]
    assert status["path"] == f"/v1/hooks/{namespace}/hook"
    url = operator.url + status["path"]

    def deliver(body: bytes, key: bytes | None) -> httpx.Response:
        signature = sign(scheme=SignatureScheme.HMAC_SHA256, key=key, body=body) if key else {}
        return httpx.post(url, content=body, headers={**JSON, **signature})

    body = json.dumps({"ref": "refs/heads/main", "after": "abc123"}).encode()
    first = deliver(body, b"first-secret")
    assert first.status_code == 201, first.text
    assert first.json()["created"] is True
    name = first.json()["run"]["name"]
    expected = webhook_idempotency_key(f"webhook:{namespace}/hook", body_sha256(body))
    assert name == run_name(trigger_name="hook", idempotency_key=expected)
    assert first.json()["run"]["namespace"] == namespace
    # The answer comes only once the Run exists.
    run = get(kube_api, namespace, "runs", name)
    assert run is not None
    assert run["metadata"]["ownerReferences"][0]["uid"] == trigger["metadata"]["uid"]
    assert run["metadata"]["labels"][f"{GROUP}/source"] == "webhook"
    assert run["spec"]["graph"] == "on-push" and run["spec"]["params"] == {"branch": "main"}

    again = deliver(body, b"first-secret")
    assert again.status_code == 200, again.text
    assert again.json() == {"run": {"name": name, "namespace": namespace}, "created": False}

    unsigned = deliver(b'{"other": 1}', None)
    assert unsigned.status_code == 401, unsigned.text
    assert unsigned.json()["error"]["reason"]
    forged = deliver(b'{"other": 2}', b"not-the-secret")
    assert forged.status_code == 401, forged.text
    assert forged.json()["error"]["reason"]
    malformed = httpx.post(url, content=b"{}", headers={**JSON, "x-signature-256": "sha256=zz"})
    assert malformed.status_code == 400, malformed.text
    assert names(runs_of(kube_api, namespace, "hook")) == {name}

    def last_delivery_recorded() -> bool:
        obj = get(kube_api, namespace, "webhooktriggers", "hook")
        return obj is not None and (obj.get("status") or {}).get("lastRunName") == name

    eventually(last_delivery_recorded, timeout=5, what="status.lastRunName")

    # Rotation: the Secret now holds a new key; deliveries signed with it are accepted shortly after.
    put_secret(kube_api, namespace, "hook-secret", {"secret": "second-secret"})
    rotated_body = b'{"ref": "refs/heads/main", "after": "def456"}'

    def accepted_with_new_key() -> httpx.Response | None:
        response = deliver(rotated_body, b"second-secret")
        assert response.status_code in (201, 401), response.text
        return response if response.status_code == 201 else None

    rotated = eventually(accepted_with_new_key, timeout=10, interval=0.2, what="the rotated secret accepted")
    old_key = deliver(b'{"ref": "refs/heads/old"}', b"first-secret")
    assert old_key.status_code == 401, old_key.text
    assert names(runs_of(kube_api, namespace, "hook")) == {name, rotated.json()["run"]["name"]}


def test_webhook_event_filter_acknowledges_other_event_types_without_a_run(
    operator: OperatorProcess, kube_api: ApiClient, namespace: str
) -> None:
    put_secret(kube_api, namespace, "gh-secret", {"secret": "gh-key"})
    create(
        kube_api,
        namespace,
        webhook_trigger("pushes", "gh-secret", signature={"scheme": "github"}, events={"types": ["push"]}),
    )
    url = operator.url + wait_ready(kube_api, namespace, "webhooktriggers", "pushes")["status"]["path"]

    def deliver(event: str, body: bytes) -> httpx.Response:
        signature = sign(scheme=SignatureScheme.GITHUB, key=b"gh-key", body=body)
        return httpx.post(url, content=body, headers={**JSON, **signature, "X-GitHub-Event": event})

    ignored = deliver("issues", b'{"action": "opened"}')
    assert ignored.status_code == 202, ignored.text
    assert ignored.json()["ignored"]["reason"] == "event_type_filtered"
    pushed = deliver("push", b'{"ref": "refs/heads/main"}')
    assert pushed.status_code == 201, pushed.text
    assert names(runs_of(kube_api, namespace, "pushes")) == {pushed.json()["run"]["name"]}


# -- manual runs ---------------------------------------------------------------------------------------------------


def test_stargraph_run_with_an_idempotency_key_creates_one_run(
    operator: OperatorProcess, kube_api: ApiClient, namespace: str, control_plane: KubeCluster, tmp_path: Path
) -> None:
    trigger = create(
        kube_api, namespace, cron_trigger("nightly", "0 0 1 1 *", runTemplate={"graph": "g", "params": {"base": "1"}})
    )
    key = str(uuid.uuid4())

    def stargraph_run(*params: str) -> subprocess.CompletedProcess[str]:
        args = ["run", "crontrigger/nightly", "-n", namespace, "--idempotency-key", key]
        args += [arg for param in params for arg in ("--param", param)]
        args += ["--kubeconfig", str(control_plane.kubeconfig)]
        return subprocess.run(
            [sys.executable, "-m", "stargraph.cli", *args],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
            check=False,
        )

    first, second = stargraph_run("env=prod"), stargraph_run("env=prod")
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    name = run_name(trigger_name="nightly", idempotency_key=key)
    assert first.stdout.strip() == second.stdout.strip() == f"{namespace}/{name}"

    [run] = list_runs(kube_api, namespace)
    assert run["metadata"]["name"] == name
    assert run["metadata"]["annotations"][f"{GROUP}/idempotency-key"] == key
    assert run["metadata"]["ownerReferences"][0]["uid"] == trigger["metadata"]["uid"]
    assert run["spec"]["source"] == "manual"
    assert run["spec"]["params"] == {"base": "1", "env": "prod"}

    different = stargraph_run("env=staging")
    assert different.returncode == 1, (different.stdout, different.stderr)
    assert "--idempotency-key" in different.stderr
    assert names(list_runs(kube_api, namespace)) == {name}


def test_post_runs_needs_rbac_and_honours_the_idempotency_key(
    operator: OperatorProcess, kube_api: ApiClient, namespace: str, control_plane: KubeCluster
) -> None:
    create(kube_api, namespace, cron_trigger("api-target", "0 0 1 1 *", runTemplate={"params": {"base": "1"}}))
    kubeconfig = control_plane.service_account_kubeconfig(namespace=namespace, name="caller")
    token = yaml.safe_load(kubeconfig.read_text())["users"][0]["user"]["token"]
    key = str(uuid.uuid4())
    body = {"triggerRef": {"kind": "CronTrigger", "name": "api-target", "namespace": namespace}, "params": {"a": "1"}}

    def post(payload: dict[str, Any], *, bearer: str | None = token) -> httpx.Response:
        headers = {"Idempotency-Key": key, **({"Authorization": f"Bearer {bearer}"} if bearer else {})}
        return httpx.post(f"{operator.url}/v1/runs", json=payload, headers=headers)

    anonymous = post(body, bearer=None)
    assert anonymous.status_code == 401, anonymous.text
    forbidden = post(body)
    assert forbidden.status_code == 403, forbidden.text
    assert forbidden.headers["content-type"].startswith("application/json")
    error = forbidden.json()["error"]
    assert error["reason"] == "forbidden" and namespace in error["message"], error
    assert list_runs(kube_api, namespace) == []

    grant(
        kube_api, namespace, service_account="caller", role="run-creator", group=GROUP, resource="runs", verb="create"
    )

    def created() -> httpx.Response | None:
        response = post(body)
        assert response.status_code in (201, 403), response.text
        return response if response.status_code == 201 else None

    first = eventually(created, timeout=10, what="201 once the RoleBinding is in force")
    name = run_name(trigger_name="api-target", idempotency_key=key)
    assert first.json() == {"run": {"name": name, "namespace": namespace}, "created": True}

    again = post(body)
    assert again.status_code == 200, again.text
    assert again.json() == {"run": {"name": name, "namespace": namespace}, "created": False}

    changed = post({**body, "params": {"a": "2"}})
    assert changed.status_code == 422, changed.text
    assert changed.json()["error"]["reason"]

    [run] = list_runs(kube_api, namespace)
    assert run["metadata"]["name"] == name
    assert run["metadata"]["annotations"][f"{GROUP}/idempotency-key"] == key
    assert run["spec"]["params"] == {"base": "1", "a": "1"}


# -- bad input -----------------------------------------------------------------------------------------------------


def test_invalid_specs_stall_naming_the_field_and_leave_other_triggers_alone(
    operator: OperatorProcess, kube_api: ApiClient, namespace: str
) -> None:
    create(kube_api, namespace, cron_trigger("healthy", "* * * * * *"))
    # Both pass the CRD's validation (5 fields, a string) and fail only in the operator.
    create(kube_api, namespace, cron_trigger("bad-schedule", "61 * * * *"))
    create(kube_api, namespace, cron_trigger("bad-zone", "*/2 * * * * *", timeZone="Mars/Olympus"))
    create(kube_api, namespace, webhook_trigger("no-secret", "absent-secret"))
    put_secret(kube_api, namespace, "partial", {"other": "x"})
    create(kube_api, namespace, webhook_trigger("no-key", "partial"))

    expected = {
        ("crontriggers", "bad-schedule"): "spec.schedule",
        ("crontriggers", "bad-zone"): "spec.timeZone",
        ("webhooktriggers", "no-secret"): "spec.secretRef.name",
        ("webhooktriggers", "no-key"): "spec.secretRef.keys",
    }
    for (plural, name), field in expected.items():

        def stalled(plural: str = plural, name: str = name, field: str = field) -> bool:
            obj = get(kube_api, namespace, plural, name)
            assert obj is not None
            ready, stall = condition(obj, "Ready"), condition(obj, "Stalled")
            if obj.get("status", {}).get("observedGeneration") != obj["metadata"]["generation"]:
                return False
            assert ready.get("status") == "False", ready
            assert stall.get("status") == "True", stall
            assert field in ready["message"] and field in stall["message"], (field, ready, stall)
            return True

        eventually(stalled, timeout=10, what=f"{plural}/{name} Stalled naming {field}")
    for name in ("no-secret", "no-key"):
        obj = get(kube_api, namespace, "webhooktriggers", name)
        assert obj is not None and not obj["status"].get("path")
        response = httpx.post(f"{operator.url}/v1/hooks/{namespace}/{name}", content=b"{}", headers=JSON)
        assert response.status_code == 404, response.text

    # The valid trigger next to them keeps firing.
    stalled_at = now()
    eventually(
        lambda: len([r for r in runs_of(kube_api, namespace, "healthy") if fire_of(r) > stalled_at]) >= 2,
        timeout=6,
        what="two more Runs of the healthy trigger",
    )

    # Fixing what the webhook triggers refer to makes them Ready, without touching the triggers.
    put_secret(kube_api, namespace, "absent-secret", {"secret": "now-here"})
    put_secret(kube_api, namespace, "partial", {"other": "x", "secret": "found"})
    for name, secret in (("no-secret", b"now-here"), ("no-key", b"found")):
        obj = wait_ready(kube_api, namespace, "webhooktriggers", name)
        assert obj["metadata"]["generation"] == 1
        assert condition(obj, "Stalled")["status"] == "False"
        assert obj["status"]["path"] == f"/v1/hooks/{namespace}/{name}"
        body = b'{"fixed": true}'
        headers = {**JSON, **sign(scheme=SignatureScheme.HMAC_SHA256, key=secret, body=body)}
        response = httpx.post(operator.url + obj["status"]["path"], content=body, headers=headers)
        assert response.status_code == 201, response.text

    triggers = {r["metadata"]["labels"][f"{GROUP}/trigger"] for r in list_runs(kube_api, namespace)}
    assert triggers == {"healthy", "no-secret", "no-key"}, "a stalled cron trigger created Runs"


# -- concurrency policy and history --------------------------------------------------------------------------------


def test_forbid_skips_fires_while_a_run_is_active(
    operator: OperatorProcess, kube_api: ApiClient, namespace: str
) -> None:
    create(kube_api, namespace, cron_trigger("exclusive", "* * * * * *", concurrencyPolicy="Forbid"))
    [first] = wait_runs(kube_api, namespace, "exclusive", 1)
    name = first["metadata"]["name"]

    def only_the_first() -> None:
        assert names(runs_of(kube_api, namespace, "exclusive")) == {name}

    def listed_active() -> bool:
        obj = get(kube_api, namespace, "crontriggers", "exclusive")
        return obj is not None and (obj.get("status") or {}).get("active") == [{"name": name}]

    eventually(listed_active, timeout=3, what="status.active naming the Pending Run")
    stays(only_the_first, duration=2.5)  # 2-3 slots pass while the Run is Pending

    finished_at = now()
    patch_status(kube_api, namespace, "runs", name, {"phase": "Succeeded", "completionTime": f"{finished_at:%FT%TZ}"})
    runs = eventually(
        lambda: runs_besides(kube_api, namespace, "exclusive", {name}),
        timeout=5,
        what="the next fire's Run once the first succeeded",
    )
    later = [fire_of(r) for r in runs if r["metadata"]["name"] != name]
    # Skipped slots stay skipped: the next Run is for a fire after the first finished.
    assert all(fire >= finished_at - timedelta(seconds=1) for fire in later), (finished_at, later)
    fires(runs)


def test_history_limits_keep_only_the_newest_finished_runs(
    operator: OperatorProcess, kube_api: ApiClient, namespace: str
) -> None:
    create(
        kube_api,
        namespace,
        cron_trigger("history", "* * * * * *", successfulRunsHistoryLimit=1, failedRunsHistoryLimit=1),
    )
    runs = sorted(wait_runs(kube_api, namespace, "history", 5), key=fire_of)
    succeeded, failed = runs[:3], runs[3:5]
    for phase, batch in (("Succeeded", succeeded), ("Failed", failed)):
        for run in batch:
            done = fire_of(run) + timedelta(seconds=30)
            patch_status(
                kube_api,
                namespace,
                "runs",
                run["metadata"]["name"],
                {"phase": phase, "completionTime": f"{done:%FT%TZ}"},
            )

    def pruned() -> bool:
        current = runs_of(kube_api, namespace, "history")
        by_phase: dict[str, set[str]] = {}
        for run in current:
            by_phase.setdefault((run.get("status") or {}).get("phase", "Pending"), set()).add(run["metadata"]["name"])
        assert by_phase.get("Succeeded", set()) >= {succeeded[-1]["metadata"]["name"]}, by_phase
        assert by_phase.get("Failed", set()) >= {failed[-1]["metadata"]["name"]}, by_phase
        return by_phase.get("Succeeded") == {succeeded[-1]["metadata"]["name"]} and by_phase.get("Failed") == {
            failed[-1]["metadata"]["name"]
        }

    eventually(pruned, timeout=10, what="only the newest Succeeded and Failed Runs kept")
    # Runs still Pending are no history: all kept.
    assert names(runs_of(kube_api, namespace, "history")) >= names(runs[5:])


# -- delete --------------------------------------------------------------------------------------------------------


def test_delete_stops_firing_at_once_and_runs_are_garbage_collected(
    operator: OperatorProcess, kube_api: ApiClient, namespace: str
) -> None:
    trigger = create(kube_api, namespace, cron_trigger("doomed", "* * * * * *"))
    wait_runs(kube_api, namespace, "doomed", 2)
    obj = get(kube_api, namespace, "crontriggers", "doomed")
    assert obj is not None
    assert not obj["metadata"].get("finalizers"), obj["metadata"]

    resource_version = runs_resource_version(kube_api, namespace)
    deleted_at = now()
    CustomObjectsApi(kube_api).delete_namespaced_custom_object(GROUP, VERSION, namespace, "crontriggers", "doomed")
    # No finalizer, so it is gone at once.
    assert get(kube_api, namespace, "crontriggers", "doomed") is None

    # Every Run created from here on, even one the garbage collector removes at once, shows up in this watch.
    added = added_runs(kube_api, namespace, resource_version, seconds=2)
    late = [fire_of(r) for r in added if fire_of(r) > deleted_at + timedelta(seconds=1)]
    assert not late, f"Runs for fires more than 1 s after the delete: {late}"

    def collected() -> bool:
        runs = list_runs(kube_api, namespace)
        assert all(r["metadata"]["ownerReferences"][0]["uid"] == trigger["metadata"]["uid"] for r in runs)
        return not runs

    eventually(collected, timeout=30, interval=0.5, what="the Runs garbage-collected")
