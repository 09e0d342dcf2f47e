"""A batch/v1 CronJob as the CronTrigger that behaves the same (`kubectl stargraph convert`), as pure functions.

`convert_cronjob` maps every CronJob field (README, "From a CronJob") and returns the CronTrigger manifest with
the notes on what does not carry over exactly, each naming the CronJob field. A CronJob that no CronTrigger can
reproduce raises `ConversionError` naming the field.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from stargraph.api.cron_syntax import CronSyntaxError, cronsim_expression
from stargraph.api.v1alpha1 import GROUP, VERSION, CronTriggerSpec
from stargraph.models import describe_validation_error
from stargraph.runs.jobs import escape_references

__all__ = ["Conversion", "ConversionError", "CronJob", "convert_cronjob", "cronjobs_in"]

# kubectl's record of the CronJob's last applied manifest: carried over, it would make `kubectl apply` of the
# CronTrigger compute its changes against the CronJob's fields.
_LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
_TZ_PREFIX = re.compile(r"^(?:CRON_TZ|TZ)=(\S+)\s+(.*)$", re.DOTALL)


class ConversionError(ValueError):
    """A CronJob that cannot become a CronTrigger; the message names the field."""


class _Shape(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=True)


class CronJobMetadata(_Shape):
    name: str = Field(min_length=1)
    namespace: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    owner_references: list[dict[str, Any]] = Field(default_factory=list, alias="ownerReferences")
    finalizers: list[str] = Field(default_factory=list)


class CronJobSpec(_Shape):
    schedule: str = Field(min_length=1)
    time_zone: str | None = Field(default=None, alias="timeZone")
    suspend: bool | None = None
    concurrency_policy: Literal["Allow", "Forbid", "Replace"] | None = Field(default=None, alias="concurrencyPolicy")
    starting_deadline_seconds: int | None = Field(default=None, ge=0, alias="startingDeadlineSeconds")
    successful_jobs_history_limit: int | None = Field(default=None, ge=0, alias="successfulJobsHistoryLimit")
    failed_jobs_history_limit: int | None = Field(default=None, ge=0, alias="failedJobsHistoryLimit")
    job_template: dict[str, Any] = Field(alias="jobTemplate")


class CronJob(_Shape):
    """The fields of a CronJob manifest the conversion reads (others are reported, not carried)."""

    api_version: Literal["batch/v1", "batch/v1beta1"] = Field(alias="apiVersion")
    kind: Literal["CronJob"]
    metadata: CronJobMetadata
    spec: CronJobSpec


@dataclass(frozen=True, slots=True)
class Conversion:
    trigger: dict[str, Any]
    """The CronTrigger manifest."""
    notes: list[str] = field(default_factory=list)
    """What does not carry over exactly, each starting with the CronJob field it is about."""


def cronjobs_in(document: Any, *, where: str) -> Iterator[Mapping[str, Any]]:
    """The CronJob manifests of one YAML document: a CronJob, or a List of them (`kubectl get -o yaml`)."""
    if not isinstance(document, Mapping):
        raise ConversionError(f"{where}: expected a CronJob manifest, got {type(document).__name__}")
    if document.get("kind") == "List":
        for index, item in enumerate(document.get("items") or ()):
            yield from cronjobs_in(item, where=f"{where}.items[{index}]")
        return
    yield document


def convert_cronjob(manifest: Mapping[str, Any]) -> Conversion:
    """The CronTrigger that does what CronJob `manifest` does, with notes on what does not carry over."""
    try:
        cronjob = CronJob.model_validate(manifest)
    except ValidationError as exc:
        raise ConversionError(describe_validation_error(exc)) from exc
    meta, source = cronjob.metadata, cronjob.spec
    notes = [f"spec.{name}: not a CronJob field; not carried over" for name in sorted(source.model_extra or {})]
    schedule, time_zone = source.schedule, source.time_zone
    if prefixed := _TZ_PREFIX.match(schedule.strip()):
        if time_zone is not None:
            raise ConversionError("spec.schedule: has a TZ= prefix and spec.timeZone is set too; keep one")
        time_zone, schedule = prefixed[1], prefixed[2]
        notes.append(f"spec.schedule: its time zone prefix is now spec.timeZone ({time_zone})")
    try:
        cronsim_expression(schedule)
    except CronSyntaxError as exc:
        raise ConversionError(f"spec.schedule: {schedule!r}: {exc}") from exc
    if time_zone is None:
        notes.append(
            "spec.timeZone: unset, so the CronJob follows kube-controller-manager's local time zone; the "
            "CronTrigger reads its schedule in UTC (set timeZone in the output if that is not the same)"
        )
    job_template, escaped = escape_references(source.job_template, where="spec.jobTemplate")
    notes += [
        f"{path}: holds $(params.*), $(run.*) or $(trigger.*), which stargraph would replace; "
        "written with $$( so the Job gets the text as before"
        for path in escaped
    ]
    spec: dict[str, Any] = {"schedule": schedule}
    optional = {
        "timeZone": time_zone,
        "suspend": source.suspend,
        "concurrencyPolicy": source.concurrency_policy,
        "startingDeadlineSeconds": source.starting_deadline_seconds,
        "successfulRunsHistoryLimit": source.successful_jobs_history_limit,
        "failedRunsHistoryLimit": source.failed_jobs_history_limit,
    }
    spec.update({key: value for key, value in optional.items() if value is not None})
    spec["runTemplate"] = {"jobTemplate": job_template}
    try:
        CronTriggerSpec.model_validate(spec)
    except ValidationError as exc:
        raise ConversionError(describe_validation_error(exc)) from exc
    notes += _metadata_notes(meta)
    annotations = {key: value for key, value in meta.annotations.items() if key != _LAST_APPLIED}
    metadata: dict[str, Any] = {"name": meta.name}
    if meta.namespace is not None:
        metadata["namespace"] = meta.namespace
    if meta.labels:
        metadata["labels"] = dict(meta.labels)
    if annotations:
        metadata["annotations"] = annotations
    trigger = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "CronTrigger", "metadata": metadata, "spec": spec}
    return Conversion(trigger=trigger, notes=notes)


def _metadata_notes(meta: CronJobMetadata) -> list[str]:
    notes = []
    if _LAST_APPLIED in meta.annotations:
        notes.append(f"metadata.annotations[{_LAST_APPLIED}]: kubectl's record of the CronJob; not carried over")
    if meta.owner_references:
        notes.append("metadata.ownerReferences: the CronJob's owners do not own the CronTrigger; not carried over")
    if meta.finalizers:
        notes.append("metadata.finalizers: not carried over")
    return notes
