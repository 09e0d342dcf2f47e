"""`stargraph.io/v1alpha1`: CronTrigger, WebhookTrigger, Run and Backfill, as pydantic models.

These models are the single source of truth: the CRDs in `crds/` are generated from them (`stargraph.api.crdgen`),
and the operator validates every object it reads with them, so the apiserver's schema and the operator's idea of
a valid spec cannot drift apart. Field names are the Kubernetes camelCase ones; Python code uses snake_case.
Field descriptions become the CRD's documentation (`kubectl explain crontrigger.spec.schedule`).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, ConfigDict, Field
from pydantic.alias_generators import to_camel

from stargraph.api.cel import Rule, cel
from stargraph.api.cron_syntax import EVERY_MESSAGE, MACROS, TZ_MESSAGE
from stargraph.models import IRBase

__all__ = [
    "GROUP",
    "MAX_BACKFILL_RUNS",
    "RECENT_FIRES_LIMIT",
    "VERSION",
    "BackfillSpec",
    "BackfillStatus",
    "BackfillTriggerReference",
    "CatchUpPolicy",
    "ConcurrencyPolicy",
    "Condition",
    "CronTriggerSpec",
    "CronTriggerStatus",
    "DaylightSavingPolicy",
    "DeduplicationKey",
    "EventFilter",
    "FireOutcome",
    "FireRecord",
    "ObjectReference",
    "RepeatedTimePolicy",
    "RunPhase",
    "RunSpec",
    "RunStatus",
    "RunTemplate",
    "SecretRef",
    "SignatureScheme",
    "SignatureSpec",
    "SkippedTimePolicy",
    "TriggerReference",
    "WebhookTriggerSpec",
    "WebhookTriggerStatus",
]

GROUP = "stargraph.io"
VERSION = "v1alpha1"

RECENT_FIRES_LIMIT = 20
"""How many fires a CronTrigger's `status.recentFires` keeps."""

_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"


class ApiModel(IRBase):
    """camelCase on the wire, snake_case in Python; unknown fields rejected (the CRD prunes them anyway)."""

    model_config = ConfigDict(extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True)


class CatchUpPolicy(StrEnum):
    LATEST = "Latest"
    ALL = "All"
    NONE = "None"


class ConcurrencyPolicy(StrEnum):
    ALLOW = "Allow"
    FORBID = "Forbid"
    REPLACE = "Replace"


class RepeatedTimePolicy(StrEnum):
    ONCE = "Once"
    BOTH = "Both"


class SkippedTimePolicy(StrEnum):
    RUN_AT_NEXT_VALID_TIME = "RunAtNextValidTime"
    SKIP = "Skip"


class DeduplicationKey(StrEnum):
    BODY = "Body"
    DELIVERY_ID = "DeliveryID"


class SignatureScheme(StrEnum):
    """How a webhook sender signs its deliveries (`stargraph.triggers.signatures` verifies each)."""

    HMAC_SHA256 = "hmac-sha256"
    GITHUB = "github"
    STANDARD_WEBHOOKS = "standard-webhooks"


class RunPhase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class RunTemplate(ApiModel):
    """What every Run this trigger creates carries."""

    graph: str | None = Field(default=None, max_length=253, description="The graph (workflow) the Run executes.")
    params: dict[str, Any] = Field(default_factory=dict, description="Parameters passed to the Run; any JSON values.")
    labels: dict[str, str] = Field(default_factory=dict, description="Extra labels put on each Run.")
    annotations: dict[str, str] = Field(default_factory=dict, description="Extra annotations put on each Run.")
    job_template: dict[str, Any] | None = Field(
        default=None,
        description="A batch/v1 JobTemplateSpec: each Run creates one Job from it, and takes its phase from the Job. "
        "$(params.NAME), $(run.name), $(run.namespace), $(run.scheduledFire), $(trigger.name) and "
        "$(trigger.kind) in a container's command, args and env values are replaced ($$( keeps a literal $( ). "
        "Without it, an executor of your own reports each Run's phase through the Run's status.",
    )


class Condition(ApiModel):
    """A kstatus-compatible condition (`Ready`, `Reconciling`, `Stalled`)."""

    type: str = Field(description="Ready, Reconciling or Stalled.")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(description="A CamelCase machine-readable reason.")
    message: str = Field(default="", description="What happened, for humans; names the offending field.")
    last_transition_time: datetime | None = Field(default=None, description="When status last changed.")
    observed_generation: int | None = Field(default=None, description="The metadata.generation the condition is for.")


class ObjectReference(ApiModel):
    """An object in the same namespace, by name."""

    name: str = Field(description="The object's name.")


class DaylightSavingPolicy(ApiModel):
    """What a fixed-time schedule does at a wall-clock time a daylight-saving transition repeats or skips."""

    repeated_time: RepeatedTimePolicy = Field(
        default=RepeatedTimePolicy.ONCE,
        description="A wall-clock time that occurs twice when clocks go back: Once fires at its first occurrence "
        "only; Both fires at each occurrence: two fires with distinct instants (an hour apart in most zones), "
        "so two Runs.",
    )
    skipped_time: SkippedTimePolicy = Field(
        default=SkippedTimePolicy.RUN_AT_NEXT_VALID_TIME,
        description="A wall-clock time that does not occur when clocks go forward: RunAtNextValidTime fires at the "
        "first instant after the gap (02:30 fires at 03:00; several skipped times make one fire); Skip does not "
        "fire it that day.",
    )


class CronTriggerSpec(ApiModel):
    """A schedule that creates exactly one Run per fire."""

    schedule: str = Field(
        min_length=1,
        max_length=256,
        description='Cron expression, read as a Kubernetes CronJob reads it ("*/5 * * * *", "0 9 * * MON-FRI", '
        '"@hourly"), or 6 fields with seconds first ("*/10 * * * * *"). The time zone goes in timeZone.',
        # The shape only; the operator reads the expression itself (its admission webhook and Stalled conditions).
        json_schema_extra=cel(
            Rule("!self.contains('TZ')", TZ_MESSAGE),
            Rule("!self.startsWith('@every ')", EVERY_MESSAGE),
            Rule(
                f"!self.startsWith('@') || self in [{', '.join(repr(m) for m in MACROS)}]",
                f"schedule macros are {', '.join(MACROS)}",
            ),
            Rule(
                r"self.startsWith('@') || self.matches('^\\s*\\S+(\\s+\\S+){4,5}\\s*$')",
                'schedule must have 5 space-separated fields ("*/5 * * * *"), or 6 with seconds first '
                '("*/10 * * * * *"), or be a macro such as @hourly',
            ),
        ),
    )
    time_zone: str = Field(default="UTC", max_length=64, description="IANA time zone the schedule is read in.")
    suspend: bool = Field(default=False, description="Stop firing; Runs that exist are kept.")
    starting_deadline_seconds: int | None = Field(
        default=None,
        ge=0,
        description="A fire later than this (operator down or stalled) is not created but counted as missed. "
        "Unset: no deadline.",
    )
    catch_up: CatchUpPolicy = Field(
        default=CatchUpPolicy.LATEST,
        description="Missed fires found at start-up (inside the deadline): Latest creates only the newest, "
        "All creates each of them up to catchUpLimit, None creates none.",
    )
    catch_up_limit: int = Field(default=10, ge=1, le=1000, description="With catchUp: All, the most fires created.")
    concurrency_policy: ConcurrencyPolicy = Field(
        default=ConcurrencyPolicy.ALLOW,
        description="With an active (not finished) Run of this trigger: Allow creates another, Forbid skips the "
        "fire, Replace deletes the active Runs and creates the new one.",
    )
    daylight_saving: DaylightSavingPolicy = Field(
        default_factory=DaylightSavingPolicy,
        description="What a schedule at a fixed wall-clock time (minute and hour fields not starting with *, as in "
        '"30 2 * * *" or "@daily") does when a daylight-saving transition in timeZone repeats or skips that time. '
        'A schedule with * at the start of its minute or hour field ("*/15 * * * *", "*/10 2 * * *") keeps its '
        "rhythm in real time instead: it fires in both passes of a repeated hour and in no skipped one, whatever "
        "this says.",
    )
    jitter_seconds: int = Field(
        default=0,
        ge=0,
        le=3600,
        description="Create each Run up to this many seconds after its fire, so that triggers sharing a schedule do "
        "not all hit the cluster at once. Each trigger's delay is fixed, derived from its uid (the same on every "
        "replica and after restarts), and the delays of many triggers spread evenly over [0, jitterSeconds). The "
        "Run keeps the nominal fire (its name, spec.scheduledFire, status.lastScheduleTime and "
        "status.nextScheduleTime); startingDeadlineSeconds counts from the delayed instant. 0: no delay.",
    )
    run_template: RunTemplate = Field(default_factory=RunTemplate)
    successful_runs_history_limit: int = Field(default=3, ge=0, description="Succeeded Runs kept; older are deleted.")
    failed_runs_history_limit: int = Field(default=1, ge=0, description="Failed Runs kept; older are deleted.")


class FireOutcome(StrEnum):
    CREATED = "Created"
    ALREADY_EXISTED = "AlreadyExisted"
    SKIPPED = "Skipped"
    MISSED = "Missed"
    FAILED = "Failed"


class FireRecord(ApiModel):
    """One fire of the schedule and what became of it."""

    scheduled_time: datetime = Field(
        description="The fire's nominal instant. For Missed with a count, the newest of the fires counted."
    )
    outcome: FireOutcome = Field(
        description="Created: its Run was created. AlreadyExisted: its Run existed already (made by another "
        "replica or by hand). Skipped: concurrencyPolicy Forbid, a Run was still active. Missed: not created, "
        "later than startingDeadlineSeconds or beyond what catchUp creates. Failed: refused for good (reason)."
    )
    run_name: str | None = Field(default=None, description="The fire's Run (Created, AlreadyExisted).")
    count: int | None = Field(
        default=None, ge=1, description="Missed: how many fires this entry stands for (catch-up after an outage)."
    )
    delay_milliseconds: int | None = Field(
        default=None,
        ge=0,
        description="From the nominal instant to when the outcome was recorded (for Created: the Run "
        "had just been created).",
    )
    reason: str | None = Field(
        default=None,
        description="Why there is no new Run: ConcurrencyPolicy, StartingDeadlineExceeded, CatchUp, "
        "RunNameConflict, RunNotCreated.",
    )
    message: str | None = Field(default=None, description="The reason, for humans.")


class CronTriggerStatus(ApiModel):
    """Observed state of a CronTrigger, written by the operator."""

    observed_generation: int | None = Field(default=None, description="The metadata.generation the status is for.")
    conditions: list[Condition] = Field(default_factory=list, description="Ready, Reconciling and Stalled.")
    schedule_description: str | None = Field(default=None, description="The schedule in words.")
    last_schedule_time: datetime | None = Field(default=None, description="The latest fire that has its Run.")
    next_schedule_time: datetime | None = Field(default=None, description="The next fire; unset while suspended.")
    last_run_name: str | None = Field(default=None, description="The Run of the latest fire.")
    active: list[ObjectReference] = Field(default_factory=list, description="Runs of this trigger not finished.")
    last_successful_time: datetime | None = Field(default=None, description="When the latest Succeeded Run finished.")
    missed_schedules: int = Field(
        default=0,
        description="Fires that will never get a Run: past startingDeadlineSeconds, or beyond what catchUp creates.",
    )
    last_missed_schedule_time: datetime | None = Field(
        default=None, description="The newest fire counted in missedSchedules; catch-up starts after it."
    )
    recent_fires: list[FireRecord] = Field(
        default_factory=list,
        max_length=RECENT_FIRES_LIMIT,
        description=f"The last {RECENT_FIRES_LIMIT} fires and what became of each, newest scheduledTime first; one "
        "entry per fire, except a run of Missed fires counted at once (one entry with a count). Kept across "
        "restarts and leader changes (`kubectl stargraph history` prints it).",
    )


class SecretRef(ApiModel):
    """The Secret holding the signing secrets."""

    name: str = Field(pattern=_DNS_SUBDOMAIN, max_length=253, description="Secret in the trigger's namespace.")
    keys: list[str] = Field(
        default_factory=lambda: ["secret"],
        min_length=1,
        max_length=5,
        description="Keys of the Secret holding signing secrets; any one verifies (rotation).",
        json_schema_extra=cel(Rule("self.all(k, self.exists_one(j, j == k))", "secretRef.keys must be unique")),
    )


class SignatureSpec(ApiModel):
    """How deliveries are signed."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            Rule(
                "!has(self.header) || self.scheme == 'hmac-sha256'",
                "only the hmac-sha256 scheme reads a signature header; github and standard-webhooks use fixed ones",
                field_path=".header",
            )
        )
    )

    scheme: SignatureScheme = Field(
        default=SignatureScheme.HMAC_SHA256,
        description="hmac-sha256 (header with sha256=<hex>), github (X-Hub-Signature-256) or standard-webhooks.",
    )
    header: str | None = Field(
        default=None,
        max_length=128,
        description="hmac-sha256 only: the header holding the signature (default X-Signature-256); the other "
        "schemes' headers are fixed.",
    )
    tolerance_seconds: int = Field(
        default=300, ge=1, le=86400, description="standard-webhooks: accepted clock skew of webhook-timestamp."
    )


class EventFilter(ApiModel):
    """Which deliveries create Runs, by the sender's event type. Other verified deliveries are answered 202 and
    create nothing, so the sender does not retry them."""

    types: list[Annotated[str, Field(min_length=1, max_length=253)]] = Field(
        min_length=1, max_length=64, description="Event types that create Runs, matched exactly (e.g. push)."
    )
    header: str | None = Field(
        default=None,
        max_length=128,
        description="Header naming the event type. Default: X-GitHub-Event (github), X-Event-Type (hmac-sha256); "
        "standard-webhooks reads the body's `type` field unless a header is named here.",
    )


class WebhookTriggerSpec(ApiModel):
    """A signed HTTP endpoint that creates exactly one Run per delivery."""

    secret_ref: SecretRef
    signature: SignatureSpec = Field(default_factory=SignatureSpec)
    max_body_bytes: int = Field(default=1 << 20, ge=1, le=64 << 20, description="Larger bodies get 413.")
    content_types: list[str] = Field(
        default_factory=lambda: ["application/json"], min_length=1, description="Accepted media types; others 415."
    )
    deduplicate_by: DeduplicationKey = Field(
        default=DeduplicationKey.BODY,
        description="Body: a delivery is identified by its body hash. DeliveryID: by the sender's delivery id "
        "(webhook-id, X-GitHub-Delivery) when present.",
    )
    events: EventFilter | None = Field(
        default=None, description="Only deliveries of these event types create Runs; without it, every delivery."
    )
    pass_body: bool = Field(
        default=False,
        description="Put each delivery's body (UTF-8 text, at most 65536 bytes: larger ones get 413) in its Run "
        "(spec.body) and its Job (the STARGRAPH_BODY variable).",
    )
    run_template: RunTemplate = Field(default_factory=RunTemplate)


class WebhookTriggerStatus(ApiModel):
    """Observed state of a WebhookTrigger, written by the operator."""

    observed_generation: int | None = Field(default=None, description="The metadata.generation the status is for.")
    conditions: list[Condition] = Field(default_factory=list, description="Ready, Reconciling and Stalled.")
    path: str | None = Field(default=None, description="Where deliveries go, relative to the operator's service.")
    last_delivery_time: datetime | None = Field(default=None, description="The latest delivery that has its Run.")
    last_run_name: str | None = Field(default=None, description="The Run of the latest delivery.")
    active: list[ObjectReference] = Field(default_factory=list, description="Runs of this trigger not finished.")
    last_successful_time: datetime | None = Field(default=None, description="When the latest Succeeded Run finished.")


class TriggerReference(ApiModel):
    """The trigger that fired, in the Run's namespace."""

    kind: str = Field(max_length=63, description="CronTrigger, WebhookTrigger, or a third-party trigger kind.")
    name: str = Field(pattern=_DNS_SUBDOMAIN, max_length=253, description="The trigger's name.")


class RunSpec(ApiModel):
    """A record of one fire; immutable once created."""

    model_config = ConfigDict(json_schema_extra=cel(Rule("self == oldSelf", "Run spec is immutable")))

    trigger_ref: TriggerReference
    source: str = Field(
        pattern=r"^[a-z][a-z0-9-]*$",
        max_length=63,
        description="What fired: cron, webhook, manual, or a third-party trigger's source (its trigger id's prefix).",
    )
    graph: str | None = Field(default=None, description="The graph (workflow) to execute, from the runTemplate.")
    params: dict[str, Any] = Field(default_factory=dict, description="Parameters, from the runTemplate; any JSON.")
    scheduled_fire: datetime = Field(description="The nominal fire time (arrival time for webhooks/manual).")
    job_template: dict[str, Any] | None = Field(
        default=None, description="The trigger's runTemplate.jobTemplate when the Run was created; its Job's template."
    )
    body: str | None = Field(
        default=None, max_length=65536, description="The webhook delivery's body, when the trigger has passBody."
    )


class RunStatus(ApiModel):
    """Observed state of a Run."""

    phase: RunPhase = Field(default=RunPhase.PENDING, description="Pending, Running, Succeeded or Failed.")
    start_time: datetime | None = Field(default=None, description="When the Run started running.")
    completion_time: datetime | None = Field(default=None, description="When the Run succeeded or failed.")
    message: str | None = Field(default=None, description="Why the Run is in its phase, for humans.")
    duration: str | None = Field(default=None, description="From startTime to completionTime, e.g. 1m30s.")
    job_ref: ObjectReference | None = Field(default=None, description="The Job of this Run (with a jobTemplate).")
    observed_generation: int | None = Field(default=None, description="The metadata.generation the status is for.")
    conditions: list[Condition] = Field(
        default_factory=list, description="Ready (Succeeded), Stalled (Failed) and Reconciling (otherwise)."
    )


MAX_BACKFILL_RUNS = 10_000
"""The most Runs one Backfill may create (`maxRuns` at most): a larger range is several Backfills."""


class BackfillTriggerReference(ApiModel):
    """The trigger whose schedule is backfilled, in the Backfill's namespace."""

    kind: str = Field(
        default="CronTrigger", max_length=63, description="CronTrigger: only schedules can be backfilled."
    )
    name: str = Field(pattern=_DNS_SUBDOMAIN, max_length=253, description="The CronTrigger's name.")


class BackfillSpec(ApiModel):
    """Create the Runs of every fire of a CronTrigger's schedule in a past range; immutable once created."""

    # The operator checks the same (`stargraph.triggers.backfill`), for objects applied without these rules.
    model_config = ConfigDict(
        json_schema_extra=cel(
            Rule("self == oldSelf", "Backfill spec is immutable; create another Backfill"),
            Rule("self.to >= self.from", "spec.to must not be before spec.from", field_path=".to"),
        )
    )

    trigger_ref: BackfillTriggerReference
    from_: AwareDatetime = Field(
        alias="from",
        description="Start of the range (RFC 3339), inclusive: a fire exactly at this instant is backfilled.",
    )
    to: AwareDatetime = Field(
        description="End of the range (RFC 3339), inclusive: a fire exactly at this instant is backfilled. Fires "
        "after the Backfill's creation are left to the trigger.",
    )
    max_runs: int = Field(
        default=100,
        ge=1,
        le=MAX_BACKFILL_RUNS,
        description="A range with more fires than this is refused (Stalled, naming how many it holds).",
    )
    parallelism: int = Field(
        default=1,
        ge=1,
        le=MAX_BACKFILL_RUNS,
        description="How many of this Backfill's Runs may be unfinished (phase not Succeeded or Failed) at once. "
        "A Run without a jobTemplate stays unfinished until its executor sets its phase.",
    )
    dry_run: bool = Field(default=False, description="Only compute and report the fires (status): create no Run.")


class BackfillStatus(ApiModel):
    """Progress of a Backfill, written by the operator."""

    observed_generation: int | None = Field(default=None, description="The metadata.generation the status is for.")
    conditions: list[Condition] = Field(default_factory=list, description="Ready, Reconciling and Stalled.")
    slots: int | None = Field(default=None, description="Fires of the schedule in the range.")
    created: int = Field(default=0, description="Runs this Backfill created.")
    already_existing: int = Field(default=0, description="Fires whose Run existed already (a live or earlier fire).")
    remaining: int | None = Field(
        default=None, description="Fires not yet looked at; in a dry run, Runs it would create."
    )
    last_slot_time: datetime | None = Field(
        default=None, description="The newest fire whose Run exists (created or found); work resumes after it."
    )
    planned_slots: list[datetime] = Field(
        default_factory=list, description="Dry run: the first 100 fires that would get a Run, oldest first."
    )
