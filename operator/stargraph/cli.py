"""The `stargraph` command line (also installed as `kubectl-stargraph`).

Errors name the argument or field at fault and exit with status 2; a refused request exits with status 1 and the
server's reason.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import re
import signal
import sys
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

from stargraph import __version__

__all__ = ["main"]


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
    """Create a manual Run: with the user's kubeconfig, or through a server's `POST /v1/runs` with `--server`."""
    from stargraph.fires.keys import manual_idempotency_key

    kind, name = _parse_target(args.trigger)
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
        _fail(f"--server {args.server}: {exc}", status=1)
    is_json = response.headers.get("content-type", "").startswith("application/json")
    payload: dict[str, Any] = response.json() if is_json else {}
    if response.status_code >= 400:
        error = payload.get("error", {})
        _fail(f"{response.status_code} {error.get('reason', 'error')}: {error.get('message', response.text)}", status=1)
    return payload["run"]["namespace"], payload["run"]["name"], bool(payload.get("created"))


async def _run_via_kubeconfig(args: argparse.Namespace, body: dict[str, Any], key: str) -> tuple[str, str, bool]:
    from pydantic import ValidationError

    from stargraph.controller.kinds import BUILT_IN_KINDS
    from stargraph.k8s import KubeClient, KubeError, load_credentials
    from stargraph.models import describe_validation_error
    from stargraph.runs import PermanentSinkError, RunIndex, RunRequest, payload_sha256
    from stargraph.runs.kube_sink import KubeRunSink
    from stargraph.triggers.manual import ManualRunRequest, manual_event

    try:
        request = ManualRunRequest.model_validate(body)
    except ValidationError as exc:
        raise UsageError(describe_validation_error(exc)) from exc
    event = manual_event(request, idempotency_key=key, now=datetime.now(UTC))
    try:
        credentials = load_credentials(kubeconfig=args.kubeconfig, context=args.context)
        async with KubeClient(credentials) as api:
            result = await KubeRunSink(api, RunIndex(), kinds=BUILT_IN_KINDS).create(RunRequest(event=event))
    except PermanentSinkError as exc:
        _fail(f"{exc.reason}: {exc}", status=1)
    except KubeError as exc:
        _fail(str(exc), status=1)
    if result.run.payload_sha256 != payload_sha256(event.payload):
        _fail("--idempotency-key: already used for a run with different parameters; use a new key", status=1)
    return result.run.namespace, result.run.name, result.created


def _exit_cleanly(signum: int, frame: FrameType | None) -> NoReturn:
    raise SystemExit(0)


def cmd_operator(args: argparse.Namespace) -> int:
    """Run the operator: kopf watching the triggers, the triggers, and the HTTP server, in one process."""
    from stargraph.controller.operator import LeaderElection, OperatorConfig, create_operator_app
    from stargraph.k8s import ConfigError, load_credentials
    from stargraph.logs import configure_logging
    from stargraph.serve.server import serve

    configure_logging(level=args.log_level, json=args.log_format == "json")
    try:
        credentials = load_credentials(kubeconfig=args.kubeconfig, context=args.context)
    except ConfigError as exc:
        raise UsageError(f"--kubeconfig: {exc}") from exc
    election = None
    if args.leader_elect:
        lease_namespace = args.leader_election_namespace or os.environ.get("POD_NAMESPACE")
        if not lease_namespace:
            raise UsageError("--leader-election-namespace: required with --leader-elect (or set POD_NAMESPACE)")
        election = LeaderElection(
            namespace=lease_namespace,
            name=args.leader_election_name,
            lease_duration=args.leader_election_lease_duration,
            renew_deadline=args.leader_election_renew_deadline,
            retry_period=args.leader_election_retry_period,
        )
        if not election.retry_period < election.renew_deadline < election.lease_duration:
            raise UsageError("--leader-election-*: need retry period < renew deadline < lease duration")
    config = OperatorConfig(
        credentials=credentials,
        namespaces=args.watch_namespace,
        leader_election=election,
        api_timeout=args.api_timeout,
    )
    # Each Run creation allocates hundreds of short-lived objects (request, response, event); with the default
    # thresholds the cyclic collector runs every few creations and, in a burst of fires, takes a fifth of the CPU.
    gc.set_threshold(10_000, 20, 20)
    app = create_operator_app(config)
    # uvicorn ends a graceful shutdown by re-raising the SIGTERM it caught, under the handler that was installed
    # before it started: with the default one the process would die "killed by SIGTERM" (status 143) after a clean
    # drain. SIGTERM is how Kubernetes stops a Pod; a completed shutdown is a success, so exit 0.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    serve(app, host=args.host, port=args.port, drain_seconds=args.drain_seconds, access_log=False)
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


_CRONJOB_REF = re.compile(r"^(?:cronjob|cronjobs|cj)(?:\.batch)?/(.+)$", re.IGNORECASE)
_FIELD_MANAGER = "kubectl-stargraph"


def cmd_convert(args: argparse.Namespace) -> int:
    """Write the CronTrigger of each CronJob (files, `-`, or cronjob/NAME); with --apply, switch over in the cluster."""
    import yaml

    from stargraph.triggers.cronjob import ConversionError, convert_cronjob, cronjobs_in

    in_cluster = [_CRONJOB_REF.match(source) for source in args.sources]
    needs_cluster = (
        args.apply
        or args.dry_run
        or any(ref and not Path(source).exists() for ref, source in zip(in_cluster, args.sources, strict=True))
    )
    manifests: list[tuple[str, Any]] = []
    for source, ref in zip(args.sources, in_cluster, strict=True):
        if ref and not Path(source).exists():
            manifests.append((source, ref[1]))  # fetched below, with the cluster client
            continue
        try:
            text = sys.stdin.read() if source == "-" else Path(source).read_text()
            documents = [doc for doc in yaml.safe_load_all(text) if doc is not None]
        except (OSError, yaml.YAMLError) as exc:
            raise UsageError(f"{source}: {exc}") from exc
        for index, document in enumerate(documents):
            try:
                manifests += [(f"{source}#{index}", cronjob) for cronjob in cronjobs_in(document, where=source)]
            except ConversionError as exc:
                raise UsageError(str(exc)) from exc
    if needs_cluster:
        return asyncio.run(_convert_in_cluster(args, manifests))
    triggers = []
    for where, manifest in manifests:
        try:
            conversion = convert_cronjob(manifest)
        except ConversionError as exc:
            raise UsageError(f"{where}: {exc}") from exc
        for note in conversion.notes:
            print(f"stargraph: warning: {where}: {note}", file=sys.stderr)
        triggers.append(conversion.trigger)
    print(yaml.safe_dump_all(triggers, sort_keys=False), end="")
    return 0


async def _convert_in_cluster(args: argparse.Namespace, sources: list[tuple[str, Any]]) -> int:
    """Read cronjob/NAME sources from the cluster; with --apply (or --dry-run) apply each CronTrigger and suspend
    its CronJob."""
    import yaml

    from stargraph.api.v1alpha1 import GROUP, VERSION
    from stargraph.k8s import ConfigError, KubeClient, KubeError, NotFound, load_credentials, path
    from stargraph.triggers.cronjob import ConversionError, convert_cronjob

    try:
        credentials = load_credentials(kubeconfig=args.kubeconfig, context=args.context)
    except ConfigError as exc:
        raise UsageError(f"--kubeconfig: {exc}") from exc
    dry_run = {"dryRun": "All"} if args.dry_run else {}
    verb = "would be " if args.dry_run else ""
    triggers = []
    async with KubeClient(credentials) as api:
        for where, source in sources:
            try:
                manifest = source
                if isinstance(source, str):
                    cronjob_path = path(
                        group="batch",
                        version="v1",
                        plural="cronjobs",
                        namespace=args.namespace or "default",
                        name=source,
                    )
                    manifest = await api.get(cronjob_path)
                conversion = convert_cronjob(manifest)
            except ConversionError as exc:
                raise UsageError(f"{where}: {exc}") from exc
            except KubeError as exc:
                _fail(f"{where}: {exc}", status=1)
            for note in conversion.notes:
                print(f"stargraph: warning: {where}: {note}", file=sys.stderr)
            trigger = conversion.trigger
            if args.namespace and "namespace" not in trigger["metadata"]:
                trigger["metadata"]["namespace"] = args.namespace
            triggers.append(trigger)
            if not (args.apply or args.dry_run):
                continue
            namespace, name = trigger["metadata"].get("namespace") or "default", trigger["metadata"]["name"]
            trigger_path = path(group=GROUP, version=VERSION, plural="crontriggers", namespace=namespace, name=name)
            suspend_path = path(group="batch", version="v1", plural="cronjobs", namespace=namespace, name=name)
            # The CronTrigger first, then the CronJob suspended: a fire due in between runs twice, none is lost.
            try:
                await api.patch(
                    trigger_path,
                    {**trigger, "metadata": {**trigger["metadata"], "namespace": namespace}},
                    patch_type="apply",
                    params={"fieldManager": _FIELD_MANAGER, **dry_run},
                )
                print(f"crontrigger.stargraph.io/{name} {verb}applied in {namespace}", file=sys.stderr)
                try:
                    await api.patch(suspend_path, {"spec": {"suspend": True}}, params=dry_run)
                    print(f"cronjob.batch/{name} {verb}suspended in {namespace}", file=sys.stderr)
                except NotFound:
                    print(f"stargraph: warning: {where}: no cronjob {namespace}/{name} to suspend", file=sys.stderr)
            except KubeError as exc:
                _fail(f"{where}: {exc}", status=1)
    print(yaml.safe_dump_all(triggers, sort_keys=False), end="")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the triggers from a YAML file with an in-memory Run sink (no cluster): for trying triggers locally."""
    from stargraph.logs import configure_logging
    from stargraph.serve import create_app
    from stargraph.serve.config import load_serve_config
    from stargraph.serve.server import serve

    configure_logging(level=args.log_level)
    try:
        deps = load_serve_config(Path(args.config)) if args.config else {}
    except ValueError as exc:
        raise UsageError(f"--config {args.config}: {exc}") from exc
    app = create_app(deps=deps)
    serve(app, host=args.host, port=args.port, access_log=True)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stargraph", description="Triggers that become exactly one Run per fire.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

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
    run.add_argument("--kubeconfig", default=None, help="default: $KUBECONFIG or ~/.kube/config")
    run.add_argument("--context", default=None)
    run.add_argument("-o", "--output", choices=["name", "json"], default="name")
    run.set_defaults(func=cmd_run)

    nxt = commands.add_parser("next", help="show the next fire times of a cron schedule")
    nxt.add_argument(
        "schedule", help='e.g. "*/5 * * * *" or "@hourly" (as a CronJob takes it), or 6 fields with seconds first'
    )
    nxt.add_argument("--time-zone", default="UTC")
    nxt.add_argument("-c", "--count", type=int, default=5)
    nxt.set_defaults(func=cmd_next)

    convert = commands.add_parser(
        "convert",
        help="write the CronTrigger of each CronJob; with --apply, create it and suspend the CronJob",
        description="Reads CronJob manifests (files, - for stdin, or cronjob/NAME from the cluster) and writes "
        "CronTrigger YAML that behaves the same; what does not carry over is said on stderr, naming the field.",
    )
    convert.add_argument("sources", nargs="+", metavar="FILE|-|cronjob/NAME")
    convert.add_argument("-n", "--namespace", default=None, help="of cronjob/NAME, and of manifests without one")
    convert.add_argument("--apply", action="store_true", help="apply each CronTrigger, then suspend its CronJob")
    convert.add_argument(
        "--dry-run",
        action="store_true",
        help="say what --apply would change (the apiserver checks it; nothing changes)",
    )
    convert.add_argument("--kubeconfig", default=None, help="default: $KUBECONFIG or ~/.kube/config")
    convert.add_argument("--context", default=None)
    convert.set_defaults(func=cmd_convert)

    op = commands.add_parser("operator", help="run the operator (watches triggers, serves webhooks and /v1/runs)")
    op.add_argument("--kubeconfig", default=None, help="default: in-cluster, else $KUBECONFIG or ~/.kube/config")
    op.add_argument("--context", default=None)
    op.add_argument(
        "--watch-namespace",
        action="append",
        default=[],
        metavar="NS",
        help="watch only this namespace (repeatable); default: the whole cluster",
    )
    op.add_argument(
        "--leader-elect",
        action="store_true",
        help="fire cron schedules only while holding a Lease (run several replicas safely)",
    )
    op.add_argument("--leader-election-namespace", default=None, help="where the Lease lives; default $POD_NAMESPACE")
    op.add_argument("--leader-election-name", default="stargraph-operator")
    op.add_argument("--leader-election-lease-duration", type=float, default=15.0, metavar="SECONDS")
    op.add_argument(
        "--leader-election-renew-deadline",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="a leader that has not renewed for this long stops firing (must be below the lease duration)",
    )
    op.add_argument("--leader-election-retry-period", type=float, default=2.0, metavar="SECONDS")
    op.add_argument("--host", default="0.0.0.0")
    op.add_argument("--port", type=int, default=8080)
    op.add_argument(
        "--api-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="how long one Kubernetes API request may take before it is given up and retried",
    )
    op.add_argument("--drain-seconds", type=int, default=20, help="at SIGTERM, how long in-flight work may take")
    op.add_argument("--log-level", default="INFO")
    op.add_argument("--log-format", choices=["json", "console"], default="json")
    op.set_defaults(func=cmd_operator)

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
