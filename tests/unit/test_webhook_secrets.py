"""WebhookController and the Secrets its triggers name: revocation by deletion, missing keys, re-creation, and
reading a Secret's data only when a trigger names it and it changed. The API, status, Events and plugin are fakes.
"""

from __future__ import annotations

import asyncio
import base64
import copy
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, cast

import pytest

from stargraph.clock import ManualClock
from stargraph.controller.webhook_controller import WebhookController
from stargraph.k8s.errors import NotFound
from stargraph.k8s.paths import path
from stargraph.metrics import Metrics
from stargraph.runs import RunIndex
from stargraph.triggers.specs import WebhookSpec

NS = "team-a"
TRIGGER_PATH = path(group="stargraph.io", version="v1alpha1", plural="webhooktriggers", namespace=NS, name="hook")


def secret_path(name: str) -> str:
    return path(group="", version="v1", plural="secrets", namespace=NS, name=name)


def secret(name: str, version: str, **data: str) -> dict[str, Any]:
    encoded = {key: base64.b64encode(value.encode()).decode() for key, value in data.items()}
    return {"metadata": {"namespace": NS, "name": name, "resourceVersion": version}, "data": encoded}


def metadata_of(body: Mapping[str, Any]) -> dict[str, Any]:
    """What the metadata-only informer hands over: no data."""
    return {"kind": "PartialObjectMetadata", "metadata": dict(body["metadata"])}


class FakeApi:
    """GETs served from a dict of objects by path; a GET can be held back to order it against other events."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.gets: list[str] = []
        self.hold: dict[str, asyncio.Event] = {}

    async def get(self, at: str) -> dict[str, Any]:
        self.gets.append(at)
        found = copy.deepcopy(self.objects.get(at))  # what the apiserver had when the request arrived
        if at in self.hold:
            await self.hold.pop(at).wait()
        if found is None:
            raise NotFound(404, "NotFound", f"{at} not found")
        return found


class FakeStatus:
    def __init__(self, api: FakeApi) -> None:
        self._api = api

    def update(self, *, plural: str, namespace: str, name: str, status: Mapping[str, Any], **_: Any) -> None:
        obj = self._api.objects[TRIGGER_PATH]
        obj["status"] = {**(obj.get("status") or {}), **status}

    def forget(self, **_: Any) -> None:
        pass


class FakeEvents:
    def __init__(self) -> None:
        self.warnings: list[tuple[str, str]] = []

    def warning(self, involved: Any, reason: str, message: str) -> None:
        self.warnings.append((reason, message))


class FakePlugin:
    def __init__(self) -> None:
        self.armed: dict[tuple[str, str], WebhookSpec] = {}

    def apply(self, spec: WebhookSpec) -> None:
        self.armed[(spec.namespace, spec.name)] = spec

    def remove(self, namespace: str, name: str) -> None:
        self.armed.pop((namespace, name), None)


async def _nothing_in_flight() -> None:
    """No Run is being created in these tests."""


class Rig:
    def __init__(self) -> None:
        self.api = FakeApi()
        self.plugin = FakePlugin()
        self.events = FakeEvents()
        self.metrics = Metrics()
        self.controller = WebhookController(
            api=cast(Any, self.api),
            plugin=cast(Any, self.plugin),
            status=cast(Any, FakeStatus(self.api)),
            events=cast(Any, self.events),
            clock=ManualClock(datetime(2026, 6, 1, 12, tzinfo=UTC)),
            metrics=self.metrics,
            index=RunIndex(),
            runs_created=_nothing_in_flight,
        )
        self.api.objects[TRIGGER_PATH] = {
            "metadata": {"namespace": NS, "name": "hook", "uid": "u-1", "generation": 1},
            "spec": {"secretRef": {"name": "hook-secret", "keys": ["secret", "next"]}},
        }

    @property
    def trigger(self) -> dict[str, Any]:
        return self.api.objects[TRIGGER_PATH]

    def put_secret(self, body: dict[str, Any]) -> None:
        self.api.objects[secret_path(body["metadata"]["name"])] = body

    def secret_reads(self) -> float:
        return self.metrics.registry.get_sample_value("stargraph_secret_reads_total") or 0.0

    def condition(self, type_: str) -> dict[str, Any]:
        found = [c for c in self.trigger.get("status", {}).get("conditions", []) if c["type"] == type_]
        assert found, f"no {type_} condition in {self.trigger.get('status')}"
        return cast(dict[str, Any], found[0])

    async def settle(self) -> None:
        """Let the re-armings set off so far finish (every fake GET answers at once)."""
        for _ in range(50):
            await asyncio.sleep(0)


@pytest.fixture
async def rig() -> Rig:
    rig = Rig()
    rig.put_secret(secret("hook-secret", "10", secret="first", next="second"))
    await rig.controller.reconcile("ADDED", copy.deepcopy(rig.trigger))
    assert rig.plugin.armed[(NS, "hook")].secrets == ("first", "second")
    assert rig.condition("Ready")["status"] == "True"
    return rig


async def test_a_deleted_secret_disarms_its_trigger_before_anything_is_read_then_stalls_it(rig: Rig) -> None:
    deleted = rig.api.objects.pop(secret_path("hook-secret"))
    rig.controller.secret_changed("DELETED", metadata_of(deleted))
    # Synchronously, in the informer's callback: no delivery signed with the revoked secret is verified any more.
    assert (NS, "hook") not in rig.plugin.armed
    await rig.settle()
    assert (NS, "hook") not in rig.plugin.armed
    stalled = rig.condition("Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", "SecretNotFound")
    assert stalled["message"] == f"spec.secretRef.name: Secret {NS}/hook-secret does not exist"
    assert rig.condition("Ready")["status"] == "False"
    assert rig.trigger["status"]["path"] is None
    assert rig.events.warnings[-1][0] == "SecretNotFound"


async def test_a_removed_key_stalls_the_trigger_naming_the_key(rig: Rig) -> None:
    rig.put_secret(secret("hook-secret", "11", secret="first"))
    rig.controller.secret_changed("MODIFIED", metadata_of(rig.api.objects[secret_path("hook-secret")]))
    await rig.settle()
    assert (NS, "hook") not in rig.plugin.armed
    stalled = rig.condition("Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", "SecretKeyMissing")
    assert stalled["message"] == f"spec.secretRef.keys: Secret {NS}/hook-secret has no key 'next'"


async def test_a_recreated_secret_rearms_the_trigger_with_its_new_values(rig: Rig) -> None:
    deleted = rig.api.objects.pop(secret_path("hook-secret"))
    rig.controller.secret_changed("DELETED", metadata_of(deleted))
    await rig.settle()
    assert rig.condition("Stalled")["status"] == "True"

    rig.put_secret(secret("hook-secret", "12", secret="third", next="fourth"))
    rig.controller.secret_changed("ADDED", metadata_of(rig.api.objects[secret_path("hook-secret")]))
    await rig.settle()
    assert rig.plugin.armed[(NS, "hook")].secrets == ("third", "fourth")
    assert rig.condition("Ready")["status"] == "True"
    assert rig.condition("Stalled")["status"] == "False"
    assert rig.trigger["status"]["path"] == f"/v1/hooks/{NS}/hook"


async def test_only_a_named_secret_that_changed_is_read(rig: Rig) -> None:
    reads = rig.secret_reads()
    assert reads == 1.0  # the first arming
    rig.controller.secret_changed("ADDED", metadata_of(secret("helm-release", "20")))
    rig.controller.secret_changed("MODIFIED", metadata_of(secret("helm-release", "21")))
    rig.controller.secret_changed("DELETED", metadata_of(secret("helm-release", "21")))
    # The named Secret at the version the trigger was armed with (an informer's relist) is not read again either.
    rig.controller.secret_changed("MODIFIED", metadata_of(rig.api.objects[secret_path("hook-secret")]))
    await rig.settle()
    assert rig.secret_reads() == reads
    assert secret_path("helm-release") not in rig.api.gets

    # A burst of changes to the named Secret: one re-read covers the changes seen before it started.
    for version in ("13", "14", "15"):
        rig.put_secret(secret("hook-secret", version, secret="rotated", next="second"))
        rig.controller.secret_changed("MODIFIED", metadata_of(rig.api.objects[secret_path("hook-secret")]))
    await rig.settle()
    assert rig.secret_reads() == reads + 1
    assert rig.plugin.armed[(NS, "hook")].secrets == ("rotated", "second")


async def test_an_arming_that_read_the_secret_before_its_deletion_never_finishes_last(rig: Rig) -> None:
    # The trigger's spec changes (kopf hands it over) and its arming reads the Secret just before the Secret is
    # deleted; that read is answered only after the deletion was seen.
    rig.trigger["metadata"]["generation"] = 2
    released = rig.api.hold[secret_path("hook-secret")] = asyncio.Event()
    arming = asyncio.create_task(rig.controller.reconcile("MODIFIED", copy.deepcopy(rig.trigger)))
    await asyncio.sleep(0)
    deleted = rig.api.objects.pop(secret_path("hook-secret"))
    rig.controller.secret_changed("DELETED", metadata_of(deleted))
    for _ in range(20):  # whatever the deletion set off runs as far as it can
        await asyncio.sleep(0)
    released.set()
    await arming
    await rig.settle()
    assert (NS, "hook") not in rig.plugin.armed, "armed with a deleted secret"
    assert rig.condition("Stalled")["reason"] == "SecretNotFound"


async def test_a_deleted_trigger_no_longer_follows_its_secret(rig: Rig) -> None:
    await rig.controller.reconcile("DELETED", copy.deepcopy(rig.trigger))
    reads, gets = rig.secret_reads(), len(rig.api.gets)
    rig.put_secret(secret("hook-secret", "30", secret="x", next="y"))
    rig.controller.secret_changed("MODIFIED", metadata_of(rig.api.objects[secret_path("hook-secret")]))
    await rig.settle()
    assert (rig.secret_reads(), len(rig.api.gets)) == (reads, gets)
    assert (NS, "hook") not in rig.plugin.armed


async def test_secret_data_arriving_by_the_watch_is_counted_as_a_read(rig: Rig) -> None:
    # Never happens with the metadata-only watch; if the watch ever carried data, the metric would show it.
    reads = rig.secret_reads()
    rig.controller.secret_changed("ADDED", secret("helm-release", "40", release="x" * 100))
    assert rig.secret_reads() == reads + 1
