"""Slow clients against the running operator: cut off by its explicit limits while other deliveries are served.

Ten connections send a request head that never ends (a byte every half second), ten send a complete head and then
trickle the body. Meanwhile a valid delivery is answered at once. Each slow connection is closed by the server
(the test records when its socket reads end-of-file) no sooner than the documented limit and within a small margin
after it: the head within `header_timeout` of the connection, the body within `body_timeout` of the head, each with
a 408 JSON answer. An idle kept-alive connection is closed after `keep_alive_timeout`, and so is one still sending
a body the server has already refused (413). The limits are the product's own (`stargraph.serve.limits`).
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from kubernetes.client import ApiClient

from stargraph.serve.limits import HTTP_LIMITS
from tests.e2e.conftest import Operators
from tests.e2e.kube import list_runs
from tests.faults.leaks import LeakWatch
from tests.faults.targets import Hook, ready_hook

pytestmark = pytest.mark.cluster

SLOW = 10
"""Connections of each kind: 20 held open at once."""
TRICKLE = 0.5
"""Seconds between the bytes a slow client sends."""
MARGIN = 2.5
"""Seconds a close may come after its limit: the server's timer, a busy 2-core machine, the test noticing."""


@dataclass
class Slow:
    """One connection of a slow client: what it sent up front, what it trickles, what it saw and when."""

    head: bytes
    drip: bytes
    """Sent a byte at a time, over and over; nothing if empty."""
    started: float = 0.0
    """When the connection was opened (`time.monotonic()`)."""
    sent_head: float = 0.0
    """When `head` had been handed to the kernel: a body's deadline starts after this."""
    closed: float | None = None
    """When the server closed it: the read that returned end-of-file (or a reset)."""
    received: bytes = b""

    def run(self, port: int, connected: threading.Barrier, give_up: float) -> None:
        self.started = time.monotonic()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(self.head)
            self.sent_head = time.monotonic()
            connected.wait()
            while time.monotonic() < give_up:
                readable, _, _ = select.select([sock], [], [], TRICKLE)
                if readable:
                    try:
                        data = sock.recv(65536)
                    except ConnectionResetError:
                        data = b""
                    if not data:
                        self.closed = time.monotonic()
                        return
                    self.received += data
                    continue
                if self.drip:
                    try:
                        sock.sendall(self.drip[:1])
                    except (BrokenPipeError, ConnectionResetError):
                        self.closed = time.monotonic()
                        return
                    self.drip = self.drip[1:] + self.drip[:1]

    def answer(self) -> tuple[int, dict[str, Any]]:
        """The status and JSON body of the one answer received."""
        head, _, body = self.received.partition(b"\r\n\r\n")
        return int(head.split(b" ", 2)[1]), json.loads(body)


def run_all(clients: list[Slow], port: int, *, give_up: float, meanwhile: Callable[[], None]) -> None:
    """Run every client in a thread of its own; once all have sent their heads, call `meanwhile`, then wait."""
    connected = threading.Barrier(len(clients) + 1)
    deadline = time.monotonic() + give_up
    threads = [threading.Thread(target=c.run, args=(port, connected, deadline), daemon=True) for c in clients]
    for thread in threads:
        thread.start()
    connected.wait(timeout=10)
    meanwhile()
    for thread in threads:
        thread.join(timeout=give_up + 5)


def cut_off_with_408(client: Slow, *, since: float, limit: float, leaks: LeakWatch) -> None:
    """The server closed `client` between `limit` and `limit + MARGIN` s after `since`, answering 408 in JSON."""
    assert client.closed is not None, f"never closed: {client.head[:60]!r}"
    held = client.closed - since
    assert limit - 0.05 <= held <= limit + MARGIN, f"closed after {held:.2f}s, the limit being {limit:g}s"
    leaks.error_body(client.received)
    status, error = client.answer()
    assert status == 408 and error["error"]["reason"] == "request_timeout", (status, error)


def delivery_head(hook: Hook, body: bytes, *, length: int) -> bytes:
    headers = {"Host": "127.0.0.1", "Content-Length": str(length), **hook.headers(body)}
    return f"POST {hook.path} HTTP/1.1\r\n".encode() + b"".join(f"{k}: {v}\r\n".encode() for k, v in headers.items())


def test_slow_heads_and_bodies_are_cut_off_at_their_limits_while_a_delivery_is_served(
    operators: Operators, kube_api: ApiClient, namespace: str, leak_watch: LeakWatch
) -> None:
    operator = operators.start("slow")
    hook = ready_hook(kube_api, namespace, "slow", leak_watch)
    body = json.dumps({"slow": "x" * 500}).encode()
    heads = [Slow(head=delivery_head(hook, body, length=len(body)), drip=b"X-Never-Ending: yes") for _ in range(SLOW)]
    bodies = [Slow(head=delivery_head(hook, body, length=len(body)) + b"\r\n", drip=body) for _ in range(SLOW)]
    delivered: list[httpx.Response] = []

    def deliver_while_all_are_open() -> None:
        assert all(c.closed is None for c in heads + bodies), "a slow connection was closed before the delivery"
        valid = b'{"fast": true}'
        delivered.append(httpx.post(operator.url + hook.path, content=valid, headers=hook.headers(valid), timeout=5))
        assert all(c.closed is None for c in heads + bodies), "the delivery was answered only after the cut-offs"

    run_all(
        heads + bodies,
        operator.port,
        give_up=HTTP_LIMITS.body_timeout + MARGIN + 5,
        meanwhile=deliver_while_all_are_open,
    )

    [response] = delivered
    assert response.status_code == 201, response.text
    for client in heads:
        cut_off_with_408(client, since=client.started, limit=HTTP_LIMITS.header_timeout, leaks=leak_watch)
    for client in bodies:
        cut_off_with_408(client, since=client.sent_head, limit=HTTP_LIMITS.body_timeout, leaks=leak_watch)
    runs = list_runs(kube_api, namespace)
    assert [run["metadata"]["name"] for run in runs] == [response.json()["run"]["name"]]
    assert operator.ready()
    leak_watch.assert_none_leaked(operators)


def test_idle_and_refused_connections_are_closed_after_the_keep_alive_timeout(
    operators: Operators, kube_api: ApiClient, namespace: str, leak_watch: LeakWatch
) -> None:
    operator = operators.start("keep-alive")
    hook = ready_hook(kube_api, namespace, "capped", leak_watch, maxBodyBytes=100)
    body = b'{"big": "' + b"x" * 1000 + b'"}'
    idle = Slow(head=b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", drip=b"")
    refused = Slow(head=delivery_head(hook, body, length=len(body)) + b"\r\n", drip=body)

    run_all([idle, refused], operator.port, give_up=HTTP_LIMITS.keep_alive_timeout + MARGIN + 5, meanwhile=lambda: None)

    limit = HTTP_LIMITS.keep_alive_timeout
    for what, client, status in (("idle", idle, 200), ("refused", refused, 413)):
        assert client.closed is not None, f"the {what} connection was never closed"
        held = client.closed - client.sent_head
        assert limit - 0.05 <= held <= limit + MARGIN, f"the {what} connection was closed after {held:.2f}s"
        assert client.answer()[0] == status, client.received
    leak_watch.error_body(refused.received)
    assert list_runs(kube_api, namespace) == []
    leak_watch.assert_none_leaked(operators)
