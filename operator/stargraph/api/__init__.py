"""The Kubernetes API of stargraph (`stargraph.io/v1alpha1`): pydantic models that are the single source of the CRDs."""

from stargraph.api.v1alpha1 import (
    GROUP,
    VERSION,
    Condition,
    CronTriggerSpec,
    CronTriggerStatus,
    EventFilter,
    RunSpec,
    RunStatus,
    RunTemplate,
    SecretRef,
    SignatureSpec,
    TriggerReference,
    WebhookTriggerSpec,
    WebhookTriggerStatus,
)

__all__ = [
    "GROUP",
    "VERSION",
    "Condition",
    "CronTriggerSpec",
    "CronTriggerStatus",
    "EventFilter",
    "RunSpec",
    "RunStatus",
    "RunTemplate",
    "SecretRef",
    "SignatureSpec",
    "TriggerReference",
    "WebhookTriggerSpec",
    "WebhookTriggerStatus",
]
