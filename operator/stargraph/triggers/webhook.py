"""The webhook trigger: `POST /v1/hooks/{namespace}/{name}`, verified over the raw body before anything is parsed.

Order of checks, each answered with a JSON error: unknown trigger 404, wrong content type 415, body over the
trigger's cap 413 (enforced while the serve layer streams it, before the whole body is read or hashed), signature
400/401, then the trigger's event-type filter (a delivery it filters out is answered 202 and creates nothing; a
missing event type is 400). Only then is the key computed and the event submitted; the answer (201 created, 200 for
a redelivery) names the Run and is sent only after the Run exists, so a sender that retries after any failure is
safe.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from stargraph.clock import Clock, SystemClock
from stargraph.fires.event import TriggerEvent
from stargraph.fires.keys import body_sha256, webhook_delivery_idempotency_key, webhook_idempotency_key
from stargraph.http import HttpError, HttpRequest, HttpResponse, Route, ignored_response, run_response
from stargraph.metrics import Metrics
from stargraph.runs import RunSubmitter
from stargraph.triggers.signatures import SignatureError, parse_secret, verify
from stargraph.triggers.specs import WebhookSpec
from stargraph.triggers.submission import submit_or_http_error

__all__ = ["HOOK_PATH", "PASSED_BODY_MAX", "WebhookTriggerPlugin"]

HOOK_PATH = "/v1/hooks/{namespace}/{name}"
_DEFAULT_MAX_BODY = 1 << 20
PASSED_BODY_MAX = 1 << 16
"""The largest body a trigger with passBody takes: it travels in the Run object and in an environment variable."""


class _Armed:
    """A spec with its secrets decoded once, at apply time rather than per delivery."""

    __slots__ = ("keys", "spec")

    def __init__(self, spec: WebhookSpec) -> None:
        self.spec = spec
        self.keys = tuple(parse_secret(spec.scheme, secret) for secret in spec.secrets)


class WebhookTriggerPlugin:
    """Built-in trigger for signed HTTP deliveries; `apply` and `remove` change the set of specs while it runs."""

    def __init__(self) -> None:
        self._scheduler: RunSubmitter | None = None
        self._clock: Clock = SystemClock()
        self._metrics = Metrics()
        self._specs: dict[tuple[str, str], _Armed] = {}

    def init(self, deps: Mapping[str, Any]) -> None:
        self._scheduler = deps["scheduler"]
        self._clock = deps.get("clock") or self._scheduler.clock
        self._metrics = deps.get("metrics") or self._scheduler.metrics
        for spec in deps.get("webhook_specs", ()):
            self.apply(spec)

    def start(self) -> None:
        """Nothing to start: deliveries arrive through the routes."""

    def stop(self) -> None:
        """Nothing to drain here: in-flight deliveries are awaited by the serve layer and the scheduler."""

    def routes(self) -> Sequence[Route]:
        return (Route(path=HOOK_PATH, handler=self.handle, name="webhook", max_body_bytes=self._body_cap),)

    def apply(self, spec: WebhookSpec) -> None:
        """Add or replace a spec; raises `ValueError` for a secret that cannot be decoded."""
        self._specs[(spec.namespace, spec.name)] = _Armed(spec)

    def remove(self, namespace: str, name: str) -> None:
        self._specs.pop((namespace, name), None)

    def _body_cap(self, path_params: Mapping[str, str]) -> int:
        armed = self._specs.get((path_params.get("namespace", ""), path_params.get("name", "")))
        if armed is None:
            return _DEFAULT_MAX_BODY
        spec = armed.spec
        return min(spec.max_body_bytes, PASSED_BODY_MAX) if spec.pass_body else spec.max_body_bytes

    def _reject(self, status: int, reason: str, message: str) -> HttpError:
        self._metrics.webhook_rejects.labels(reason).inc()
        return HttpError(status, reason, message)

    def _event_type(self, spec: WebhookSpec, request: HttpRequest) -> str:
        """The delivery's event type, read only after its signature was verified; 400 when it is not there."""
        header = spec.event_type_source
        if header is not None:
            named = request.headers.get(header, "").strip()
            if not named:
                raise self._reject(400, "missing_event_type", f"header {header} (the event type) is missing")
            return named
        try:
            typed = orjson.loads(request.body).get("type")
        except (orjson.JSONDecodeError, AttributeError):
            typed = None
        if not isinstance(typed, str) or not typed:
            raise self._reject(400, "missing_event_type", "the body has no string field `type` (the event type)")
        return typed

    def _passed_body(self, spec: WebhookSpec, body: bytes) -> str | None:
        """The body handed to the Run (passBody), which must be text; None without passBody."""
        if not spec.pass_body:
            return None
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self._reject(400, "body_not_text", "passBody hands the body to the Run as text: send UTF-8") from exc

    async def handle(self, request: HttpRequest) -> HttpResponse:
        """Answer one request; an `HttpError` raised here becomes the JSON error response."""
        assert self._scheduler is not None, "init() must run first"
        namespace, name = request.path_params.get("namespace", ""), request.path_params.get("name", "")
        armed = self._specs.get((namespace, name))
        if armed is None:
            raise self._reject(404, "unknown_trigger", f"no WebhookTrigger {namespace}/{name}")
        spec = armed.spec
        content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if content_type not in spec.content_types:
            raise self._reject(
                415,
                "unsupported_media_type",
                f"content type {content_type or '(none)'!r}; expected one of {list(spec.content_types)}",
            )
        try:
            verification = verify(
                scheme=spec.scheme,
                keys=armed.keys,
                headers=request.headers,
                body=request.body,
                now=self._clock.now(),
                tolerance_seconds=spec.tolerance_seconds,
                signature_header=spec.signature_header,
            )
        except SignatureError as exc:
            raise self._reject(exc.status, exc.reason, exc.message) from exc
        if spec.event_types is not None:
            event_type = self._event_type(spec, request)
            if event_type not in spec.event_types:
                self._metrics.webhook_ignored.inc()
                return ignored_response(
                    "event_type_filtered", f"event type {event_type!r} is not one of {sorted(spec.event_types)}"
                )
        body_hash = body_sha256(request.body)
        if spec.key_on_delivery_id and verification.delivery_id:
            key = webhook_delivery_idempotency_key(spec.trigger_id, verification.delivery_id)
        else:
            key = webhook_idempotency_key(spec.trigger_id, body_hash)
        known = self._scheduler.known(key, source="webhook")
        if known is not None:
            return run_response(known.run, created=False)
        event = TriggerEvent(
            trigger_id=spec.trigger_id,
            scheduled_fire=self._clock.now(),
            idempotency_key=key,
            payload={**spec.payload, "delivery": {"id": verification.delivery_id, "bodySha256": body_hash}},
        )
        result = await submit_or_http_error(
            self._scheduler, event, trigger=spec.trigger, body=self._passed_body(spec, request.body)
        )
        return run_response(result.run, created=result.created)
