"""The manual trigger: `POST /v1/runs` with the caller's `Idempotency-Key`.

Rules (the IETF Idempotency-Key draft's, with a UUID key): a missing or malformed key is 400; the first request
creates the Run (201); the same key with the same body returns that Run (200); the same key with a different body
is 422, since answering with a Run made from other parameters would be a lie. Who may call is decided by the
`authorizer` in `deps` (the operator checks the bearer token with TokenReview and SubjectAccessReview); without one
every request is refused, so a misconfigured server fails closed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from pydantic import ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from stargraph.fires.event import TriggerEvent, json_payload
from stargraph.fires.keys import manual_idempotency_key, trigger_id
from stargraph.http import HttpError, HttpRequest, HttpResponse, Route, run_response
from stargraph.models import IRBase, describe_validation_error
from stargraph.runs import RunSubmitter, payload_sha256
from stargraph.triggers.submission import submit_or_http_error

__all__ = [
    "RUNS_PATH",
    "Authorizer",
    "ManualRunRequest",
    "ManualTriggerPlugin",
    "TriggerRef",
    "deny_all",
    "manual_event",
]

RUNS_PATH = "/v1/runs"
_MAX_BODY = 64 << 10
_DNS_NAME = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"

Authorizer = Callable[[HttpRequest, str], Awaitable[Mapping[str, Any]]]
"""Given the request and the target namespace, return who the caller is or raise `HttpError` 401/403."""


async def deny_all(request: HttpRequest, namespace: str) -> Mapping[str, Any]:
    raise HttpError(401, "unauthenticated", "this server has no authenticator configured; every request is refused")


class _CamelModel(IRBase):
    model_config = ConfigDict(extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True)


class TriggerRef(_CamelModel):
    kind: str = Field(min_length=1, max_length=63, pattern=r"^[A-Z][A-Za-z0-9]*$")
    name: str = Field(min_length=1, max_length=253, pattern=_DNS_NAME)
    namespace: str = Field(default="default", min_length=1, max_length=63, pattern=_DNS_NAME)


class ManualRunRequest(_CamelModel):
    trigger_ref: TriggerRef
    params: dict[str, Any] = {}

    @field_validator("params")
    @classmethod
    def _storable(cls, value: dict[str, Any]) -> dict[str, Any]:
        # Valid JSON may still not fit a Run (1e999 parses to infinity): a 400 now, not a failed create later.
        return json_payload(value, where="params")


def manual_event(
    request: ManualRunRequest, *, idempotency_key: str, now: Any, requested_by: str | None = None
) -> TriggerEvent:
    """The event for a manual run; shared by the HTTP route and the CLI so both build the same Run."""
    ref = request.trigger_ref
    payload: dict[str, Any] = {"triggerRef": ref.model_dump(by_alias=True), "params": request.params}
    if requested_by:
        payload["requestedBy"] = requested_by
    return TriggerEvent(
        trigger_id=trigger_id("manual", ref.namespace, ref.name),
        scheduled_fire=now,
        idempotency_key=manual_idempotency_key(idempotency_key),
        payload=payload,
    )


class ManualTriggerPlugin:
    def __init__(self) -> None:
        self._scheduler: RunSubmitter | None = None
        self._authorize: Authorizer = deny_all

    def init(self, deps: Mapping[str, Any]) -> None:
        self._scheduler = deps["scheduler"]
        self._authorize = deps.get("authorizer") or deny_all

    def start(self) -> None:
        """Nothing to start: runs arrive through the route."""

    def stop(self) -> None:
        """Nothing to drain here: in-flight requests are awaited by the serve layer and the scheduler."""

    def routes(self) -> Sequence[Route]:
        return (Route(path=RUNS_PATH, handler=self.handle, name="manual-run", max_body_bytes=_MAX_BODY),)

    async def handle(self, request: HttpRequest) -> HttpResponse:
        """Answer one request; an `HttpError` raised here becomes the JSON error response."""
        assert self._scheduler is not None, "init() must run first"
        raw_key = request.headers.get("idempotency-key")
        if raw_key is None:
            raise HttpError(400, "missing_idempotency_key", "the Idempotency-Key header (a UUID) is required")
        try:
            key = manual_idempotency_key(raw_key)
        except ValueError as exc:
            raise HttpError(400, "malformed_idempotency_key", f"Idempotency-Key: {exc}") from exc
        if request.headers.get("content-type", "").split(";", 1)[0].strip().lower() != "application/json":
            raise HttpError(415, "unsupported_media_type", "the body must be application/json")
        try:
            body = ManualRunRequest.model_validate_json(request.body)
        except ValidationError as exc:
            raise HttpError(400, "invalid_body", describe_validation_error(exc)) from exc
        caller = await self._authorize(request, body.trigger_ref.namespace)
        event = manual_event(
            body, idempotency_key=key, now=self._scheduler.clock.now(), requested_by=caller.get("username")
        )
        result = await submit_or_http_error(self._scheduler, event)
        if result.run.payload_sha256 != payload_sha256(event.payload):
            raise HttpError(
                422,
                "idempotency_key_reused",
                "this Idempotency-Key was already used with a different request; use a new key for a new run",
            )
        return run_response(result.run, created=result.created)
