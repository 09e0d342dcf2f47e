"""The fire ledger (`status.recentFires`) end to end, and the commands that read it (`history`, `describe`).

Each outcome is provoked for real against the apiserver: a Run of a slot created first by someone else
(AlreadyExisted), an unrelated object holding a slot's Run name (Failed), Forbid with a Run that stays active because
nothing executes it (Skipped), an operator stopped for longer than the deadline (Missed, one entry with a count),
and the ledger read back after the restart. Each test starts its own operator (fixture `operators`).
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kubernetes.client import ApiClient, CustomObjectsApi

from stargraph.api.v1alpha1 import GROUP, VERSION, CronTriggerStatus
from stargraph.cli import main
from stargraph.runs import TriggerObject, build_run
from stargraph.triggers.cron import cron_event
from stargraph.triggers.specs import CronSpec
from tests.e2e.conftest import Operators
from tests.e2e.kube import (
    create,
    cron_trigger,
    every,
    fire_of,
    get,
    list_runs,
    parse_time,
    patch,
    put_secret,
    squatter,
    webhook_trigger,
)
from tests.support.controlplane import KubeCluster
from tests.support.operator import eventually

pytestmark = pytest.mark.cluster


def now() -> datetime:
    return datetime.now(UTC)


def ledger(api: ApiClient, namespace: str, name: str) -> list[dict[str, Any]]:
    obj = get(api, namespace, "crontriggers", name)
    assert obj is not None
    return list((obj.get("status") or {}).get("recentFires") or [])


def scheduled(entries: list[dict[str, Any]]) -> list[datetime]:
    return [parse_time(entry["scheduledTime"]) for entry in entries]


def runs_by_fire(api: ApiClient, namespace: str, trigger: str) -> dict[datetime, str]:
    return {
        fire_of(run): run["metadata"]["name"]
        for run in list_runs(api, namespace)
        if run["metadata"].get("labels", {}).get(f"{GROUP}/trigger") == trigger
    }


def test_created_already_existed_and_failed_fires_are_recorded_newest_first_one_entry_per_slot(
    operators: Operators, kube_api: ApiClient, namespace: str
) -> None:
    operators.start()
    trigger = create(kube_api, namespace, cron_trigger("ledger", "*/2 * * * * *", startingDeadlineSeconds=60))
    # Prepared once the trigger fires: a Run made before then would count as accounted (catch-up starts after it).
    eventually(lambda: ledger(kube_api, namespace, "ledger") or None, timeout=15, what="a first fire recorded")
    start = now().replace(microsecond=0)
    taken = start + timedelta(seconds=4 + start.second % 2)  # even seconds, 4-5 s ahead
    squatted = taken + timedelta(seconds=2)

    # The Run of `taken`, exactly as the operator would make it, created by someone else first.
    spec = CronSpec(name="ledger", namespace=namespace, schedule="*/2 * * * * *")
    owner = TriggerObject(kind="CronTrigger", name="ledger", namespace=namespace, uid=trigger["metadata"]["uid"])
    theirs = build_run(cron_event(spec, taken), trigger=owner, source="cron")
    objects = CustomObjectsApi(kube_api)
    objects.create_namespaced_custom_object(GROUP, VERSION, namespace, "runs", theirs)
    held = build_run(cron_event(spec, squatted), trigger=owner, source="cron")["metadata"]["name"]
    objects.create_namespaced_custom_object(GROUP, VERSION, namespace, "runs", squatter(held))
    assert now() < taken, "the setup took too long: the slot came before its Run was made"

    def past_both() -> list[dict[str, Any]] | None:
        entries = ledger(kube_api, namespace, "ledger")
        return entries if entries and scheduled(entries)[0] > squatted else None

    entries = eventually(past_both, timeout=30, what="ledger entries after both prepared slots")
    CronTriggerStatus.model_validate({"recentFires": entries})  # the shape the CRD documents
    times = scheduled(entries)
    assert times == sorted(times, reverse=True), "newest first"
    # Every slot the operator saw, once, none left out.
    assert times[::-1] == every(2, times[-1], times[0])
    by_time = dict(zip(times, entries, strict=True))
    assert (by_time[taken]["outcome"], by_time[taken]["runName"]) == ("AlreadyExisted", theirs["metadata"]["name"])
    failed = by_time[squatted]
    assert (failed["outcome"], failed["reason"]) == ("Failed", "RunNameConflict"), failed
    assert "runName" not in failed and failed["message"]
    runs = runs_by_fire(kube_api, namespace, "ledger")
    for fire, entry in by_time.items():
        assert entry["delayMilliseconds"] >= 0 and fire + timedelta(milliseconds=entry["delayMilliseconds"]) <= now()
        if fire not in (taken, squatted):
            assert (entry["outcome"], entry["runName"]) == ("Created", runs[fire]), entry


def test_forbid_skips_are_recorded_with_the_run_still_active(
    operators: Operators, kube_api: ApiClient, namespace: str
) -> None:
    operators.start()
    create(kube_api, namespace, cron_trigger("exclusive", "* * * * * *", concurrencyPolicy="Forbid"))

    def two_skips() -> list[dict[str, Any]] | None:
        entries = ledger(kube_api, namespace, "exclusive")
        return entries if sum(e["outcome"] == "Skipped" for e in entries) >= 2 else None

    entries = eventually(two_skips, timeout=15, what="two Skipped fires in the ledger")
    [first] = runs_by_fire(kube_api, namespace, "exclusive").items()  # nothing runs it: it stays Pending
    created = [e for e in entries if e["outcome"] == "Created"]
    assert [(parse_time(e["scheduledTime"]), e["runName"]) for e in created] == [first]
    for entry in entries:
        if entry["outcome"] == "Skipped":
            assert parse_time(entry["scheduledTime"]) > first[0]
            # The message names the active Runs once status.active lists them (written after a burst of fires).
            assert entry["reason"] == "ConcurrencyPolicy" and "still active" in entry["message"], entry
            assert "runName" not in entry


def test_missed_fires_of_an_outage_are_one_entry_with_a_count_and_the_ledger_survives_the_restart(
    operators: Operators, kube_api: ApiClient, namespace: str
) -> None:
    first = operators.start("first")
    create(
        kube_api,
        namespace,
        cron_trigger("outage", "* * * * * *", startingDeadlineSeconds=3, catchUp="All"),
    )
    eventually(lambda: len(ledger(kube_api, namespace, "outage")) >= 3 or None, timeout=15, what="3 fires recorded")
    assert first.stop() == 0  # SIGTERM: what it recorded is written before it exits
    before = ledger(kube_api, namespace, "outage")
    time.sleep(6)  # six slots and more (the next operator takes a while to start): most past the deadline
    operators.start("second")

    def missed_and_more() -> list[dict[str, Any]] | None:
        entries = ledger(kube_api, namespace, "outage")
        missed = [e for e in entries if e["outcome"] == "Missed"]
        return entries if missed and scheduled(entries)[0] > parse_time(missed[0]["scheduledTime"]) else None

    after = eventually(missed_and_more, timeout=20, what="a Missed entry and a fire after it")
    assert after[-len(before) :] == before, "the entries of the first operator are kept, unchanged"
    [missed] = [e for e in after[: -len(before)] if e["outcome"] == "Missed"]
    status = (get(kube_api, namespace, "crontriggers", "outage") or {})["status"]
    missed_before = sum(e.get("count", 0) for e in before if e["outcome"] == "Missed")  # a starved first operator
    assert missed["count"] >= 2 and missed["count"] == status["missedSchedules"] - missed_before
    assert parse_time(missed["scheduledTime"]) == parse_time(status["lastMissedScheduleTime"])
    assert missed["reason"] == "StartingDeadlineExceeded" and missed["delayMilliseconds"] > 3000
    # The slots of the outage: each has a Run or is counted in the one Missed entry, never both, never neither.
    slots = every(1, scheduled(before)[0] + timedelta(seconds=1), parse_time(missed["scheduledTime"]))
    runs = runs_by_fire(kube_api, namespace, "outage")
    assert len(slots) == missed["count"] and not set(slots) & set(runs)
    times = scheduled(after)
    assert times == sorted(times, reverse=True) and len(after) <= 20


def test_history_and_describe_print_the_ledger_the_spec_in_words_and_the_runs(
    operators: Operators, kube_api: ApiClient, namespace: str, control_plane: KubeCluster, capsys
) -> None:  # type: ignore[no-untyped-def]
    operators.start()
    kubeconfig = ["-n", namespace, "--kubeconfig", str(control_plane.kubeconfig)]
    create(kube_api, namespace, cron_trigger("tick", "* * * * * *"))
    eventually(lambda: len(ledger(kube_api, namespace, "tick")) >= 3 or None, timeout=15, what="3 fires recorded")
    patch(kube_api, namespace, "crontriggers", "tick", {"spec": {"suspend": True}})

    def settled() -> list[dict[str, Any]] | None:  # the fire in flight when it was suspended is recorded, then none
        entries = ledger(kube_api, namespace, "tick")
        time.sleep(1.2)
        return entries if ledger(kube_api, namespace, "tick") == entries else None

    entries = eventually(settled, timeout=10, what="the ledger unchanged once suspended")
    runs = runs_by_fire(kube_api, namespace, "tick")

    assert main(["history", "crontrigger/tick", *kubeconfig, "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == entries
    assert main(["history", "ct/tick", *kubeconfig]) == 0
    header, *rows = capsys.readouterr().out.splitlines()
    assert header.split() == ["SCHEDULED", "OUTCOME", "RUN", "DELAY", "MESSAGE"]
    assert [row.split()[:3] for row in rows] == [[e["scheduledTime"], "Created", e["runName"]] for e in entries]

    assert main(["describe", "crontrigger/tick", *kubeconfig]) == 0
    out = capsys.readouterr().out
    assert "Schedule:" in out and re.search(r"Suspended:\s+yes", out) and "none (suspended)" in out
    assert "Ready" in out and all(name in out for name in runs.values())
    run_lines = out.split("Runs (newest first):")[1].splitlines()[2:]
    assert [line.split()[0] for line in run_lines] == [runs[fire] for fire in sorted(runs, reverse=True)][:10]

    create(kube_api, namespace, cron_trigger("weekly", "0 9 * * 1", timeZone="Europe/Berlin"))
    assert main(["describe", "crontrigger/weekly", *kubeconfig, "--next", "3"]) == 0
    out = capsys.readouterr().out
    assert "At 09:00 on Monday" in out and "Europe/Berlin" in out
    next_fires = out.split("Next fires:")[1].splitlines()[1:4]
    assert all("T09:00:00+01:00" in line or "T09:00:00+02:00" in line for line in next_fires), next_fires
    assert out.split("Last fires")[1].splitlines()[1] == "  none yet"

    put_secret(kube_api, namespace, "hook-secret", {"secret": "s3cret"})
    create(kube_api, namespace, webhook_trigger("hook", "hook-secret", events={"types": ["push"]}))
    assert main(["describe", "webhooktrigger/hook", *kubeconfig]) == 0
    out = capsys.readouterr().out
    assert "hook-secret (keys: secret)" in out and "push" in out and "Runs (newest first):\n  none" in out


@pytest.mark.usefixtures("crds")
def test_an_unknown_trigger_exits_1_with_the_apiservers_message(
    kube_api: ApiClient, namespace: str, control_plane: KubeCluster, capsys
) -> None:  # type: ignore[no-untyped-def]
    for argv in (["history", "crontrigger/nope"], ["describe", "webhooktrigger/nope"]):
        with pytest.raises(SystemExit) as caught:
            main([*argv, "-n", namespace, "--kubeconfig", str(control_plane.kubeconfig)])
        assert caught.value.code == 1
        err = capsys.readouterr().err
        assert "NotFound" in err and '"nope" not found' in err, err
