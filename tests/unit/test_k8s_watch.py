"""The watch stream parser, fed the exact lines kube-apiserver 1.37 sends (captured from the test control plane)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from stargraph.k8s import ApiError, Expired, ProtocolError, WatchEvent, WatchExpired
from stargraph.k8s.watch import decode_event, split_lines

EXPIRED = (
    b'{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
    b'"message":"too old resource version: 1 (232)","reason":"Expired","code":410}}'
)
BOOKMARK = b'{"type":"BOOKMARK","object":{"kind":"Probe","apiVersion":"x.io/v1","metadata":{"resourceVersion":"232"}}}'
ADDED = (
    b'{"type":"ADDED","object":{"kind":"ConfigMap","apiVersion":"v1",'
    b'"metadata":{"name":"c","namespace":"n","resourceVersion":"240"},"data":{"k":"v"}}}'
)


def test_changes_and_bookmarks_decode_to_events() -> None:
    assert decode_event(ADDED) == WatchEvent(
        "ADDED",
        {
            "kind": "ConfigMap",
            "apiVersion": "v1",
            "metadata": {"name": "c", "namespace": "n", "resourceVersion": "240"},
            "data": {"k": "v"},
        },
    )
    assert decode_event(BOOKMARK).type == "BOOKMARK"
    assert decode_event(BOOKMARK).object["metadata"] == {"resourceVersion": "232"}


def test_error_event_with_code_410_is_watch_expired() -> None:
    with pytest.raises(WatchExpired) as error:
        decode_event(EXPIRED)
    assert isinstance(error.value, Expired)
    assert (error.value.status, error.value.reason) == (410, "Expired")
    assert error.value.message == "too old resource version: 1 (232)"


def test_other_error_events_raise_the_api_error() -> None:
    line = json.dumps(
        {
            "type": "ERROR",
            "object": {
                "kind": "Status",
                "status": "Failure",
                "message": "boom",
                "reason": "InternalError",
                "code": 500,
            },
        }
    ).encode()
    with pytest.raises(ApiError) as error:
        decode_event(line)
    assert not isinstance(error.value, Expired)
    assert (error.value.status, error.value.reason, error.value.message) == (500, "InternalError", "boom")


@pytest.mark.parametrize("line", [b"<html>", b"{}", b'{"type":"SURPRISE","object":{}}', b'{"type":"ADDED","object":1}'])
def test_lines_that_are_not_events_are_protocol_errors(line: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_event(line)


async def chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.mark.parametrize("size", [1, 7, 4096, 1 << 20])
async def test_lines_are_reassembled_across_any_chunking(size: int) -> None:
    # Over aiohttp's 128 KiB line limit, as large ConfigMaps and CRDs are.
    huge = b'{"type":"ADDED","object":{"data":"' + b"x" * 300_000 + b'"}}'
    stream = ADDED + b"\n" + huge + b"\n\n" + BOOKMARK + b"\n" + EXPIRED
    lines = [line async for line in split_lines(chunks(stream, size))]
    assert lines == [ADDED, huge, BOOKMARK, EXPIRED]
