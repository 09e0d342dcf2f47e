"""`stargraph serve`: triggers from a YAML file with an in-memory Run sink, for trying triggers without a cluster."""

from __future__ import annotations

import argparse
from pathlib import Path

from stargraph.cli.common import UsageError

__all__ = ["register"]


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


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser("serve", help="serve triggers from a YAML file with an in-memory Run sink")
    serve.add_argument("--config", help="YAML with `cron:` and `webhook:` spec lists")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--log-level", default="INFO")
    serve.set_defaults(func=cmd_serve)
