"""Benchmark: the webhook duplicate path through the whole app, as a ratio against a bare FastAPI endpoint.

One uvicorn server process serves both the real app (verify → key → scheduler dedupe, in-memory sink) and a bare
POST endpoint that only reads the body; one client process sends signed deliveries to each in alternating rounds,
so machine noise hits both alike. Every delivery after the first is a duplicate, which is the path a sender's
retries and redeliveries take. Also prints the cost of one signature verification for 1 KiB and 1 MiB bodies.

    python -m bench webhook_path        (or: python -m bench.webhook_path)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import timeit
from collections.abc import Sequence
from datetime import UTC, datetime

__all__ = ["main"]

SECRET = "bench-secret"
BODY = json.dumps({"ref": "refs/heads/main", "commits": [{"id": "a" * 40, "message": "x" * 700}]}).encode()
TARGET_RATIO = 0.8


def build_app() -> object:
    from starlette.requests import Request
    from starlette.responses import JSONResponse

    from stargraph.serve import create_app
    from stargraph.triggers.specs import WebhookSpec

    app = create_app(plugins=["webhook"], deps={"webhook_specs": [WebhookSpec(name="bench", secrets=(SECRET,))]})

    async def bare(request: Request) -> JSONResponse:
        await request.body()
        return JSONResponse({"run": {"name": "bare", "namespace": "default"}, "created": False})

    app.router.add_route("/bare", bare, methods=["POST"])
    return app


def serve(port: int) -> None:
    import uvicorn

    uvicorn.run(build_app(), host="127.0.0.1", port=port, log_level="warning", access_log=False)  # type: ignore[arg-type]


async def _round(url: str, headers: dict[str, str], *, seconds: float, concurrency: int) -> float:
    import aiohttp

    deadline = time.perf_counter() + seconds
    done = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            async with session.post(url, data=BODY, headers=headers) as response:
                await response.read()
                if response.status not in (200, 201):
                    raise RuntimeError(f"{url} answered {response.status}: {await response.text()}")
            done += 1

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        return done / (time.perf_counter() - started)


async def load(port: int, *, rounds: int, seconds: float, concurrency: int) -> tuple[list[float], list[float]]:
    from stargraph.triggers.signatures import SignatureScheme, parse_secret, sign

    key = parse_secret(SignatureScheme.HMAC_SHA256, SECRET)
    headers = {**sign(scheme=SignatureScheme.HMAC_SHA256, key=key, body=BODY), "content-type": "application/json"}
    base = f"http://127.0.0.1:{port}"
    await _round(f"{base}/v1/hooks/default/bench", headers, seconds=0.5, concurrency=concurrency)  # warm-up + first Run
    bare: list[float] = []
    hooks: list[float] = []
    for _ in range(rounds):
        bare.append(await _round(f"{base}/bare", headers, seconds=seconds, concurrency=concurrency))
        hooks.append(await _round(f"{base}/v1/hooks/default/bench", headers, seconds=seconds, concurrency=concurrency))
    return bare, hooks


def verification_cost_us(size: int) -> float:
    from stargraph.triggers.signatures import SignatureScheme, parse_secret, sign, verify

    key = parse_secret(SignatureScheme.GITHUB, SECRET)
    body = os.urandom(size)
    headers = sign(scheme=SignatureScheme.GITHUB, key=key, body=body)
    now = datetime.now(UTC)
    runs = max(20, 20_000 // max(1, size // 1024))
    seconds = min(
        timeit.repeat(
            lambda: verify(scheme=SignatureScheme.GITHUB, keys=[key], headers=headers, body=body, now=now),
            number=runs,
            repeat=5,
        )
    )
    return seconds / runs * 1e6


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_listening(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"benchmark server did not listen on 127.0.0.1:{port}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench.webhook_path", description=__doc__.splitlines()[0])
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each round")
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args(list(argv) if argv is not None else None)
    if args.serve:
        serve(args.serve)
        return

    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "bench.webhook_path", "--serve", str(port)])
    try:
        _wait_listening(port)
        bare, hooks = asyncio.run(load(port, rounds=args.rounds, seconds=args.seconds, concurrency=args.concurrency))
    finally:
        server.terminate()
        server.wait(timeout=10)

    bare_rps, hook_rps = statistics.median(bare), statistics.median(hooks)
    ratio = hook_rps / bare_rps
    print(f"webhook duplicate path: {hook_rps:8.0f} req/s  (rounds: {', '.join(f'{r:.0f}' for r in hooks)})")
    print(f"bare FastAPI endpoint:  {bare_rps:8.0f} req/s  (rounds: {', '.join(f'{r:.0f}' for r in bare)})")
    verdict = "meets" if ratio >= TARGET_RATIO else "BELOW"
    print(
        f"ratio: {ratio:.2f}x of bare ({verdict} the {TARGET_RATIO}x target); body {len(BODY)} B, c={args.concurrency}"
    )
    for size in (1024, 1 << 20):
        print(f"verify one {size // 1024:>4} KiB body: {verification_cost_us(size):10.1f} us")


if __name__ == "__main__":
    main(sys.argv[1:])
