"""Backfill end to end: a real operator process (as the chart's ServiceAccount) against the real apiserver.

Every count is read from what the apiserver holds: the Runs listed, their labels and annotations, and for
parallelism the order of the Run events it recorded (a watch replayed from a resourceVersion taken before the
Backfill existed). The test plays the executor of the Runs (they have no jobTemplate): it sets their phases.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kubernetes.client import ApiClient, CustomObjectsApi

from stargraph.api.v1alpha1 import GROUP, VERSION
from stargraph.controller.backfill_controller import BACKFILL
from stargraph.controller.backfill_runs import LABEL_BACKFILL
from stargraph.fires.keys import cron_idempotency_key, trigger_id
from stargraph.runs import TriggerObject, build_run, run_name
from stargraph.triggers.cron import cron_event
from stargraph.triggers.specs import CronSpec
from tests.e2e.conftest import OperatorIdentity, Operators
from tests.e2e.kube import (
    API_VERSION,
    added_runs,
    condition,
    create,
    cron_trigger,
    fire_of,
    get,
    list_runs,
    patch_status,
    replay,
    runs_per_fire,
    runs_resource_version,
)
from tests.e2e.leadership import electing_pair, leading
from tests.support.controlplane import KubeCluster
from tests.support.operator import Kubectl, eventually

pytestmark = pytest.mark.cluster

START = datetime(2026, 11, 1, 0, 0, tzinfo=UTC)
END = datetime(2026, 11, 1, 1, 0, tzinfo=UTC)
EVERY_5 = "*/5 * * * *"
SLOTS = [START + timedelta(minutes=5 * i) for i in range(13)]  # both ends included


def rfc3339(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def backfill(name: str, trigger: str, start: datetime = START, end: datetime = END, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Backfill",
        "metadata": {"name": name},
        "spec": {"triggerRef": {"name": trigger}, "from": rfc3339(start), "to": rfc3339(end), **spec},
    }


def create_backfill(api: ApiClient, namespace: str, body: Mapping[str, Any]) -> None:
    CustomObjectsApi(api).create_namespaced_custom_object(GROUP, VERSION, namespace, BACKFILL.plural, dict(body))


def get_backfill(api: ApiClient, namespace: str, name: str) -> dict[str, Any]:
    obj = get(api, namespace, BACKFILL.plural, name)
    assert obj is not None
    return obj


def wait_condition(api: ApiClient, namespace: str, name: str, type_: str, timeout: float = 30) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        obj = get_backfill(api, namespace, name)
        status = obj.get("status") or {}
        if condition(obj, type_).get("status") == "True" and status.get("observedGeneration") == 1:
            return obj
        return None

    return eventually(reached, timeout=timeout, what=f"backfill {name} {type_}")


def backfill_runs(api: ApiClient, namespace: str, name: str) -> list[dict[str, Any]]:
    return [run for run in list_runs(api, namespace) if run["metadata"]["labels"].get(LABEL_BACKFILL) == name]


def live_run(api: ApiClient, namespace: str, trigger: Mapping[str, Any], fire: datetime) -> dict[str, Any]:
    """The Run a live fire of `trigger` at `fire` creates: the same event and manifest as the cron trigger's."""
    owner = TriggerObject.from_body(trigger)
    spec = CronSpec(name=owner.name, namespace=namespace, schedule=trigger["spec"]["schedule"], trigger=owner)
    return create(api, namespace, build_run(cron_event(spec, fire), trigger=owner, source="cron"))


def finish(api: ApiClient, namespace: str, runs: list[dict[str, Any]]) -> None:
    for run in runs:
        patch_status(api, namespace, "runs", run["metadata"]["name"], {"phase": "Succeeded"})


def unfinished(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [run for run in runs if (run.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]


def play_executor(api: ApiClient, namespace: str, name: str, *, parallelism: int, timeout: float = 60) -> None:
    """Finish the Backfill's Runs one by one until it is Ready; no listing may show more than `parallelism`
    unfinished (the watch replay in `most_unfinished_at_once` also sees what happened between listings)."""
    seen: list[int] = []

    def step() -> bool:
        runs = unfinished(backfill_runs(api, namespace, name))
        seen.append(len(runs))
        finish(api, namespace, runs[:1])
        return condition(get_backfill(api, namespace, name), "Ready").get("status") == "True"

    eventually(step, timeout=timeout, interval=0.2, what=f"backfill {name} Ready while its Runs are finished")
    assert max(seen) <= parallelism, f"a listing showed {max(seen)} unfinished Runs, parallelism {parallelism}"


def most_unfinished_at_once(api: ApiClient, namespace: str, name: str, since: str) -> int:
    """The largest number of the Backfill's Runs unfinished at once, in the order the apiserver recorded events."""
    phases: dict[str, bool] = {}
    most = 0
    for change, run in replay(api, namespace, "runs", since, seconds=2, label_selector=f"{LABEL_BACKFILL}={name}"):
        if change == "DELETED":
            phases.pop(run["metadata"]["name"], None)
        else:
            phases[run["metadata"]["name"]] = (run.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
        most = max(most, sum(phases.values()))
    return most


@pytest.fixture
def suspended(kube_api: ApiClient, namespace: str) -> dict[str, Any]:
    """A CronTrigger every 5 minutes, suspended: no live fire adds Runs while a test counts them; its history limit
    keeps every finished Run (a backfill's Runs are the trigger's, pruned like any other)."""
    return create(kube_api, namespace, cron_trigger("every5", EVERY_5, suspend=True, successfulRunsHistoryLimit=100))


def test_backfill_creates_the_missing_fires_once_and_finds_the_existing(
    operators: Operators, kube_api: ApiClient, namespace: str, suspended: dict[str, Any], kubectl: Kubectl
) -> None:
    existing = [SLOTS[0], SLOTS[5], SLOTS[12]]  # both ends of the range and one inside
    for fire in existing:
        live_run(kube_api, namespace, suspended, fire)
    before = create(kube_api, namespace, cron_trigger("other", EVERY_5, suspend=True))
    live_run(kube_api, namespace, before, SLOTS[1])  # another trigger's Run for a fire in the range: not counted
    operators.start()
    create_backfill(kube_api, namespace, backfill("nov", "every5", parallelism=50))

    done = wait_condition(kube_api, namespace, "nov", "Ready")
    runs = [run for run in list_runs(kube_api, namespace) if run["spec"]["triggerRef"]["name"] == "every5"]
    assert set(runs_per_fire(runs).values()) == {1}
    assert sorted(fire_of(run) for run in runs) == SLOTS
    labelled = backfill_runs(kube_api, namespace, "nov")
    assert sorted(fire_of(run) for run in labelled) == [s for s in SLOTS if s not in existing]
    tid = trigger_id("cron", namespace, "every5")
    for run in runs:  # the live fire's identity: key, name, annotations, owner
        key = cron_idempotency_key(tid, fire_of(run))
        assert run["metadata"]["annotations"][f"{GROUP}/idempotency-key"] == key
        assert run["metadata"]["name"] == run_name(trigger_name="every5", idempotency_key=key)
        assert run["metadata"]["ownerReferences"][0]["uid"] == suspended["metadata"]["uid"]
    status = done["status"]
    assert status["slots"] == len(SLOTS)
    assert status["created"] == len(labelled) == len(SLOTS) - len(existing)
    assert status["alreadyExisting"] == len(existing)
    assert status["remaining"] == 0
    assert status["lastSlotTime"] == rfc3339(SLOTS[-1])
    assert condition(done, "Reconciling")["status"] == "False"
    assert condition(done, "Stalled")["status"] == "False"

    table = kubectl.ok("get", "backfill", "nov", "-n", namespace)
    header, row = table.splitlines()
    assert header.split() == ["NAME", "TRIGGER", "CREATED", "EXISTING", "REMAINING", "READY", "AGE"]
    assert row.split()[:6] == ["nov", "every5", str(len(SLOTS) - 3), "3", "0", "True"]


def test_dry_run_reports_the_fires_and_creates_nothing(
    operators: Operators, kube_api: ApiClient, namespace: str, suspended: dict[str, Any]
) -> None:
    live_run(kube_api, namespace, suspended, SLOTS[3])
    operators.start()
    create_backfill(kube_api, namespace, backfill("look", "every5", dryRun=True, parallelism=50))

    done = wait_condition(kube_api, namespace, "look", "Ready")
    status = done["status"]
    assert (status["slots"], status["created"], status["alreadyExisting"], status["remaining"]) == (13, 0, 1, 12)
    assert status["plannedSlots"] == [rfc3339(s) for s in SLOTS if s != SLOTS[3]]
    assert "dry run" in condition(done, "Ready")["message"]
    assert [fire_of(run) for run in list_runs(kube_api, namespace)] == [SLOTS[3]]


@pytest.mark.parametrize(
    ("spec", "reason", "field", "words"),
    [
        ({"maxRuns": 5}, "TooManySlots", "spec.maxRuns", "holds 13 fires"),
        (
            {"triggerRef": {"kind": "WebhookTrigger", "name": "every5"}},
            "UnsupportedTriggerKind",
            "spec.triggerRef.kind",
            "WebhookTrigger",
        ),
    ],
    ids=["too-many-slots", "not-a-crontrigger"],
)
def test_a_bad_backfill_is_stalled_naming_the_field(
    operators: Operators,
    kube_api: ApiClient,
    namespace: str,
    suspended: dict[str, Any],
    spec: dict[str, Any],
    reason: str,
    field: str,
    words: str,
) -> None:
    operators.start()
    create_backfill(kube_api, namespace, backfill("bad", "every5", **spec))

    stalled = condition(wait_condition(kube_api, namespace, "bad", "Stalled"), "Stalled")
    assert stalled["reason"] == reason
    assert stalled["message"].startswith(f"{field}: ") and words in stalled["message"], stalled["message"]
    assert list_runs(kube_api, namespace) == []


def test_a_backfill_of_an_unknown_trigger_waits_for_it(
    operators: Operators, kube_api: ApiClient, namespace: str
) -> None:
    operators.start()
    create_backfill(kube_api, namespace, backfill("early", "later", parallelism=50))

    stalled = condition(wait_condition(kube_api, namespace, "early", "Stalled"), "Stalled")
    assert stalled["reason"] == "TriggerNotFound"
    assert stalled["message"].startswith("spec.triggerRef.name: no CronTrigger named 'later'")

    create(kube_api, namespace, cron_trigger("later", EVERY_5, suspend=True))
    done = wait_condition(kube_api, namespace, "early", "Ready")
    assert done["status"]["created"] == len(SLOTS)
    assert sorted(fire_of(run) for run in backfill_runs(kube_api, namespace, "early")) == SLOTS


@pytest.mark.parametrize(("policy", "parallelism", "bound"), [("Allow", 3, 3), ("Forbid", 3, 1), ("Replace", 3, 1)])
def test_parallelism_and_concurrency_policy_bound_the_unfinished_runs(
    operators: Operators, kube_api: ApiClient, namespace: str, policy: str, parallelism: int, bound: int
) -> None:
    trigger = cron_trigger("every5", EVERY_5, suspend=True, concurrencyPolicy=policy, successfulRunsHistoryLimit=100)
    create(kube_api, namespace, trigger)
    since = runs_resource_version(kube_api, namespace)
    operators.start()
    create_backfill(kube_api, namespace, backfill("paced", "every5", parallelism=parallelism))

    play_executor(kube_api, namespace, "paced", parallelism=bound)
    assert most_unfinished_at_once(kube_api, namespace, "paced", since) == bound
    assert sorted(fire_of(run) for run in backfill_runs(kube_api, namespace, "paced")) == SLOTS


def test_restart_mid_backfill_resumes_without_a_duplicate(
    operators: Operators, kube_api: ApiClient, namespace: str, suspended: dict[str, Any]
) -> None:
    since = runs_resource_version(kube_api, namespace)
    first = operators.start("first")
    create_backfill(kube_api, namespace, backfill("resumed", "every5", parallelism=2))
    eventually(
        lambda: get_backfill(kube_api, namespace, "resumed").get("status", {}).get("created") == 2,
        timeout=20,
        what="two Runs created, the Backfill waiting for room",
    )
    first.kill()
    finish(kube_api, namespace, backfill_runs(kube_api, namespace, "resumed"))

    operators.start("second")
    play_executor(kube_api, namespace, "resumed", parallelism=2)
    runs = backfill_runs(kube_api, namespace, "resumed")
    assert set(runs_per_fire(runs).values()) == {1}
    assert sorted(fire_of(run) for run in runs) == SLOTS
    status = get_backfill(kube_api, namespace, "resumed")["status"]
    assert (status["created"], status["alreadyExisting"], status["remaining"]) == (13, 0, 0)
    assert most_unfinished_at_once(kube_api, namespace, "resumed", since) == 2


def test_the_leader_backfills_and_the_next_leader_finishes_without_a_duplicate(
    operators: Operators,
    operator_identity: OperatorIdentity,
    kube_api: ApiClient,
    namespace: str,
    suspended: dict[str, Any],
) -> None:
    since = runs_resource_version(kube_api, namespace)
    leader, follower = electing_pair(operators, operator_identity)
    create_backfill(kube_api, namespace, backfill("handed", "every5", parallelism=2))
    eventually(
        lambda: len(backfill_runs(kube_api, namespace, "handed")) == 2 or None,
        timeout=20,
        what="two Runs created, the Backfill waiting for room",
    )
    leader.kill()
    finish(kube_api, namespace, backfill_runs(kube_api, namespace, "handed"))

    play_executor(kube_api, namespace, "handed", parallelism=2, timeout=90)
    assert leading(follower)
    added = [run for run in added_runs(kube_api, namespace, since, 2) if run["metadata"]["labels"].get(LABEL_BACKFILL)]
    assert sorted(fire_of(run) for run in added) == SLOTS  # every fire created once, across the hand-over
    status = get_backfill(kube_api, namespace, "handed")["status"]
    assert (status["created"], status["alreadyExisting"], status["remaining"]) == (13, 0, 0)


def test_a_backfill_whose_trigger_is_deleted_stalls_and_resumes_with_a_new_one(
    operators: Operators, kube_api: ApiClient, namespace: str, suspended: dict[str, Any]
) -> None:
    since = runs_resource_version(kube_api, namespace)
    operators.start()
    create_backfill(kube_api, namespace, backfill("orphan", "every5", parallelism=2))
    eventually(
        lambda: get_backfill(kube_api, namespace, "orphan").get("status", {}).get("created") == 2 or None,
        timeout=20,
        what="two Runs created, the Backfill waiting for room",
    )
    CustomObjectsApi(kube_api).delete_namespaced_custom_object(GROUP, VERSION, namespace, "crontriggers", "every5")

    stalled = condition(wait_condition(kube_api, namespace, "orphan", "Stalled"), "Stalled")
    assert stalled["reason"] == "TriggerNotFound"
    assert stalled["message"].startswith("spec.triggerRef.name: no CronTrigger named 'every5'")
    labelled = [
        run for run in added_runs(kube_api, namespace, since, 2) if run["metadata"]["labels"].get(LABEL_BACKFILL)
    ]
    assert sorted(fire_of(run) for run in labelled) == SLOTS[:2]  # nothing created once the trigger was gone

    create(kube_api, namespace, cron_trigger("every5", EVERY_5, suspend=True, successfulRunsHistoryLimit=100))
    play_executor(kube_api, namespace, "orphan", parallelism=2)
    labelled = [
        run for run in added_runs(kube_api, namespace, since, 2) if run["metadata"]["labels"].get(LABEL_BACKFILL)
    ]
    # The new trigger's Backfill resumes after the last fire done: the first two fires belonged to the old trigger.
    assert sorted(fire_of(run) for run in labelled) == SLOTS
    status = get_backfill(kube_api, namespace, "orphan")["status"]
    assert (status["created"], status["alreadyExisting"], status["remaining"]) == (13, 0, 0)


def test_history_limits_prune_a_backfills_runs_once_its_progress_is_recorded(
    operators: Operators, kube_api: ApiClient, namespace: str
) -> None:
    create(kube_api, namespace, cron_trigger("short", EVERY_5, suspend=True, successfulRunsHistoryLimit=1))
    since = runs_resource_version(kube_api, namespace)
    operators.start()
    create_backfill(kube_api, namespace, backfill("pruned", "short", parallelism=13))

    play_executor(kube_api, namespace, "pruned", parallelism=13)
    status = get_backfill(kube_api, namespace, "pruned")["status"]
    assert (status["created"], status["alreadyExisting"], status["remaining"]) == (13, 0, 0)
    finish(kube_api, namespace, unfinished(list_runs(kube_api, namespace)))

    # Held while the Backfill's status did not record them, pruned once it did: one Run is left of the 13.
    def one_left() -> list[dict[str, Any]] | None:
        runs = list_runs(kube_api, namespace)
        return runs if len(runs) == 1 else None

    eventually(one_left, timeout=20, what="the Runs beyond the history limit pruned")
    added = [run for run in added_runs(kube_api, namespace, since, 2) if run["metadata"]["labels"].get(LABEL_BACKFILL)]
    assert sorted(fire_of(run) for run in added) == SLOTS  # none made again after its Run was pruned


def test_kill_while_creating_then_restart_counts_every_run_once(
    operators: Operators, kube_api: ApiClient, namespace: str
) -> None:
    create(kube_api, namespace, cron_trigger("secondly", "* * * * * *", suspend=True))
    start = datetime(2026, 11, 1, tzinfo=UTC)
    end = start + timedelta(seconds=1999)  # 2,000 fires
    first = operators.start("first")
    create_backfill(
        kube_api, namespace, backfill("burst", "secondly", start=start, end=end, maxRuns=2000, parallelism=2000)
    )
    eventually(lambda: backfill_runs(kube_api, namespace, "burst"), timeout=20, interval=0.02, what="a first Run")
    first.kill()
    at_kill = len(backfill_runs(kube_api, namespace, "burst"))

    operators.start("second")
    done = wait_condition(kube_api, namespace, "burst", "Ready", timeout=60)
    runs = backfill_runs(kube_api, namespace, "burst")
    assert len(runs) == 2000 and set(runs_per_fire(runs).values()) == {1}
    assert (done["status"]["created"], done["status"]["alreadyExisting"]) == (2000, 0)
    assert 0 < at_kill < 2000, f"the kill came when {at_kill} Runs existed: not mid-backfill"


def test_a_live_trigger_backfilled_up_to_now_has_one_run_per_fire(
    operators: Operators, kube_api: ApiClient, namespace: str
) -> None:
    operators.start()
    live = create(kube_api, namespace, cron_trigger("live", "* * * * * *"))
    born = datetime.fromisoformat(live["metadata"]["creationTimestamp"])
    eventually(lambda: len(list_runs(kube_api, namespace)) >= 3, timeout=10, what="a few live fires")
    # From before the trigger existed to a minute ahead: fires after the Backfill's creation are the trigger's.
    create_backfill(
        kube_api,
        namespace,
        backfill("upto", "live", start=born - timedelta(seconds=20), end=born + timedelta(minutes=1), parallelism=500),
    )

    done = wait_condition(kube_api, namespace, "upto", "Ready")
    created = datetime.fromisoformat(done["metadata"]["creationTimestamp"])
    runs = list_runs(kube_api, namespace)
    assert set(runs_per_fire(runs).values()) == {1}
    in_range = [run for run in runs if fire_of(run) <= created]
    expected = [
        born - timedelta(seconds=20) + timedelta(seconds=s) for s in range(int((created - born).total_seconds()) + 21)
    ]
    assert sorted(fire_of(run) for run in in_range) == expected
    labelled = [run for run in in_range if run["metadata"]["labels"].get(LABEL_BACKFILL) == "upto"]
    status = done["status"]
    assert status["slots"] == len(expected)
    assert (status["created"], status["alreadyExisting"]) == (len(labelled), len(in_range) - len(labelled))
    assert status["alreadyExisting"] >= 3  # the live fires found, not made again
    assert {fire_of(run) for run in labelled} >= set(expected[:21])  # before the trigger fired: created


def test_cli_creates_follows_and_refuses(
    control_plane: KubeCluster, operators: Operators, kube_api: ApiClient, namespace: str, suspended: dict[str, Any]
) -> None:
    operators.start()

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "stargraph.cli", "backfill", *args, "-n", namespace]
        return subprocess.run(
            [*command, "--kubeconfig", str(control_plane.kubeconfig)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    flags = ["--from", rfc3339(START), "--to", rfc3339(END)]
    too_many = cli("crontrigger/every5", *flags, "--max-runs", "5")
    assert too_many.returncode == 2 and too_many.stderr.startswith("stargraph: error: --max-runs: the range holds 13")
    unknown = cli("crontrigger/nope", *flags)
    assert unknown.returncode == 2 and "KIND/NAME: no CronTrigger named 'nope'" in unknown.stderr
    reversed_range = cli("crontrigger/every5", "--from", rfc3339(END), "--to", rfc3339(START))
    assert reversed_range.returncode == 2 and reversed_range.stderr.startswith("stargraph: error: --to: ")

    done = cli("ct/every5", *flags, "--parallelism", "20", "--wait", "--timeout", "60")
    assert done.returncode == 0, done.stderr
    name = done.stdout.strip()
    assert "13 Runs created, 0 existed already" in done.stderr
    assert sorted(fire_of(run) for run in backfill_runs(kube_api, namespace, name)) == SLOTS
    again = cli("ct/every5", *flags, "--parallelism", "20")
    assert (again.returncode, again.stdout.strip()) == (0, name)  # the same request is the same Backfill
    assert len(list_runs(kube_api, namespace)) == len(SLOTS)

    dry = cli("ct/every5", *flags, "--dry-run", "--name", "peek", "--wait")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.split() == ["peek"]  # every fire has its Run: none is planned
