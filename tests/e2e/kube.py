"""Reading and writing stargraph objects from the end-to-end tests (sync `kubernetes` client, admin credentials)."""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from kubernetes import watch
from kubernetes.client import ApiClient, BatchV1Api, CoreV1Api, CustomObjectsApi, V1ObjectMeta, V1Secret
from kubernetes.client.exceptions import ApiException

from stargraph.api.v1alpha1 import GROUP, VERSION
from stargraph.fires.keys import split_trigger_id
from stargraph.runs.jobs import LABEL_RUN

__all__ = [
    "ANNOTATION_FIRE",
    "ANNOTATION_TRIGGER_ID",
    "API_VERSION",
    "added_runs",
    "condition",
    "create",
    "cron_trigger",
    "every",
    "fire_of",
    "fires",
    "get",
    "is_ready",
    "job_template",
    "jobs",
    "list_cron_triggers",
    "list_runs",
    "parse_time",
    "patch",
    "patch_status",
    "put_secret",
    "recorded_statuses",
    "replay",
    "runs_per_fire",
    "runs_resource_version",
    "squatter",
    "webhook_trigger",
]

API_VERSION = f"{GROUP}/{VERSION}"
ANNOTATION_FIRE = f"{GROUP}/scheduled-fire"
ANNOTATION_TRIGGER_ID = f"{GROUP}/trigger-id"
PLURALS = {"CronTrigger": "crontriggers", "WebhookTrigger": "webhooktriggers", "Run": "runs"}


def cron_trigger(name: str, schedule: str = "*/2 * * * * *", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "CronTrigger",
        "metadata": {"name": name},
        "spec": {"schedule": schedule, **spec},
    }


def webhook_trigger(name: str, secret: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "WebhookTrigger",
        "metadata": {"name": name},
        "spec": {"secretRef": {"name": secret}, **spec},
    }


def squatter(name: str) -> dict[str, Any]:
    """A Run someone else made: another idempotency key, no owner; it happens to have the name of a future fire."""
    return {
        "apiVersion": API_VERSION,
        "kind": "Run",
        "metadata": {"name": name, "annotations": {f"{GROUP}/idempotency-key": "someone-elses-key"}},
        "spec": {
            "triggerRef": {"kind": "CronTrigger", "name": "someone-else"},
            "source": "manual",
            "scheduledFire": "2026-01-01T00:00:00Z",
        },
    }


def job_template(
    *args: str, container: str = "main", image: str = "stargraph.test/never-pulled", **pod: Any
) -> dict[str, Any]:
    """A run-once Job of `image` with `args` (no retries, host network, never pulled); `pod` adds Pod spec fields.

    By default its Pod runs nowhere (no node takes it), or, with a `container` name that is not a DNS label, the
    apiserver refuses the Job.
    """
    containers = [{"name": container, "image": image, "imagePullPolicy": "Never", "args": list(args)}]
    pod_spec = {"restartPolicy": "Never", "hostNetwork": True, "containers": containers, **pod}
    return {"spec": {"backoffLimit": 0, "template": {"spec": pod_spec}}}


def jobs(api: ApiClient, namespace: str) -> dict[str, dict[str, Any]]:
    """The namespace's Jobs of Runs, by name."""
    found = BatchV1Api(api).list_namespaced_job(namespace, label_selector=LABEL_RUN)
    return {job.metadata.name: api.sanitize_for_serialization(job) for job in found.items}


def create(api: ApiClient, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
    plural = PLURALS[body["kind"]]
    created = CustomObjectsApi(api).create_namespaced_custom_object(GROUP, VERSION, namespace, plural, dict(body))
    return cast(dict[str, Any], created)


def get(api: ApiClient, namespace: str, plural: str, name: str) -> dict[str, Any] | None:
    try:
        body = CustomObjectsApi(api).get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return cast(dict[str, Any], body)


def patch(api: ApiClient, namespace: str, plural: str, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """JSON merge patch of the object (spec, metadata)."""
    patched = CustomObjectsApi(api).patch_namespaced_custom_object(GROUP, VERSION, namespace, plural, name, dict(body))
    return cast(dict[str, Any], patched)


def patch_status(api: ApiClient, namespace: str, plural: str, name: str, status: Mapping[str, Any]) -> None:
    """JSON merge patch through the status subresource."""
    CustomObjectsApi(api).patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, plural, name, {"status": dict(status)}
    )


def list_runs(api: ApiClient, namespace: str) -> list[dict[str, Any]]:
    listing = CustomObjectsApi(api).list_namespaced_custom_object(GROUP, VERSION, namespace, "runs")
    return cast(list[dict[str, Any]], listing["items"])  # type: ignore[index]


def list_cron_triggers(api: ApiClient, namespace: str) -> list[dict[str, Any]]:
    listing = CustomObjectsApi(api).list_namespaced_custom_object(GROUP, VERSION, namespace, "crontriggers")
    return cast(list[dict[str, Any]], listing["items"])  # type: ignore[index]


def runs_resource_version(api: ApiClient, namespace: str) -> str:
    """The resourceVersion of the namespace's Run list now: where `added_runs` starts watching."""
    listing = CustomObjectsApi(api).list_namespaced_custom_object(GROUP, VERSION, namespace, "runs")
    return cast(str, listing["metadata"]["resourceVersion"])  # type: ignore[index]


def replay(
    api: ApiClient, namespace: str, plural: str, resource_version: str, *, seconds: int, **params: str
) -> list[tuple[str, dict[str, Any]]]:
    """Every (event type, object) of `plural` after `resource_version`, in the apiserver's order, watched for
    `seconds`: what happened, even to objects changed or deleted again at once."""
    stream = watch.Watch().stream(  # type: ignore[no-untyped-call]
        CustomObjectsApi(api).list_namespaced_custom_object,
        GROUP,
        VERSION,
        namespace,
        plural,
        resource_version=resource_version,
        timeout_seconds=seconds,
        **params,
    )
    return [(event["type"], cast(dict[str, Any], event["object"])) for event in stream]


def added_runs(api: ApiClient, namespace: str, resource_version: str, seconds: int) -> list[dict[str, Any]]:
    """Every Run added after `resource_version`, watched for `seconds`: even one deleted again at once."""
    return [
        run for change, run in replay(api, namespace, "runs", resource_version, seconds=seconds) if change == "ADDED"
    ]


def recorded_statuses(api: ApiClient, namespace: str, plural: str, name: str, since: str) -> list[dict[str, Any]]:
    """Every status the object had after resourceVersion `since`, in the order the apiserver recorded them."""
    changes = replay(api, namespace, plural, since, seconds=1, field_selector=f"metadata.name={name}")
    return [dict(obj.get("status") or {}) for change, obj in changes if change != "DELETED"]


def put_secret(api: ApiClient, namespace: str, name: str, data: Mapping[str, str]) -> None:
    """Create or replace Secret `name` holding `data` (text values)."""
    core = CoreV1Api(api)
    encoded = {key: base64.b64encode(value.encode()).decode() for key, value in data.items()}
    secret = V1Secret(metadata=V1ObjectMeta(name=name), data=encoded)
    try:
        core.create_namespaced_secret(namespace, secret)
    except ApiException as exc:
        if exc.status != 409:
            raise
        core.replace_namespaced_secret(name, namespace, secret)


def condition(obj: Mapping[str, Any] | None, type_: str) -> dict[str, Any]:
    for entry in ((obj or {}).get("status") or {}).get("conditions") or ():
        if entry.get("type") == type_:
            return cast(dict[str, Any], entry)
    return {}


def is_ready(obj: Mapping[str, Any] | None) -> bool:
    """Ready=True for the object's current generation."""
    if not obj:
        return False
    generation = obj["metadata"].get("generation")
    status = obj.get("status") or {}
    return condition(obj, "Ready").get("status") == "True" and status.get("observedGeneration") == generation


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(UTC)


def fire_of(run: Mapping[str, Any]) -> datetime:
    return parse_time(run["metadata"]["annotations"][ANNOTATION_FIRE])


def fires(runs: Iterable[Mapping[str, Any]]) -> list[datetime]:
    """The scheduled fires of `runs`, sorted; fails if any fire has more than one Run."""
    counted = Counter(fire_of(run) for run in runs)
    duplicates = {fire.isoformat(): n for fire, n in counted.items() if n > 1}
    assert not duplicates, f"more than one Run per scheduled fire: {duplicates}"
    return sorted(counted)


def runs_per_fire(runs: Iterable[Mapping[str, Any]]) -> Counter[tuple[str, datetime]]:
    """How many of `runs` each (trigger name, scheduled fire) has; a count above 1 is a duplicate.

    Every Run is read twice, from its spec (`triggerRef.name`, `scheduledFire`) and from its annotations
    (`trigger-id`, `scheduled-fire`): a Run whose two readings disagree fails here instead of hiding a duplicate.
    """
    counted: Counter[tuple[str, datetime]] = Counter()
    for run in runs:
        spec, annotations = run["spec"], run["metadata"]["annotations"]
        by_spec = (spec["triggerRef"]["name"], parse_time(spec["scheduledFire"]))
        by_annotations = (split_trigger_id(annotations[ANNOTATION_TRIGGER_ID])[2], fire_of(run))
        assert by_spec == by_annotations, f"{run['metadata']['name']}: spec {by_spec}, annotations {by_annotations}"
        counted[by_spec] += 1
    return counted


def every(step_seconds: int, start: datetime, end: datetime) -> list[datetime]:
    """The instants start, start+step, ... <= end."""
    result = []
    at = start
    while at <= end:
        result.append(at)
        at += timedelta(seconds=step_seconds)
    return result
