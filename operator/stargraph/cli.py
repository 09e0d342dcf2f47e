"""The `stargraph` command line (also installed as `kubectl-stargraph`).

Errors name the argument or field at fault and exit with status 2; a refused request exits with status 1 and the
server's reason.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

__all__ = ["main"]

DEFAULT_SERVER = "http://127.0.0.1:8080"


class UsageError(Exception):
    """A bad argument; the message names it."""


def _fail(message: str, status: int = 2) -> NoReturn:
    print(f"stargraph: error: {message}", file=sys.stderr)
    raise SystemExit(status)


def _parse_params(pairs: Sequence[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--param: expected KEY=VALUE, got {pair!r}")
        params[key] = value
    return params


def _parse_target(target: str) -> tuple[str, str]:
    kind, sep, name = target.partition("/")
    aliases = {
        "crontrigger": "CronTrigger",
        "ct": "CronTrigger",
        "webhooktrigger": "WebhookTrigger",
        "wt": "WebhookTrigger",
    }
    if not sep or not kind or not name:
        raise UsageError(f"TRIGGER: expected KIND/NAME such as crontrigger/nightly, got {target!r}")
    return aliases.get(kind.lower(), kind), name


def cmd_run(args: argparse.Namespace) -> int:
    """Request a manual run through the server's `POST /v1/runs`."""
    import httpx

    from stargraph.triggers.keys import manual_idempotency_key

    kind, name = _parse_target(args.trigger)
    params = _parse_params(args.param)
    try:
        key = manual_idempotency_key(args.idempotency_key) if args.idempotency_key else str(uuid.uuid4())
    except ValueError as exc:
        raise UsageError(f"--idempotency-key: {exc}") from exc
    body = {"triggerRef": {"kind": kind, "name": name, "namespace": args.namespace}, "params": params}
    headers = {"Idempotency-Key": key, "Content-Type": "application/json"}
    if args.token:
        headers["Authorization"] = f"Bearer {args.token}"
    try:
        response = httpx.post(f"{args.server.rstrip('/')}/v1/runs", json=body, headers=headers, timeout=30.0)
    except httpx.HTTPError as exc:
        _fail(f"--server {args.server}: {exc}", status=1)
    payload: dict[str, Any] = (
        response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
    )
    if response.status_code >= 400:
        error = payload.get("error", {})
        _fail(f"{response.status_code} {error.get('reason', 'error')}: {error.get('message', response.text)}", status=1)
    run = payload["run"]
    print(f"{run['namespace']}/{run['name']}" if args.output == "name" else json.dumps(payload))
    return 0


def cmd_next(args: argparse.Namespace) -> int:
    """Print the next fire times of a schedule, in its time zone and in UTC."""
    from stargraph.triggers.cron_schedule import CronSchedule, ScheduleError

    try:
        schedule = CronSchedule.parse(args.schedule, args.time_zone)
    except ScheduleError as exc:
        raise UsageError(str(exc)) from exc
    print(schedule.explain())
    fires = schedule.fires_after(datetime.now(UTC))
    for _ in range(args.count):
        fire = next(fires)
        print(f"{fire.astimezone(schedule.zone).isoformat()}  ({fire.strftime('%Y-%m-%dT%H:%M:%SZ')})")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the triggers from a YAML file with an in-memory Run sink (no cluster): for trying triggers locally."""
    import uvicorn

    from stargraph.logs import configure_logging
    from stargraph.serve import create_app
    from stargraph.serve.config import load_serve_config

    configure_logging(level=args.log_level)
    try:
        deps = load_serve_config(Path(args.config)) if args.config else {}
    except ValueError as exc:
        raise UsageError(f"--config {args.config}: {exc}") from exc
    app = create_app(deps=deps)
    uvicorn.run(app, host=args.host, port=args.port, log_config=None, lifespan="on")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stargraph", description="Triggers that become exactly one Run per fire.")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="start a manual Run of a trigger")
    run.add_argument("trigger", metavar="KIND/NAME", help="e.g. crontrigger/nightly or webhooktrigger/github-push")
    run.add_argument("-n", "--namespace", default="default")
    run.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="a Run parameter (repeatable)")
    run.add_argument("--idempotency-key", help="a UUID; the same key returns the same Run (default: a new UUID)")
    run.add_argument("--server", default=os.environ.get("STARGRAPH_SERVER", DEFAULT_SERVER))
    run.add_argument("--token", default=os.environ.get("STARGRAPH_TOKEN"), help="bearer token for the server")
    run.add_argument("-o", "--output", choices=["name", "json"], default="name")
    run.set_defaults(func=cmd_run)

    nxt = commands.add_parser("next", help="show the next fire times of a cron schedule")
    nxt.add_argument("schedule", help='e.g. "*/5 * * * *" (5 fields, or 6 with seconds first)')
    nxt.add_argument("--time-zone", default="UTC")
    nxt.add_argument("-c", "--count", type=int, default=5)
    nxt.set_defaults(func=cmd_next)

    serve = commands.add_parser("serve", help="serve triggers from a YAML file with an in-memory Run sink")
    serve.add_argument("--config", help="YAML with `cron:` and `webhook:` spec lists")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--log-level", default="INFO")
    serve.set_defaults(func=cmd_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        status: int = args.func(args)
    except UsageError as exc:
        _fail(str(exc))
    return status


if __name__ == "__main__":
    raise SystemExit(main())
