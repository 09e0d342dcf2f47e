"""`stargraph history crontrigger/NAME`: a CronTrigger's fire ledger (`status.recentFires`), newest fire first."""

from __future__ import annotations

import argparse
import json

from stargraph.cli.cluster import kind_plural, ledger_table, read_trigger
from stargraph.cli.common import add_kubeconfig_arguments

__all__ = ["register"]


def cmd_history(args: argparse.Namespace) -> int:
    """Print what became of the trigger's last fires."""
    _, plural, name = kind_plural(args.trigger, argument="crontrigger/NAME", kinds=("CronTrigger",))
    trigger = read_trigger(args, plural=plural, name=name, runs=False).trigger
    entries = (trigger.get("status") or {}).get("recentFires") or []
    if args.output == "json":
        print(json.dumps(entries, indent=2))
    elif args.output == "yaml":
        import yaml

        print(yaml.safe_dump(entries, sort_keys=False), end="")
    elif entries:
        print(ledger_table(entries))
    else:
        print(f"no fires recorded for crontrigger/{name} in {args.namespace} yet")
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    history = commands.add_parser(
        "history",
        help="show what became of a CronTrigger's last fires",
        description="Prints status.recentFires: each recent fire's nominal time, outcome (Created, AlreadyExisted, "
        "Skipped, Missed, Failed), Run, delay from the nominal time to the outcome, and why.",
    )
    history.add_argument("trigger", metavar="crontrigger/NAME")
    history.add_argument("-n", "--namespace", default="default")
    history.add_argument("-o", "--output", choices=["table", "json", "yaml"], default="table")
    add_kubeconfig_arguments(history)
    history.set_defaults(func=cmd_history)
