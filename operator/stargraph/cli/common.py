"""What every command shares: usage errors, the exit statuses, trigger references and kubeconfig arguments.

Errors name the argument or field at fault and exit with status 2; a refused request exits with status 1 and the
server's reason.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from stargraph.k8s import Credentials

__all__ = ["UsageError", "add_kubeconfig_arguments", "fail", "kube_credentials", "parse_target"]


class UsageError(Exception):
    """A bad argument; the message names it."""


def fail(message: str, status: int = 2) -> NoReturn:
    print(f"stargraph: error: {message}", file=sys.stderr)
    raise SystemExit(status)


_KIND_ALIASES = {
    "crontrigger": "CronTrigger",
    "crontriggers": "CronTrigger",
    "ct": "CronTrigger",
    "webhooktrigger": "WebhookTrigger",
    "webhooktriggers": "WebhookTrigger",
    "wt": "WebhookTrigger",
}


def parse_target(target: str, *, argument: str = "TRIGGER") -> tuple[str, str]:
    """KIND/NAME (`crontrigger/nightly`, `ct/nightly`, `WebhookTrigger/push`) as (Kind, name)."""
    kind, sep, name = target.partition("/")
    if not sep or not kind or not name:
        raise UsageError(f"{argument}: expected KIND/NAME such as crontrigger/nightly, got {target!r}")
    return _KIND_ALIASES.get(kind.lower(), kind), name


def add_kubeconfig_arguments(parser: argparse.ArgumentParser, *, in_cluster: bool = False) -> None:
    default = "in-cluster, else $KUBECONFIG or ~/.kube/config" if in_cluster else "$KUBECONFIG or ~/.kube/config"
    parser.add_argument("--kubeconfig", default=None, help=f"default: {default}")
    parser.add_argument("--context", default=None)


def kube_credentials(args: argparse.Namespace) -> Credentials:
    """The credentials `--kubeconfig`/`--context` name; one that cannot be loaded is a usage error naming the flag."""
    from stargraph.k8s import ConfigError, load_credentials

    try:
        return load_credentials(kubeconfig=args.kubeconfig, context=args.context)
    except ConfigError as exc:
        raise UsageError(f"--kubeconfig: {exc}") from exc
