"""`stargraph operator`: kopf watching the triggers, the triggers themselves, and the HTTP server, in one process."""

from __future__ import annotations

import argparse
import gc
import os
import signal
from types import FrameType
from typing import NoReturn

from stargraph.cli.common import UsageError, add_kubeconfig_arguments

__all__ = ["register"]


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


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    op = commands.add_parser("operator", help="run the operator (watches triggers, serves webhooks and /v1/runs)")
    add_kubeconfig_arguments(op, in_cluster=True)
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
