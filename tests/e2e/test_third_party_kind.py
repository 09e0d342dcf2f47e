"""A third-party trigger with a CRD of its own is reconciled exactly like the built-in kinds.

The test installs what a user would: a CRD (`QueueTrigger`, group acme.example) and a distribution declaring its
plugin in the `stargraph.triggers` entry-point group (written as a real package + dist-info on the operator's
PYTHONPATH). The operator discovers the plugin, watches the kind, and the plugin's events become Runs owned by
the QueueTrigger; a bad object is Stalled with the field named, and other triggers never notice.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client import ApiClient, CustomObjectsApi

from tests.e2e.conftest import Operators
from tests.e2e.kube import condition, is_ready, list_runs
from tests.support.crds import namespaced_crd
from tests.support.distribution import write_trigger_distribution
from tests.support.operator import Kubectl, eventually

pytestmark = pytest.mark.cluster

GROUP, VERSION, PLURAL = "acme.example", "v1", "queuetriggers"

CRD = namespaced_crd(
    group=GROUP,
    version=VERSION,
    kind="QueueTrigger",
    plural=PLURAL,
    spec={"type": "object", "properties": {"queue": {"type": "string"}}},
)

PLUGIN = '''
    """Fires one Run per generation of a QueueTrigger: the smallest third-party trigger with a kind of its own."""
    import hashlib

    from stargraph.triggers import TriggerEvent, TriggerObject
    from stargraph.triggers.kinds import InvalidTrigger, TriggerKind


    class QueueTrigger:
        trigger_kind = TriggerKind(group="acme.example", version="v1", plural="queuetriggers", kind="QueueTrigger")

        def init(self, deps):
            self.scheduler = deps["scheduler"]

        def start(self):
            pass

        def stop(self):
            pass

        def routes(self):
            return []

        async def reconcile(self, body):
            queue = (body.get("spec") or {}).get("queue")
            if not queue:
                raise InvalidTrigger("InvalidSpec", "spec.queue: must name a queue")
            if queue == "explode":
                raise RuntimeError("the acme backend is down")
            meta = body["metadata"]
            trigger_id = f"queue:{meta['namespace']}/{meta['name']}"
            key = hashlib.sha256(f"{trigger_id}\\0{meta['generation']}".encode()).hexdigest()
            event = TriggerEvent(
                trigger_id=trigger_id,
                scheduled_fire=self.scheduler.clock.now(),
                idempotency_key=key,
            )
            result = await self.scheduler.submit(event, trigger=TriggerObject.from_body(body))
            return {"lastRunName": result.run.name, "queue": queue}

        def forget(self, namespace, name):
            pass
'''


@pytest.fixture(scope="module")
def acme_site(kubectl: Kubectl, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    kubectl.ok("apply", "-f", "-", stdin=json.dumps(CRD))
    kubectl.ok("wait", "--for=condition=Established", "--timeout=30s", f"crd/{PLURAL}.{GROUP}")
    site = tmp_path_factory.mktemp("acme-site")
    write_trigger_distribution(site, module="acme_queue", source=PLUGIN, entry_point="QueueTrigger")
    yield site
    kubectl.run("delete", "crd", f"{PLURAL}.{GROUP}", "--wait=false")


def queue_trigger(name: str, queue: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "QueueTrigger",
        "metadata": {"name": name},
        "spec": {"queue": queue},
    }


def get(api: ApiClient, namespace: str, name: str) -> dict[str, Any]:
    return CustomObjectsApi(api).get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)  # type: ignore[no-any-return]


def test_a_third_party_kind_is_watched_and_its_events_become_runs(
    operators: Operators, acme_site: Path, kube_api: ApiClient, namespace: str
) -> None:
    operators.start("acme", env={"PYTHONPATH": str(acme_site)})
    objects = CustomObjectsApi(kube_api)
    for name, queue in (("orders", "orders"), ("blank", ""), ("broken", "explode")):
        objects.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, queue_trigger(name, queue))

    def ready_orders() -> dict[str, Any] | None:
        found = get(kube_api, namespace, "orders")
        return found if is_ready(found) else None

    orders = eventually(ready_orders, timeout=20, what="the QueueTrigger Ready")
    runs = list_runs(kube_api, namespace)
    assert [run["metadata"]["name"] for run in runs] == [orders["status"]["lastRunName"]]
    (owner,) = runs[0]["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("QueueTrigger", "orders", orders["metadata"]["uid"])
    assert runs[0]["spec"]["triggerRef"] == {"kind": "QueueTrigger", "name": "orders"}

    def stalled(name: str) -> dict[str, Any] | None:
        found = condition(get(kube_api, namespace, name), "Stalled")
        return found if found.get("status") == "True" else None

    assert "spec.queue: must name a queue" in eventually(lambda: stalled("blank"), timeout=10)["message"]
    assert "the acme backend is down" in eventually(lambda: stalled("broken"), timeout=10)["message"]

    # A new generation is a new fire; the others never noticed the broken ones.
    objects.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "orders", {"spec": {"queue": "orders-2"}})
    eventually(lambda: len(list_runs(kube_api, namespace)) == 2 or None, timeout=10, what="a Run for generation 2")
