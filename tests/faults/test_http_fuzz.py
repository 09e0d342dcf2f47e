"""Property fuzz of the running operator's HTTP endpoints, with requests put on the wire byte for byte.

Hypothesis draws the method, target, HTTP version, raw header bytes (huge ones too), content type, authorization,
signature, body (oversized ones too) and its framing (Content-Length right, short or malformed, chunked, broken
chunking, both), and sends the request in up to four pieces with pauses. The operator is a real `stargraph
operator` process on the real control plane, with a WebhookTrigger (2 KiB body cap), a CronTrigger for manual runs,
a ServiceAccount allowed to create Runs and one that is not.

Every request gets an answer; no answer is a 5xx except the documented 503s a busy apiserver or a full server
give (with `Retry-After`); every 4xx carries the JSON error body; an answer names a Run only for a validly signed
delivery or an authorised `POST /v1/runs`. After the fuzz the Runs the apiserver lists in the namespace are exactly
the Runs answered, and no secret or token used appears in the operator's log or in any error body.
"""

from __future__ import annotations

import itertools
import json
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from kubernetes.client import ApiClient

from stargraph.fires.keys import body_sha256, webhook_idempotency_key
from stargraph.runs.naming import run_name
from stargraph.triggers.signatures import SignatureScheme, sign
from tests.e2e.conftest import Operators
from tests.e2e.kube import create, cron_trigger, list_runs
from tests.faults.leaks import LeakWatch
from tests.faults.targets import Hook, bearer, ready_hook
from tests.support.controlplane import KubeCluster
from tests.support.rawhttp import Answer, exchange

pytestmark = pytest.mark.cluster

HOOK_CAP = 2048
"""The fuzzed WebhookTrigger's maxBodyBytes: oversized bodies stay cheap to send."""
TRANSIENT_503 = {"authorization_unavailable", "run_pending", "over_capacity"}
"""The documented 503s a request can meet on a healthy cluster (a slow apiserver, a full server)."""

NS = b"@ns@"
"""Placeholder for the test's namespace in drawn targets and bodies (known only once the test runs)."""
HOOK = b"/v1/hooks/" + NS + b"/fuzz"
FRAMINGS = ("length", "none", "chunked", "broken-chunks", "short-length", "bad-length", "two-lengths", "both")
AUTHORIZATIONS = ("none", "caller", "stranger", "garbage", "basic")
SIGNATURES = ("none", "valid", "forged", "malformed")


@dataclass(frozen=True)
class Wire:
    """One drawn request; `Target.render` turns it into the bytes sent."""

    method: bytes = b"POST"
    target: bytes = HOOK
    version: bytes = b"HTTP/1.1"
    host: bytes | None = b"127.0.0.1"
    content_type: bytes | None = b"application/json"
    authorization: str = "none"
    idempotency_key: bytes | None = None
    signature: str = "none"
    headers: tuple[tuple[bytes, bytes], ...] = ()
    body: bytes = b"{}"
    framing: str = "length"
    cuts: tuple[int, ...] = ()
    """Where the request's bytes are split into pieces sent apart."""
    pause: float = 0.0
    """Seconds between pieces."""


@dataclass
class Target:
    """The running operator under fuzz, and the Runs its answers named."""

    port: int
    namespace: str
    hook: Hook
    caller: str
    stranger: str
    leaks: LeakWatch
    answered: dict[str, str] = field(default_factory=dict)
    """Run name → what asked for it."""

    def render(self, wire: Wire) -> tuple[list[bytes], bytes]:
        """The pieces to send, and the body as sent (for the signature and the expected Run name)."""
        namespace = self.namespace.encode()
        body = wire.body.replace(NS, namespace)
        headers = list(wire.headers)
        if wire.host is not None:
            headers.append((b"host", wire.host))
        if wire.content_type is not None:
            headers.append((b"content-type", wire.content_type))
        tokens = {"caller": self.caller, "stranger": self.stranger, "garbage": "x" * 40}
        if wire.authorization in tokens:
            headers.append((b"authorization", b"Bearer " + tokens[wire.authorization].encode()))
        elif wire.authorization == "basic":
            headers.append((b"authorization", b"Basic dXNlcjpwYXNzd29yZA=="))
        if wire.idempotency_key is not None:
            headers.append((b"idempotency-key", wire.idempotency_key))
        signatures = {
            "valid": self.hook.secret.encode(),
            "forged": b"not-the-secret",
        }
        if wire.signature in signatures:
            signed = sign(scheme=SignatureScheme.HMAC_SHA256, key=signatures[wire.signature], body=body)
            headers.extend((name.encode(), value.encode()) for name, value in signed.items())
        elif wire.signature == "malformed":
            headers.append((b"x-signature-256", b"sha256=zz"))
        headers, framed = _frame(wire.framing, headers, body)
        start = wire.method + b" " + wire.target.replace(NS, namespace) + (b" " + wire.version if wire.version else b"")
        data = start + b"\r\n" + b"".join(name + b": " + value + b"\r\n" for name, value in headers) + b"\r\n" + framed
        bounds = sorted({min(cut, len(data)) for cut in wire.cuts} | {0, len(data)})
        return [data[a:b] for a, b in itertools.pairwise(bounds)], body

    def check(self, wire: Wire, answer: Answer | None, body: bytes) -> None:
        assert answer is not None, "the server closed the connection without answering"
        status, reason = answer.status, None
        if status >= 400 and wire.method != b"HEAD":
            self.leaks.error_body(answer.body)
            assert answer.headers.get("content-type", "").startswith("application/json"), answer
            error = answer.json()
            assert set(error) == {"error"} and set(error["error"]) == {"reason", "message"}, error
            reason = error["error"]["reason"]
            assert isinstance(reason, str) and reason and isinstance(error["error"]["message"], str), error
        if status >= 500:
            assert status == 503 and reason in TRANSIENT_503, f"{status} {reason}: {answer.body!r}"
            assert answer.headers.get("retry-after", "").isdigit(), answer.headers
        if 200 <= status < 300 and answer.headers.get("content-type", "").startswith("application/json"):
            run = answer.json().get("run") if wire.method != b"HEAD" else None
            if run is not None:
                self._answered_run(wire, run, body)

    def _answered_run(self, wire: Wire, run: dict[str, Any], body: bytes) -> None:
        path = wire.target.replace(NS, self.namespace.encode()).partition(b"?")[0].decode("latin-1")
        assert run["namespace"] == self.namespace, run
        if path == self.hook.path:
            assert wire.signature == "valid", f"a Run for a delivery not validly signed: {wire}"
            key = webhook_idempotency_key(f"webhook:{self.namespace}/{self.hook.name}", body_sha256(body))
            assert run["name"] == run_name(trigger_name=self.hook.name, idempotency_key=key), run
            self.answered[run["name"]] = "signed delivery"
        else:
            assert path == "/v1/runs" and wire.authorization == "caller", f"a Run for an unauthorised request: {wire}"
            self.answered[run["name"]] = "authorised manual run"


def _frame(framing: str, headers: list[tuple[bytes, bytes]], body: bytes) -> tuple[list[tuple[bytes, bytes]], bytes]:
    length = str(len(body)).encode()
    chunked = (f"{len(body):x}\r\n".encode() + body + b"\r\n" if body else b"") + b"0\r\n\r\n"
    framed: dict[str, tuple[list[tuple[bytes, bytes]], bytes]] = {
        "length": ([(b"content-length", length)], body),
        "none": ([], body),
        "chunked": ([(b"transfer-encoding", b"chunked")], chunked),
        "broken-chunks": ([(b"transfer-encoding", b"chunked")], b"zz\r\n" + body + b"\r\n0\r\n\r\n"),
        "short-length": ([(b"content-length", str(len(body) // 2).encode())], body),
        "bad-length": ([(b"content-length", b"12abc")], body),
        "two-lengths": ([(b"content-length", length), (b"content-length", length + b"0")], body),
        "both": ([(b"content-length", length), (b"transfer-encoding", b"chunked")], chunked),
    }
    extra, payload = framed[framing]
    return headers + extra, payload


# -- strategies ------------------------------------------------------------------------------------------------------


def mostly(valid: st.SearchStrategy[Any], hostile: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`valid` six times in seven: a request needs most of its parts right to get past the parser to a handler."""
    return st.integers(min_value=1, max_value=7).flatmap(lambda draw: hostile if draw == 7 else valid)


_NO_LINE_BREAKS = st.binary(min_size=1, max_size=24).filter(lambda b: b"\r" not in b and b"\n" not in b)
_TOKEN = st.text(alphabet="!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", min_size=1)
_ENDPOINTS = [
    HOOK,
    b"/v1/hooks/@ns@/absent",
    b"/v1/hooks/@ns@",
    b"/v1/hooks/@ns@/fuzz/extra",
    b"/v1/runs",
    b"/healthz",
    b"/readyz",
    b"/metrics",
    b"/",
    b"/unknown",
]
_SUFFIXES = [b"", b"", b"/", b"?a=1", b"?a=%ff%fe", b"%00", b"/..%2f..", b"%2Fx", b"?" + b"q" * 300]
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=8,
)


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


_MANUAL_BODY = st.builds(
    lambda kind, name, params: _json(
        {"triggerRef": {"kind": kind, "name": name, "namespace": "@ns@"}, "params": params}
    ),
    mostly(st.sampled_from(["CronTrigger", "WebhookTrigger"]), st.just("Nope") | _TOKEN),
    mostly(st.sampled_from(["target", "fuzz"]), st.just("absent") | _TOKEN),
    st.dictionaries(st.text(max_size=8), _JSON, max_size=4),
)
_BODIES = st.one_of(
    st.binary(max_size=200),
    _JSON.map(_json),
    _MANUAL_BODY,
    st.sampled_from([HOOK_CAP, HOOK_CAP + 1, (64 << 10) + 1, (1 << 20) + 1]).map(lambda size: b"a" * size),
)


_ANY_PART: dict[str, st.SearchStrategy[Any]] = {
    "method": mostly(
        st.sampled_from([b"POST", b"POST", b"GET", b"PUT", b"DELETE", b"HEAD", b"OPTIONS", b"PATCH"]),
        _TOKEN.map(str.encode) | _NO_LINE_BREAKS,
    ),
    "target": mostly(
        st.builds(bytes.__add__, st.sampled_from(_ENDPOINTS), mostly(st.just(b""), st.sampled_from(_SUFFIXES))),
        st.sampled_from([b"*", b"http://127.0.0.1/healthz", b"healthz"]) | _NO_LINE_BREAKS,
    ),
    "version": mostly(st.just(b"HTTP/1.1"), st.sampled_from([b"HTTP/1.0", b"HTTP/2.0", b"HTTP/9.9", b"HTTX/1.1", b""])),
    "host": mostly(st.just(b"127.0.0.1"), st.none() | _NO_LINE_BREAKS),
    "content_type": mostly(
        st.sampled_from([b"application/json", b"application/json; charset=utf-8", b"APPLICATION/JSON"]),
        st.sampled_from([b"text/plain", b"multipart/form-data; boundary=x"]) | st.none() | _NO_LINE_BREAKS,
    ),
    "authorization": st.sampled_from(AUTHORIZATIONS),
    "idempotency_key": mostly(st.uuids().map(lambda key: str(key).encode()), st.none() | _NO_LINE_BREAKS),
    "signature": st.sampled_from(SIGNATURES),
    "headers": st.lists(
        mostly(
            st.tuples(_TOKEN.map(str.encode), st.sampled_from([b"", b"v", b"\xff\xfe", b"a b\tc"])),
            st.tuples(_NO_LINE_BREAKS, _NO_LINE_BREAKS)
            | st.sampled_from([4_000, 15_000, 17_000, 40_000]).map(lambda size: (b"x-huge", b"h" * size))
            | st.sampled_from([(b"expect", b"100-continue"), (b"upgrade", b"websocket"), (b"connection", b"close")]),
        ),
        max_size=3,
    ).map(tuple),
    "body": _BODIES,
    "framing": mostly(st.sampled_from(["length", "length", "chunked"]), st.sampled_from(FRAMINGS)),
    "cuts": st.lists(st.integers(min_value=1, max_value=3000), max_size=3).map(tuple),
    "pause": st.sampled_from([0.0, 0.0, 0.02, 0.1]),
}
WIRES = st.one_of(
    st.builds(Wire, **_ANY_PART),
    # Validly signed deliveries, hostile in everything else: the only requests that may create a webhook Run.
    st.builds(
        Wire,
        **{**_ANY_PART, "method": st.just(b"POST"), "target": st.just(_ENDPOINTS[0]), "signature": st.just("valid")},
    ),
    # Manual runs by a caller RBAC allows, hostile in everything else: the only other requests that may.
    st.builds(
        Wire,
        **{
            **_ANY_PART,
            "method": st.just(b"POST"),
            "target": st.just(b"/v1/runs"),
            "authorization": st.just("caller"),
            "body": mostly(_MANUAL_BODY, _BODIES),
        },
    ),
)


# -- the test --------------------------------------------------------------------------------------------------------

SIGNED = Wire(body=b'{"ref": "refs/heads/main"}', signature="valid")
MANUAL = Wire(
    target=b"/v1/runs",
    authorization="caller",
    idempotency_key=str(uuid.UUID(int=1)).encode(),
    body=b'{"triggerRef": {"kind": "CronTrigger", "name": "target", "namespace": "@ns@"}, "params": {"a": 1}}',
)

INFINITE = MANUAL.body.replace(b'"a": 1', b'"a": 1e999')
"""Valid JSON whose number parses to infinity, which JSON cannot carry on to the apiserver."""
BEYOND_INT64 = MANUAL.body.replace(b'"a": 1', b'"a": ' + b"9" * 30)
"""Valid JSON with an integer Kubernetes cannot store."""


def test_hostile_requests_get_no_5xx_json_errors_and_runs_only_when_signed_or_authorised(
    operators: Operators, control_plane: KubeCluster, kube_api: ApiClient, namespace: str, leak_watch: LeakWatch
) -> None:
    operator = operators.start("fuzz")
    hook = ready_hook(kube_api, namespace, "fuzz", leak_watch, maxBodyBytes=HOOK_CAP)
    create(kube_api, namespace, cron_trigger("target", "0 0 1 1 *"))
    target = Target(
        port=operator.port,
        namespace=namespace,
        hook=hook,
        caller=bearer(control_plane, kube_api, namespace, "caller", leak_watch, may_create_runs=True),
        stranger=bearer(control_plane, kube_api, namespace, "stranger", leak_watch, may_create_runs=False),
        leaks=leak_watch,
    )

    @settings(
        max_examples=250,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(wire=WIRES)
    @example(wire=SIGNED)  # the oracle sees success: a Run, counted below
    @example(wire=replace(SIGNED, framing="chunked", cuts=(10, 60, 200), pause=0.05))
    @example(wire=replace(SIGNED, body=b"a" * (HOOK_CAP + 1)))  # 413 from Content-Length
    @example(wire=replace(SIGNED, body=b"a" * (HOOK_CAP + 1), framing="chunked"))  # 413 while streaming
    @example(wire=replace(SIGNED, body=b"a" * (1 << 20), headers=((b"expect", b"100-continue"),)))
    @example(wire=replace(SIGNED, headers=((b"x-huge", b"h" * 17_000),)))  # a head too large, in one piece
    @example(wire=replace(SIGNED, headers=((b"x-huge", b"h" * 17_000),), cuts=(100,), pause=0.05))  # ... in two
    @example(wire=replace(SIGNED, headers=((b"x-\x01", b"v"),)))  # a control byte in a header name
    @example(wire=replace(SIGNED, headers=((b"x-a", b"\x00"),)))  # ... in a value
    @example(wire=replace(SIGNED, headers=((b"x-obs-text", b"\xff\xfe"),)))  # obs-text: allowed, signed: a Run
    @example(wire=replace(SIGNED, framing="broken-chunks"))
    @example(wire=replace(SIGNED, framing="broken-chunks", method=b"HEAD"))  # the 400 to a HEAD has no body
    @example(wire=replace(SIGNED, framing="both"))
    @example(wire=replace(SIGNED, framing="two-lengths"))
    @example(wire=replace(SIGNED, framing="bad-length"))
    @example(wire=replace(SIGNED, host=None))
    @example(wire=replace(SIGNED, content_type=b"text/plain"))
    @example(wire=replace(SIGNED, signature="forged"))
    @example(wire=replace(SIGNED, method=b"post"))
    @example(wire=Wire(method=b"GET", target=b"/healthz/", host=b"["))
    @example(wire=Wire(method=b"HEAD", target=b"/metrics", body=b""))
    @example(wire=Wire(method=b"OPTIONS", target=b"*", body=b""))
    @example(wire=Wire(method=b"PRI", target=b"*", version=b"HTTP/2.0", host=None, body=b"SM\r\n\r\n", framing="none"))
    @example(wire=Wire(method=b"GET", target=b"/healthz", version=b"", body=b""))
    @example(wire=Wire(method=b"GET", target=b"/h\xffalthz", body=b""))
    @example(wire=Wire(method=b"GET", target=b"/v1/hooks/@ns@%2Ffuzz/x?a=%ff", body=b""))
    @example(wire=MANUAL)  # authorised: a Run
    @example(wire=replace(MANUAL, body=MANUAL.body.replace(b'"a": 1', b'"a": 2')))  # same key, other body: 422
    @example(wire=replace(MANUAL, authorization="stranger"))
    @example(wire=replace(MANUAL, authorization="garbage"))
    @example(wire=replace(MANUAL, idempotency_key=None))
    @example(wire=replace(MANUAL, idempotency_key=b"not-a-uuid"))
    @example(wire=replace(MANUAL, body=MANUAL.body.replace(b'"a": 1', b'"a": ' + b"[" * 5000 + b"]" * 5000)))
    @example(wire=replace(MANUAL, idempotency_key=str(uuid.UUID(int=2)).encode(), body=INFINITE))
    @example(wire=replace(MANUAL, idempotency_key=str(uuid.UUID(int=3)).encode(), body=BEYOND_INT64))
    def one_request(wire: Wire) -> None:
        pieces, body = target.render(wire)
        answer = exchange(target.port, pieces, pause=wire.pause, timeout=10.0, head_request=wire.method == b"HEAD")
        target.check(wire, answer, body)

    one_request()

    runs = {run["metadata"]["name"] for run in list_runs(kube_api, namespace)}
    assert runs == set(target.answered), f"Runs listed {sorted(runs)}, answered {target.answered}"
    assert "signed delivery" in target.answered.values() and "authorised manual run" in target.answered.values()
    assert operator.returncode is None and operator.ready(), "the operator did not survive the fuzz"
    assert leak_watch.error_bodies > 100, "too few error answers: the fuzz hardly reached the endpoints"
    leak_watch.assert_none_leaked(operators)
