"""The `stargraph` command line (also installed as `kubectl-stargraph`): one module per command.

Each command module has a `register(commands)` that adds its subparser and sets `func`. Errors name the argument or
field at fault and exit with status 2; a refused request exits with status 1 and the server's reason.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from stargraph import __version__
from stargraph.cli import backfill, completion, convert, describe, history, operator, run, serve
from stargraph.cli import next as next_fires
from stargraph.cli.common import UsageError, fail

__all__ = ["build_parser", "main"]

_COMMANDS = (run, backfill, next_fires, history, describe, convert, operator, serve, completion)
"""In the order `stargraph --help` lists them."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stargraph", description="Triggers that become exactly one Run per fire.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    for command in _COMMANDS:
        command.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        status: int = args.func(args)
    except UsageError as exc:
        fail(str(exc))
    return status
