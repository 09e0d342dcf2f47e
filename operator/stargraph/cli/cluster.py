"""What the read-only commands (`history`, `describe`) share: a trigger and its Runs read with the user's
kubeconfig, and the plain-text tables they print.

A bad KIND/NAME is a usage error naming the argument (exit 2); a trigger the apiserver does not have is the
apiserver's own message (exit 1).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from stargraph.cli.common import UsageError, fail, kube_credentials, parse_target

__all__ = ["TriggerObjects", "format_delay", "kind_plural", "ledger_table", "read_trigger", "table"]


@dataclass(frozen=True)
class TriggerObjects:
    trigger: dict[str, Any]
    runs: list[dict[str, Any]]
    """The trigger's Runs (label `stargraph.io/trigger`), newest scheduled fire first; empty unless asked for."""


def kind_plural(target: str, *, argument: str, kinds: Sequence[str]) -> tuple[str, str, str]:
    """(Kind, plural, name) of KIND/NAME, for one of `kinds`; anything else is a usage error naming `argument`."""
    from stargraph.controller.kinds import BUILT_IN_KINDS

    kind, name = parse_target(target, argument=argument)
    if kind not in kinds:
        allowed = ", ".join(f"{k.lower()}/NAME" for k in kinds)
        raise UsageError(f"{argument}: {kind!r} is not a kind this command reads (use {allowed}), got {target!r}")
    return kind, BUILT_IN_KINDS[kind].plural, name


def read_trigger(args: argparse.Namespace, *, plural: str, name: str, runs: bool) -> TriggerObjects:
    """The trigger `plural/name` in `args.namespace` (and its Runs if `runs`), with the user's kubeconfig."""
    import asyncio

    return asyncio.run(_read(args, plural=plural, name=name, runs=runs))


async def _read(args: argparse.Namespace, *, plural: str, name: str, runs: bool) -> TriggerObjects:
    from stargraph.api.v1alpha1 import GROUP, VERSION
    from stargraph.k8s import KubeClient, KubeError, path
    from stargraph.runs.manifest import LABEL_TRIGGER, LABEL_TRIGGER_KIND
    from stargraph.runs.naming import label_value

    credentials = kube_credentials(args)
    namespace = args.namespace
    try:
        async with KubeClient(credentials) as api:
            trigger = await api.get(path(group=GROUP, version=VERSION, plural=plural, namespace=namespace, name=name))
            found: list[dict[str, Any]] = []
            if runs:
                selector = f"{LABEL_TRIGGER}={label_value(name)},{LABEL_TRIGGER_KIND}={trigger['kind'].lower()}"
                listed = await api.list(
                    path(group=GROUP, version=VERSION, plural="runs", namespace=namespace),
                    params={"labelSelector": selector},
                )
                found = listed.get("items") or []
    except KubeError as exc:
        fail(str(exc), status=1)
    found.sort(key=lambda run: ((run.get("spec") or {}).get("scheduledFire") or "", run["metadata"]["name"]))
    return TriggerObjects(trigger=trigger, runs=found[::-1])


def format_delay(milliseconds: object) -> str:
    """120ms, 4.2s, 3m5s, 2h0m10s."""
    if not isinstance(milliseconds, int):
        return ""
    if milliseconds < 1000:
        return f"{milliseconds}ms"
    if milliseconds < 60_000:
        return f"{milliseconds / 1000:.1f}s"
    minutes, seconds = divmod(milliseconds // 1000, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes}m{seconds}s" if hours else f"{minutes}m{seconds}s"


def ledger_table(entries: Sequence[Mapping[str, Any]], *, indent: str = "") -> str:
    """`status.recentFires` as a table, one row per entry: scheduled time, outcome, Run, delay, message."""
    rows = []
    for entry in entries:
        outcome = str(entry.get("outcome", ""))
        if entry.get("count", 1) != 1:
            outcome += f" (x{entry['count']})"
        reason, message = entry.get("reason"), entry.get("message")
        detail = f"{reason}: {message}" if reason and message else str(reason or message or "")
        rows.append(
            [
                str(entry.get("scheduledTime", "")),
                outcome,
                str(entry.get("runName") or "-"),
                format_delay(entry.get("delayMilliseconds")),
                detail,
            ]
        )
    return table(("SCHEDULED", "OUTCOME", "RUN", "DELAY", "MESSAGE"), rows, indent=indent)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, indent: str = "") -> str:
    """Columns padded like `kubectl get`; the last column is never padded."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=False)]
    lines = []
    for row in (headers, *rows):
        cells = [str(cell).ljust(width) for cell, width in zip(row[:-1], widths, strict=False)]
        lines.append((indent + "   ".join([*cells, str(row[-1])])).rstrip())
    return "\n".join(lines)
