"""The Run manifest: its name, labels, annotations and owner, built the same way whoever creates the Run.

Every path that creates a Run (cron, webhook, `POST /v1/runs`, `stargraph run`) goes through `build_run`, so a
Run looks the same whoever made it, and `run_ref` reads back what the scheduler needs to recognise it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from stargraph.api.v1alpha1 import GROUP, VERSION, RunTemplate
from stargraph.fires.event import TriggerEvent
from stargraph.fires.keys import format_fire_time
from stargraph.runs.naming import label_value, run_name
from stargraph.runs.refs import RunRef, payload_sha256

__all__ = [
    "ANNOTATION_IDEMPOTENCY_KEY",
    "ANNOTATION_PAYLOAD_SHA256",
    "ANNOTATION_SCHEDULED_FIRE",
    "ANNOTATION_TRIGGER_ID",
    "LABEL_SOURCE",
    "LABEL_TRIGGER",
    "LABEL_TRIGGER_KIND",
    "RUN_API_VERSION",
    "TriggerObject",
    "build_run",
    "run_ref",
]

RUN_API_VERSION = f"{GROUP}/{VERSION}"
ANNOTATION_IDEMPOTENCY_KEY = f"{GROUP}/idempotency-key"
ANNOTATION_TRIGGER_ID = f"{GROUP}/trigger-id"
ANNOTATION_SCHEDULED_FIRE = f"{GROUP}/scheduled-fire"
ANNOTATION_PAYLOAD_SHA256 = f"{GROUP}/payload-sha256"
LABEL_TRIGGER = f"{GROUP}/trigger"
LABEL_TRIGGER_KIND = f"{GROUP}/trigger-kind"
LABEL_SOURCE = f"{GROUP}/source"


@dataclass(frozen=True, slots=True)
class TriggerObject:
    """The trigger a Run belongs to, as far as the Run needs to know it."""

    kind: str
    name: str
    namespace: str
    uid: str
    api_version: str = RUN_API_VERSION
    run_template: RunTemplate = field(default_factory=RunTemplate)

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> TriggerObject:
        metadata = body["metadata"]
        template = (body.get("spec") or {}).get("runTemplate") or {}
        return cls(
            kind=body["kind"],
            name=metadata["name"],
            namespace=metadata["namespace"],
            uid=metadata["uid"],
            api_version=body.get("apiVersion", RUN_API_VERSION),
            run_template=RunTemplate.model_validate(template),
        )


def build_run(
    event: TriggerEvent,
    *,
    trigger: TriggerObject,
    source: str,
    params: Mapping[str, Any] | None = None,
    body: str | None = None,
) -> dict[str, Any]:
    """The Run manifest for `event`. `params` (manual runs) are merged over the template's; `body` is carried for
    the executor (a webhook delivery's, with passBody)."""
    template = trigger.run_template
    return {
        "apiVersion": RUN_API_VERSION,
        "kind": "Run",
        "metadata": {
            "name": run_name(trigger_name=trigger.name, idempotency_key=event.idempotency_key),
            "namespace": trigger.namespace,
            "labels": {
                **template.labels,
                LABEL_TRIGGER: label_value(trigger.name),
                LABEL_TRIGGER_KIND: trigger.kind.lower(),
                LABEL_SOURCE: source,
            },
            "annotations": {
                **template.annotations,
                ANNOTATION_IDEMPOTENCY_KEY: event.idempotency_key,
                ANNOTATION_TRIGGER_ID: event.trigger_id,
                ANNOTATION_SCHEDULED_FIRE: format_fire_time(event.scheduled_fire),
                ANNOTATION_PAYLOAD_SHA256: payload_sha256(event.payload),
            },
            "ownerReferences": [
                {
                    "apiVersion": trigger.api_version,
                    "kind": trigger.kind,
                    "name": trigger.name,
                    "uid": trigger.uid,
                    "controller": True,
                }
            ],
        },
        "spec": {
            "triggerRef": {"kind": trigger.kind, "name": trigger.name},
            "source": source,
            **({"graph": template.graph} if template.graph else {}),
            "params": {**template.params, **(params or {})},
            "scheduledFire": format_fire_time(event.scheduled_fire),
            **({"jobTemplate": template.job_template} if template.job_template else {}),
            **({"body": body} if body is not None else {}),
        },
    }


def run_ref(body: Mapping[str, Any]) -> RunRef | None:
    """What the scheduler knows of a Run object; None for a Run that stargraph did not create."""
    metadata = body.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    key = annotations.get(ANNOTATION_IDEMPOTENCY_KEY)
    if not key:
        return None
    return RunRef(
        name=metadata["name"],
        namespace=metadata.get("namespace", ""),
        idempotency_key=key,
        trigger_id=annotations.get(ANNOTATION_TRIGGER_ID, ""),
        payload_sha256=annotations.get(ANNOTATION_PAYLOAD_SHA256, ""),
    )
