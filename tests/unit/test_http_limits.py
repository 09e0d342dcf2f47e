"""The HTTP server's limits, on a real uvicorn on loopback with short limits: each is enforced and answered in JSON.

The limits are the protocol's class attribute, so a subclass with short ones makes each cut-off take a second at
most; the fault tests (tests/faults/test_slow_clients.py) hold the running operator to the real ones.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
import uvicorn

from stargraph.serve import create_app
from stargraph.serve.limits import HttpLimits
from stargraph.serve.server import LimitedH11Protocol
from stargraph.triggers.signatures import SignatureScheme, sign
from stargraph.triggers.specs import WebhookSpec
from tests.support.app import serving_in_thread
from tests.support.operator import free_port
from tests.support.rawhttp import Answer, exchange


class Quick(LimitedH11Protocol):
    limits = HttpLimits(
        header_timeout=1.0, body_timeout=0.5, keep_alive_timeout=1, max_head_bytes=2048, max_connections=3
    )


SECRET = "a-secret-for-the-limits"
HOOK = "/v1/hooks/default/hook"
CAP = 100


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    free = free_port()
    spec = WebhookSpec(name="hook", secrets=(SECRET,), max_body_bytes=CAP)
    app = create_app(plugins=["webhook"], deps={"webhook_specs": [spec]}, body_timeout=Quick.limits.body_timeout)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=free,
        http=Quick,
        ws="none",
        h11_max_incomplete_event_size=Quick.limits.max_head_bytes,
        timeout_keep_alive=Quick.limits.keep_alive_timeout,
        log_level="warning",
        lifespan="on",
    )
    with serving_in_thread(config):
        yield free


def delivery(body: bytes, *, length: int | None = None) -> bytes:
    """A signed delivery's head (ending in the blank line) for `body`, declaring `length` bytes."""
    headers = {
        "Host": "127.0.0.1",
        "Content-Type": "application/json",
        "Content-Length": str(len(body) if length is None else length),
        **sign(scheme=SignatureScheme.HMAC_SHA256, key=SECRET.encode(), body=body),
    }
    return (
        f"POST {HOOK} HTTP/1.1\r\n".encode() + b"".join(f"{k}: {v}\r\n".encode() for k, v in headers.items()) + b"\r\n"
    )


def error(answer: Answer | None, status: int) -> str:
    """The reason of a JSON error answer with `status`."""
    assert answer is not None, "no answer"
    assert answer.status == status, answer
    assert answer.headers["content-type"] == "application/json", answer.headers
    body = answer.json()
    assert set(body) == {"error"} and set(body["error"]) == {"reason", "message"}, body
    reason: str = body["error"]["reason"]
    return reason


def closed_after(sock: socket.socket, *, trickle: bytes = b"", within: float) -> tuple[float, bytes]:
    """Read (sending `trickle` a byte at a time meanwhile) until the server closes: (seconds taken, bytes read)."""
    started, received = time.monotonic(), b""
    sock.settimeout(0.1)
    while time.monotonic() - started < within:
        try:
            data = sock.recv(65536)
        except TimeoutError:
            if trickle:
                sock.sendall(trickle[:1])
            continue
        if not data:
            return time.monotonic() - started, received
        received += data
    raise AssertionError(f"still open after {within:g}s; received {received!r}")


def test_a_request_h11_refuses_is_answered_400_in_json(port: int) -> None:
    answer = exchange(port, [b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header: x\r\n\r\n"])
    assert error(answer, 400) == "malformed_request"
    assert answer is not None and answer.headers["connection"] == "close"


@pytest.mark.parametrize("pause", [0.0, 0.05], ids=["in-one-piece", "unfinished-and-growing"])
def test_a_head_over_the_limit_is_431_however_it_arrives(port: int, pause: float) -> None:
    huge = b"X-Huge: " + b"h" * 4096 + b"\r\n"
    pieces = (
        [b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + huge, b"\r\n"]
        if pause
        else [b"GET /healthz HTTP/1.1\r\n" + huge + b"Host: x\r\n\r\n"]
    )
    assert error(exchange(port, pieces, pause=pause), 431) == "headers_too_large"


def test_a_head_that_never_ends_gets_408_at_the_header_timeout_and_a_silent_connection_is_closed(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        took, received = closed_after(sock, trickle=b"X-Slow: yes", within=5)
    assert Quick.limits.header_timeout - 0.05 <= took <= Quick.limits.header_timeout + 1, took
    assert received.startswith(b"HTTP/1.1 408 ") and b'"request_timeout"' in received, received
    with socket.create_connection(("127.0.0.1", port)) as sock:
        took, received = closed_after(sock, within=5)
    assert Quick.limits.header_timeout - 0.05 <= took <= Quick.limits.header_timeout + 1, took
    assert received == b""


def test_a_body_slower_than_the_body_timeout_gets_408_and_the_connection_closed(port: int) -> None:
    body = b'{"slow": true}'
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(delivery(body))
        took, received = closed_after(sock, trickle=body, within=5)
    assert Quick.limits.body_timeout - 0.05 <= took <= Quick.limits.body_timeout + 1, took
    assert received.startswith(b"HTTP/1.1 408 ") and b'"request_timeout"' in received, received


def test_a_body_refused_before_it_arrived_is_dropped_for_the_keep_alive_timeout_then_cut(port: int) -> None:
    body = b"x" * (CAP + 1)
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(delivery(body))
        took, received = closed_after(sock, trickle=body, within=5)
    assert Quick.limits.keep_alive_timeout - 0.05 <= took <= Quick.limits.keep_alive_timeout + 1, took
    assert received.startswith(b"HTTP/1.1 413 "), received


def test_beyond_max_connections_requests_get_503_with_retry_after(port: int) -> None:
    held = [socket.create_connection(("127.0.0.1", port)) for _ in range(Quick.limits.max_connections)]
    try:
        answer = exchange(port, [b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"])
    finally:
        for sock in held:
            sock.close()
    assert error(answer, 503) == "over_capacity"
    assert answer is not None and answer.headers["retry-after"] == "1"
    time.sleep(0.2)  # the held connections are gone
    again = exchange(port, [b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"])
    assert again is not None and again.status == 200, again
