"""Whether a trigger's spec can work, as pure functions of the spec: one answer for the operator and for admission.

The controllers report a check's errors as the trigger's Stalled condition; the admission webhook refuses the same
spec at `kubectl apply` with the same messages, since both call the functions here. Nothing here reads the cluster
(whether a named Secret exists is the controller's business), so admission answers at once and never waits for
the apiserver.

A check takes an object's `spec` and returns a `SpecCheck`: the parsed spec when it is usable, the `FieldError`s
when it is not (each naming its field and the Stalled reason), and warnings about fields that are accepted but do
nothing. `SPEC_CHECKS` is the registry admission consults, by kind.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from stargraph.api.v1alpha1 import (
    BackfillSpec,
    CatchUpPolicy,
    CronTriggerSpec,
    EventFilter,
    SignatureScheme,
    SignatureSpec,
    WebhookTriggerSpec,
)
from stargraph.models import FieldError, field_errors
from stargraph.runs.jobs import run_template_errors
from stargraph.triggers.backfill import spec_errors
from stargraph.triggers.cron_schedule import ScheduleError, trigger_schedule
from stargraph.triggers.signatures import DEFAULT_SIGNATURE_HEADER, scheme_headers
from stargraph.triggers.webhook import PASSED_BODY_MAX

__all__ = [
    "SPEC_CHECKS",
    "Check",
    "SpecCheck",
    "check_backfill",
    "check_cron_trigger",
    "check_webhook_trigger",
]


SpecT = TypeVar("SpecT")
ModelT = TypeVar("ModelT", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class SpecCheck(Generic[SpecT]):
    spec: SpecT | None
    """The parsed spec; None when there are errors."""
    errors: tuple[FieldError, ...] = ()
    warnings: tuple[str, ...] = ()
    """Fields accepted but without effect, each naming its field; admission hands them to the client."""

    @property
    def reason(self) -> str:
        """The Stalled reason: the first error's."""
        return self.errors[0].reason

    @property
    def message(self) -> str:
        """Every error, `field: message`, joined by `; `."""
        return "; ".join(map(str, self.errors))


Check = Callable[[Mapping[str, Any]], SpecCheck[Any]]
"""What admission calls with an object's `spec`."""


def _parse(model: type[ModelT], spec: Mapping[str, Any]) -> SpecCheck[ModelT]:
    try:
        return SpecCheck(spec=model.model_validate(spec))
    except ValidationError as exc:
        return SpecCheck(spec=None, errors=tuple(field_errors(exc, prefix="spec")))


def _result(spec: SpecT, errors: list[FieldError], warnings: list[str]) -> SpecCheck[SpecT]:
    return SpecCheck(spec=None if errors else spec, errors=tuple(errors), warnings=tuple(warnings))


# -- CronTrigger --------------------------------------------------------------------------------------------------

_DEFAULT_CATCH_UP_LIMIT = CronTriggerSpec.model_fields["catch_up_limit"].default


def check_cron_trigger(spec: Mapping[str, Any]) -> SpecCheck[CronTriggerSpec]:
    """The schedule and time zone as the cron plugin reads them, and the run template."""
    parsed = _parse(CronTriggerSpec, spec)
    if parsed.spec is None:
        return parsed
    cron = parsed.spec
    errors: list[FieldError] = []
    try:
        trigger_schedule(cron)
    except ScheduleError as exc:
        errors.append(FieldError(f"spec.{exc.field}", exc.message, reason=exc.reason))
    errors += run_template_errors(cron.run_template)
    warnings = []
    if cron.catch_up != CatchUpPolicy.ALL and cron.catch_up_limit != _DEFAULT_CATCH_UP_LIMIT:
        warnings.append(f"spec.catchUpLimit: only read with catchUp: All (this trigger has catchUp: {cron.catch_up})")
    return _result(cron, errors, warnings)


# -- WebhookTrigger -----------------------------------------------------------------------------------------------

# RFC 9110 field names: a token. A header with any other name cannot be sent.
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# What every request carries for HTTP itself: a header of these cannot also hold a signature or an event type.
_TRANSPORT_HEADERS = frozenset({"connection", "content-length", "content-type", "host", "transfer-encoding"})
_DEFAULT_TOLERANCE = SignatureSpec.model_fields["tolerance_seconds"].default


def _header_errors(field: str, header: str, *, taken: Iterable[str], scheme: str, reason: str) -> list[FieldError]:
    if not _TOKEN.fullmatch(header):
        return [FieldError(field, f"{header!r} is not a valid HTTP header name", reason=reason)]
    name = header.lower()
    if name in _TRANSPORT_HEADERS:
        return [FieldError(field, f"{header} is set by HTTP itself; name a header of its own", reason=reason)]
    if name in taken:
        return [FieldError(field, f"{header} is read by the {scheme} scheme; name a header of its own", reason=reason)]
    return []


def _signature_errors(signature: SignatureSpec, events: EventFilter | None) -> list[FieldError]:
    """A signature or event-type header no delivery can carry, or one that two meanings would share."""
    errors = []
    header = signature.header or DEFAULT_SIGNATURE_HEADER
    read = scheme_headers(signature.scheme, header.lower())
    if signature.scheme == SignatureScheme.HMAC_SHA256 and signature.header is not None:
        errors += _header_errors(  # the signature's header comes first, the delivery id's after it
            "spec.signature.header", header, taken=read[1:], scheme=signature.scheme, reason="InvalidSignature"
        )
    if events is not None and events.header is not None:
        errors += _header_errors(
            "spec.events.header", events.header, taken=read, scheme=signature.scheme, reason="InvalidSpec"
        )
    return errors


def check_webhook_trigger(spec: Mapping[str, Any]) -> SpecCheck[WebhookTriggerSpec]:
    """The signature configuration and the run template; the Secret is read by the controller, not here."""
    parsed = _parse(WebhookTriggerSpec, spec)
    if parsed.spec is None:
        return parsed
    webhook = parsed.spec
    signature = webhook.signature
    errors = [*_signature_errors(signature, webhook.events), *run_template_errors(webhook.run_template)]
    warnings = []
    if signature.header is not None and signature.scheme != SignatureScheme.HMAC_SHA256:
        warnings.append(f"spec.signature.header: not read by the {signature.scheme} scheme, whose headers are fixed")
    if signature.tolerance_seconds != _DEFAULT_TOLERANCE and signature.scheme != SignatureScheme.STANDARD_WEBHOOKS:
        warnings.append(f"spec.signature.toleranceSeconds: only read by standard-webhooks (scheme: {signature.scheme})")
    if webhook.pass_body and webhook.max_body_bytes > PASSED_BODY_MAX:
        warnings.append(f"spec.maxBodyBytes: with passBody, bodies over {PASSED_BODY_MAX} bytes get 413")
    return _result(webhook, errors, warnings)


def check_backfill(spec: Mapping[str, Any]) -> SpecCheck[BackfillSpec]:
    """The range and the trigger's kind; whether the trigger exists and how many fires the range holds is the
    operator's to say (it reads the trigger), as the Backfill's Stalled condition."""
    parsed = _parse(BackfillSpec, spec)
    if parsed.spec is None:
        return parsed
    return _result(parsed.spec, spec_errors(parsed.spec), [])


SPEC_CHECKS: Mapping[str, Check] = {
    "CronTrigger": check_cron_trigger,
    "WebhookTrigger": check_webhook_trigger,
    "Backfill": check_backfill,
}
"""The check of each stargraph.io kind, by kind; admission allows kinds not listed here."""
