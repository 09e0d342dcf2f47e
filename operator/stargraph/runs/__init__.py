"""The Run domain: a Run's name and manifest, what a sink and the scheduler know of it, the index of existing Runs,
and which of them history limits prune.

Nothing here talks to Kubernetes except `stargraph.runs.kube_sink`, which this package does not import: plugins,
the scheduler and `stargraph serve` load the rest without a cluster client.
"""

from stargraph.runs.history import active_run_names, beyond_history_limits, last_success
from stargraph.runs.index import FINISHED_PHASES, RunIndex, RunInfo, TriggerKey
from stargraph.runs.manifest import (
    ANNOTATION_IDEMPOTENCY_KEY,
    ANNOTATION_PAYLOAD_SHA256,
    ANNOTATION_SCHEDULED_FIRE,
    ANNOTATION_TRIGGER_ID,
    LABEL_SOURCE,
    LABEL_TRIGGER,
    LABEL_TRIGGER_KIND,
    RUN_API_VERSION,
    TriggerObject,
    build_run,
    run_ref,
)
from stargraph.runs.naming import label_value, run_name
from stargraph.runs.refs import RunRef, SubmitResult, payload_sha256
from stargraph.runs.sink import InMemoryRunSink, PermanentSinkError, RunRequest, RunSink
from stargraph.runs.submit import RunSubmitter, SchedulerStopped

__all__ = [
    "ANNOTATION_IDEMPOTENCY_KEY",
    "ANNOTATION_PAYLOAD_SHA256",
    "ANNOTATION_SCHEDULED_FIRE",
    "ANNOTATION_TRIGGER_ID",
    "FINISHED_PHASES",
    "LABEL_SOURCE",
    "LABEL_TRIGGER",
    "LABEL_TRIGGER_KIND",
    "RUN_API_VERSION",
    "InMemoryRunSink",
    "PermanentSinkError",
    "RunIndex",
    "RunInfo",
    "RunRef",
    "RunRequest",
    "RunSink",
    "RunSubmitter",
    "SchedulerStopped",
    "SubmitResult",
    "TriggerKey",
    "TriggerObject",
    "active_run_names",
    "beyond_history_limits",
    "build_run",
    "label_value",
    "last_success",
    "payload_sha256",
    "run_name",
    "run_ref",
]
