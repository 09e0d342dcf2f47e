"""HTTP/1.1 on a raw socket to 127.0.0.1: requests go on the wire byte for byte, answers are parsed by hand.

For what no client library sends: invalid header bytes, a lying Content-Length, broken chunking, a request
delivered in slow pieces. `exchange()` sends the pieces of one request (pausing between them) and returns the
server's first answer, skipping `100 Continue`, or None if the server closed without one.

    answer = exchange(port, [b"GET /healthz HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n"])
    assert answer is not None and answer.status == 200
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Answer", "exchange"]

_NO_BODY = {204, 304}


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    """Lower-case names; of a repeated header, the last value."""
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class _Reader:
    """Buffered reads from a socket with one deadline for the whole answer."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock = sock
        self._deadline = deadline
        self._buffer = b""
        self.closed = False

    def _fill(self) -> bool:
        remaining = self._deadline - time.monotonic()
        if self.closed or remaining <= 0:
            return False
        self._sock.settimeout(remaining)
        try:
            data = self._sock.recv(65536)
        except (TimeoutError, ConnectionResetError):
            data = b""
        if not data:
            self.closed = True
            return False
        self._buffer += data
        return True

    def until(self, marker: bytes) -> bytes | None:
        while marker not in self._buffer:
            if not self._fill():
                return None
        found, _, self._buffer = self._buffer.partition(marker)
        return found

    def exactly(self, size: int) -> bytes | None:
        while len(self._buffer) < size:
            if not self._fill():
                return None
        found, self._buffer = self._buffer[:size], self._buffer[size:]
        return found

    def rest(self) -> bytes:
        while self._fill():
            pass
        found, self._buffer = self._buffer, b""
        return found


def _send(sock: socket.socket, pieces: Sequence[bytes], pause: float) -> None:
    for index, piece in enumerate(pieces):
        if index and pause:
            time.sleep(pause)
        try:
            sock.sendall(piece)
        except (BrokenPipeError, ConnectionResetError):
            return  # the server has answered early, or given up on us: its answer (if any) is still readable


def _read_answer(reader: _Reader, *, head_request: bool) -> Answer | None:
    while True:
        head = reader.until(b"\r\n\r\n")
        if head is None:
            return None
        status_line, *lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if status >= 200:
            break
    if head_request or status in _NO_BODY:
        return Answer(status, headers, b"")
    if "content-length" not in headers:
        return Answer(status, headers, reader.rest())
    body = reader.exactly(int(headers["content-length"]))
    return None if body is None else Answer(status, headers, body)


def exchange(
    port: int, pieces: Sequence[bytes], *, pause: float = 0.0, timeout: float = 5.0, head_request: bool = False
) -> Answer | None:
    """Send `pieces` (sleeping `pause` s between them) and read the first final answer within `timeout` s.

    `head_request`: the request was a HEAD, so the answer has no body whatever its Content-Length says.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        deadline = time.monotonic() + timeout
        _send(sock, pieces, pause)
        return _read_answer(_Reader(sock, deadline), head_request=head_request)
