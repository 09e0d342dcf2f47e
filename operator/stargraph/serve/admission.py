"""The validating admission webhook: `POST /validate` answers an `admission.k8s.io/v1` AdmissionReview.

The apiserver sends every CREATE and UPDATE of a stargraph.io trigger here (the chart's ValidatingWebhookConfiguration
says which). The object's `spec` goes through the check its kind has in `triggers.validation.SPEC_CHECKS`, the same
functions the controllers report Stalled conditions from, so a refusal reads exactly as the condition would:
`spec.timeZone: unknown time zone 'Mars/Olympus' ...`. Checks are pure: nothing here waits for the apiserver.

- An UPDATE that leaves the spec as it was is allowed whatever the spec holds: a trigger that got in while the
  webhook was unreachable can still be labelled, annotated, or have its finalizers removed (the Stalled condition
  says what is wrong with it).
- Kinds without a check, other groups, and DELETE or CONNECT are allowed (the webhook configuration should not send
  them; when it does, the webhook must not block them).
- Allowed answers carry the check's warnings, which `kubectl` prints.
- A body that is not an AdmissionReview gets 400 with the JSON error body of every endpoint.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import orjson
from fastapi import FastAPI
from pydantic import ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from stargraph.api.v1alpha1 import GROUP
from stargraph.http import HttpError, HttpRequest, HttpResponse, Route
from stargraph.models import IRBase, describe_validation_error
from stargraph.serve.adapter import to_starlette
from stargraph.serve.app import App, answer_errors_in_json
from stargraph.serve.limits import HTTP_LIMITS
from stargraph.triggers.validation import Check, SpecCheck

__all__ = [
    "ADMISSION_PATH",
    "MAX_REVIEW_BYTES",
    "AdmissionRequest",
    "AdmissionResponse",
    "AdmissionReview",
    "AdmissionReviewResponse",
    "admission_route",
    "create_admission_app",
    "review",
]

ADMISSION_PATH = "/validate"
API_VERSION: Literal["admission.k8s.io/v1"] = "admission.k8s.io/v1"
MAX_REVIEW_BYTES = 8 << 20
"""An AdmissionReview holds the object and, for an UPDATE, its old version: twice etcd's 1.5 MiB object limit fits."""


class _Received(IRBase):
    """What the apiserver sends: fields this webhook does not read (userInfo, options, ...) are ignored, so a newer
    apiserver that sends more is still understood."""

    model_config = ConfigDict(extra="ignore", frozen=True, alias_generator=to_camel, populate_by_name=True)


class _Sent(IRBase):
    model_config = ConfigDict(extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True)


class GroupVersionKind(_Received):
    group: str
    version: str
    kind: str


class AdmissionRequest(_Received):
    uid: str = Field(min_length=1)
    kind: GroupVersionKind
    name: str = ""
    namespace: str = ""
    operation: Literal["CREATE", "UPDATE", "DELETE", "CONNECT"]
    object: dict[str, Any] | None = None
    old_object: dict[str, Any] | None = None
    dry_run: bool = False


class AdmissionReview(_Received):
    api_version: Literal["admission.k8s.io/v1"]
    kind: Literal["AdmissionReview"]
    request: AdmissionRequest


class StatusCause(_Sent):
    field: str
    message: str
    reason: str = "FieldValueInvalid"


class StatusDetails(_Sent):
    name: str
    group: str
    kind: str
    causes: list[StatusCause]


class Status(_Sent):
    """A metav1.Status: the apiserver shows `message` to the client, after naming the webhook."""

    code: int = 422
    reason: str = "Invalid"
    message: str
    details: StatusDetails


class AdmissionResponse(_Sent):
    uid: str
    allowed: bool
    status: Status | None = None
    warnings: list[str] | None = None


class AdmissionReviewResponse(_Sent):
    api_version: Literal["admission.k8s.io/v1"] = API_VERSION
    kind: Literal["AdmissionReview"] = "AdmissionReview"
    response: AdmissionResponse


def _verdict(request: AdmissionRequest, checked: SpecCheck[Any]) -> AdmissionResponse:
    warnings = list(checked.warnings) or None
    if not checked.errors:
        return AdmissionResponse(uid=request.uid, allowed=True, warnings=warnings)
    details = StatusDetails(
        name=request.name,
        group=request.kind.group,
        kind=request.kind.kind,
        causes=[StatusCause(field=error.field, message=error.message) for error in checked.errors],
    )
    return AdmissionResponse(
        uid=request.uid,
        allowed=False,
        status=Status(message=checked.message, details=details),
        warnings=warnings,
    )


def _spec(obj: Mapping[str, Any] | None) -> Any:
    return (obj or {}).get("spec", {})


def review(request: AdmissionRequest, checks: Mapping[str, Check]) -> AdmissionResponse:
    """The answer to one admission request."""
    check = checks.get(request.kind.kind) if request.kind.group == GROUP else None
    if check is None or request.operation not in ("CREATE", "UPDATE") or request.object is None:
        return AdmissionResponse(uid=request.uid, allowed=True)
    spec = _spec(request.object)
    if request.operation == "UPDATE" and request.old_object is not None and spec == _spec(request.old_object):
        return AdmissionResponse(uid=request.uid, allowed=True)
    return _verdict(request, check(spec))


def _parse(body: bytes) -> AdmissionReview:
    try:
        return AdmissionReview.model_validate(orjson.loads(body))
    except orjson.JSONDecodeError as exc:
        raise HttpError(400, "invalid_admission_review", f"the body is not JSON: {exc}") from exc
    except ValidationError as exc:
        message = f"not an {API_VERSION} AdmissionReview: {describe_validation_error(exc)}"
        raise HttpError(400, "invalid_admission_review", message) from exc


def admission_route(checks: Mapping[str, Check]) -> Route:
    """`POST /validate`, answering with the checks of `checks` (kind → check, for the stargraph.io group)."""

    async def handler(request: HttpRequest) -> HttpResponse:
        admission = _parse(request.body).request
        answer = AdmissionReviewResponse(response=review(admission, checks))
        return HttpResponse(status=200, body=answer.model_dump(mode="json", by_alias=True, exclude_none=True))

    return Route(ADMISSION_PATH, handler, methods=("POST",), name="admission", max_body_bytes=MAX_REVIEW_BYTES)


def create_admission_app(checks: Mapping[str, Check]) -> App:
    """The application the admission port serves: `POST /validate` and nothing else (no lifespan, no state)."""
    app = FastAPI(title="stargraph admission", docs_url=None, redoc_url=None, openapi_url=None)
    answer_errors_in_json(app)
    app.router.routes.append(to_starlette(admission_route(checks), body_timeout=HTTP_LIMITS.body_timeout))
    return app
