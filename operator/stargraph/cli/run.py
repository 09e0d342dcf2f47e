"""`stargraph run KIND/NAME`: a manual Run of a trigger, with the user's kubeconfig or through `POST /v1/runs`."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import uuid
from datetime import UTC, datetime
from typing import Any

from stargraph.cli.common import UsageError, add_kubeconfig_arguments, fail, kube_credentials, parse_target

__all__ = ["register"]


def _parse_params(pairs: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--param: expected KEY=VALUE, got {pair!r}")
        params[key] = value
    return params


def cmd_run(args: argparse.Namespace) -> int:
    """Create a manual Run: with the user's kubeconfig, or through a server's `POST /v1/runs` with `--server`."""
    from stargraph.fires.keys import manual_idempotency_key

    kind, name = parse_target(args.trigger)
    params = _parse_params(args.param)
    try:
        key = manual_idempotency_key(args.idempotency_key) if args.idempotency_key else str(uuid.uuid4())
    except ValueError as exc:
        raise UsageError(f"--idempotency-key: {exc}") from exc
    body = {"triggerRef": {"kind": kind, "name": name, "namespace": args.namespace}, "params": params}
    if args.server:
        namespace, run, created = _run_via_server(args, body, key)
    else:
        namespace, run, created = asyncio.run(_run_via_kubeconfig(args, body, key))
    if args.output == "name":
        print(f"{namespace}/{run}")
    else:
        print(json.dumps({"run": {"name": run, "namespace": namespace}, "created": created}))
    return 0


def _run_via_server(args: argparse.Namespace, body: dict[str, Any], key: str) -> tuple[str, str, bool]:
    import httpx

    headers = {"Idempotency-Key": key, "Content-Type": "application/json"}
    if args.token:
        headers["Authorization"] = f"Bearer {args.token}"
    try:
        response = httpx.post(f"{args.server.rstrip('/')}/v1/runs", json=body, headers=headers, timeout=30.0)
    except httpx.HTTPError as exc:
        fail(f"--server {args.server}: {exc}", status=1)
    is_json = response.headers.get("content-type", "").startswith("application/json")
    payload: dict[str, Any] = response.json() if is_json else {}
    if response.status_code >= 400:
        error = payload.get("error", {})
        fail(f"{response.status_code} {error.get('reason', 'error')}: {error.get('message', response.text)}", status=1)
    return payload["run"]["namespace"], payload["run"]["name"], bool(payload.get("created"))


async def _run_via_kubeconfig(args: argparse.Namespace, body: dict[str, Any], key: str) -> tuple[str, str, bool]:
    from pydantic import ValidationError

    from stargraph.controller.kinds import BUILT_IN_KINDS
    from stargraph.k8s import KubeClient, KubeError
    from stargraph.models import describe_validation_error
    from stargraph.runs import PermanentSinkError, RunIndex, RunRequest, payload_sha256
    from stargraph.runs.kube_sink import KubeRunSink
    from stargraph.triggers.manual import ManualRunRequest, manual_event

    try:
        request = ManualRunRequest.model_validate(body)
    except ValidationError as exc:
        raise UsageError(describe_validation_error(exc)) from exc
    event = manual_event(request, idempotency_key=key, now=datetime.now(UTC))
    credentials = kube_credentials(args)
    try:
        async with KubeClient(credentials) as api:
            result = await KubeRunSink(api, RunIndex(), kinds=BUILT_IN_KINDS).create(RunRequest(event=event))
    except PermanentSinkError as exc:
        fail(f"{exc.reason}: {exc}", status=1)
    except KubeError as exc:
        fail(str(exc), status=1)
    if result.run.payload_sha256 != payload_sha256(event.payload):
        fail("--idempotency-key: already used for a run with different parameters; use a new key", status=1)
    return result.run.namespace, result.run.name, result.created


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = commands.add_parser("run", help="start a manual Run of a trigger")
    run.add_argument("trigger", metavar="KIND/NAME", help="e.g. crontrigger/nightly or webhooktrigger/github-push")
    run.add_argument("-n", "--namespace", default="default")
    run.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="a Run parameter (repeatable)")
    run.add_argument("--idempotency-key", help="a UUID; the same key returns the same Run (default: a new UUID)")
    run.add_argument(
        "--server",
        default=os.environ.get("STARGRAPH_SERVER"),
        help="post to this stargraph server's /v1/runs instead of creating the Run with your kubeconfig",
    )
    run.add_argument("--token", default=os.environ.get("STARGRAPH_TOKEN"), help="bearer token for --server")
    add_kubeconfig_arguments(run)
    run.add_argument("-o", "--output", choices=["name", "json"], default="name")
    run.set_defaults(func=cmd_run)
