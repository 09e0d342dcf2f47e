"""`stargraph operator`: kopf watching the triggers, the triggers themselves, and the HTTP server, in one process."""

from __future__ import annotations

import argparse
import gc
import os
import signal
import ssl
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, NoReturn

from stargraph.cli.common import UsageError, add_kubeconfig_arguments, kube_credentials

if TYPE_CHECKING:
    from stargraph.controller.operator import AdmissionWebhook

__all__ = ["register"]


def _exit_cleanly(signum: int, frame: FrameType | None) -> NoReturn:
    raise SystemExit(0)


def _admission(args: argparse.Namespace) -> AdmissionWebhook | None:
    """The admission webhook the TLS flags ask for; None without them."""
    from stargraph.controller.operator import AdmissionWebhook
    from stargraph.serve.tls import ReloadingCertificate

    if not 0 <= args.admission_port <= 65535:
        raise UsageError(f"--admission-port: {args.admission_port} is not a port number (0-65535)")
    if args.tls_cert_dir is not None:
        if args.tls_cert_file is not None or args.tls_key_file is not None:
            raise UsageError("--tls-cert-dir: give either it or --tls-cert-file and --tls-key-file, not both")
        cert_file, key_file = args.tls_cert_dir / "tls.crt", args.tls_cert_dir / "tls.key"
        flag = "--tls-cert-dir"
    elif args.tls_cert_file is None and args.tls_key_file is None:
        return None
    elif args.tls_cert_file is None or args.tls_key_file is None:
        given, missing = ("--tls-cert-file", "--tls-key-file")
        if args.tls_cert_file is None:
            given, missing = missing, given
        raise UsageError(f"{missing}: required with {given}")
    else:
        cert_file, key_file, flag = args.tls_cert_file, args.tls_key_file, "--tls-cert-file"
    try:
        certificate = ReloadingCertificate(cert_file, key_file)
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"{flag}: cannot load the certificate {cert_file} and key {key_file}: {exc}") from exc
    return AdmissionWebhook(certificate=certificate, host=args.host, port=args.admission_port)


def cmd_operator(args: argparse.Namespace) -> int:
    """Run the operator: kopf watching the triggers, the triggers, and the HTTP server, in one process."""
    from stargraph.controller.operator import LeaderElection, OperatorConfig, create_operator_app
    from stargraph.logs import configure_logging
    from stargraph.serve.server import serve

    admission = _admission(args)
    configure_logging(level=args.log_level, json=args.log_format == "json")
    credentials = kube_credentials(args)
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
        admission=admission,
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
        "--admission-port",
        type=int,
        default=9443,
        metavar="PORT",
        help="HTTPS port of the validating admission webhook (POST /validate); served only with a certificate",
    )
    op.add_argument(
        "--tls-cert-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="the webhook's certificate as a kubernetes.io/tls Secret mounts it: DIR/tls.crt and DIR/tls.key "
        "(re-read when they change)",
    )
    op.add_argument("--tls-cert-file", type=Path, default=None, metavar="FILE", help="the webhook's certificate (PEM)")
    op.add_argument("--tls-key-file", type=Path, default=None, metavar="FILE", help="its private key (PEM)")
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
