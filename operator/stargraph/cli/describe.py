"""`stargraph describe KIND/NAME`: one screen on a trigger — its spec in words, conditions, what comes next, what
became of its last fires, and its Runs.

The next fires are computed here from the spec (`triggers.cron_schedule`), so they show what the schedule means even
while no operator runs; everything else is read from the cluster.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from stargraph.cli.cluster import kind_plural, ledger_table, read_trigger, table
from stargraph.cli.common import UsageError, add_kubeconfig_arguments

__all__ = ["register"]

_LAST_FIRES = 10
_RUNS = 10


def cmd_describe(args: argparse.Namespace) -> int:
    if args.next < 0:
        raise UsageError(f"--next: expected a number of fires >= 0, got {args.next}")
    kind, plural, name = kind_plural(args.trigger, argument="KIND/NAME", kinds=("CronTrigger", "WebhookTrigger"))
    objects = read_trigger(args, plural=plural, name=name, runs=True)
    trigger, status = objects.trigger, objects.trigger.get("status") or {}
    lines = [*_fields([("Name", name), ("Namespace", args.namespace), ("Kind", kind)])]
    if kind == "CronTrigger":
        lines += _cron(trigger, status, next_fires=args.next)
    else:
        lines += _webhook(trigger, status)
    lines += ["", "Conditions:", _conditions(status)]
    if kind == "CronTrigger":
        entries = status.get("recentFires") or []
        lines += ["", f"Last fires (newest first; all of them: stargraph history crontrigger/{name}):"]
        lines.append(ledger_table(entries[:_LAST_FIRES], indent="  ") if entries else "  none yet")
    lines += ["", "Runs (newest first):", _runs(objects.runs)]
    print("\n".join(lines))
    return 0


def _fields(pairs: list[tuple[str, object]]) -> list[str]:
    return [f"{label + ':':<15}{value}" for label, value in pairs]


def _cron(trigger: Mapping[str, Any], status: Mapping[str, Any], *, next_fires: int) -> list[str]:
    from pydantic import ValidationError

    from stargraph.api.v1alpha1 import CronTriggerSpec
    from stargraph.models import describe_validation_error
    from stargraph.triggers.cron_schedule import CronSchedule, ScheduleError, trigger_schedule

    try:
        spec = CronTriggerSpec.model_validate(trigger.get("spec") or {})
    except ValidationError as exc:
        return _fields([("Spec", f"invalid: {describe_validation_error(exc)}")])
    schedule: CronSchedule | None = None
    try:
        schedule = trigger_schedule(spec)
        words = schedule.explain()
    except ScheduleError as exc:
        words = f"invalid: {exc}"
    deadline = spec.starting_deadline_seconds
    catch_up = (
        f"{spec.catch_up.value} (up to {spec.catch_up_limit})" if spec.catch_up.value == "All" else spec.catch_up.value
    )
    lines = _fields(
        [
            ("Schedule", f"{spec.schedule}  ({words})"),
            ("Time zone", spec.time_zone),
            ("Suspended", "yes" if spec.suspend else "no"),
            ("Concurrency", spec.concurrency_policy.value),
            ("Catch-up", catch_up),
            ("Deadline", f"{deadline}s after each fire" if deadline is not None else "none"),
            (
                "History",
                f"{spec.successful_runs_history_limit} succeeded, {spec.failed_runs_history_limit} failed Runs kept",
            ),
            ("Last fire", status.get("lastScheduleTime") or "never"),
            ("Missed", f"{status.get('missedSchedules') or 0} (newest {status.get('lastMissedScheduleTime') or '-'})"),
        ]
    )
    lines += ["", "Next fires:"]
    if schedule is None or spec.suspend:
        lines.append("  none (suspended)" if spec.suspend else "  none (the schedule is invalid)")
    else:
        fires = schedule.fires_after(datetime.now(UTC))
        for _ in range(next_fires):
            fire = next(fires)
            lines.append(f"  {fire.astimezone(schedule.zone).isoformat()}  ({fire.strftime('%Y-%m-%dT%H:%M:%SZ')})")
    return lines


def _webhook(trigger: Mapping[str, Any], status: Mapping[str, Any]) -> list[str]:
    spec = trigger.get("spec") or {}
    secret = spec.get("secretRef") or {}
    signature = spec.get("signature") or {}
    events = (spec.get("events") or {}).get("types")
    return _fields(
        [
            ("Path", status.get("path") or "-"),
            ("Secret", f"{secret.get('name', '-')} (keys: {', '.join(secret.get('keys') or ['secret'])})"),
            ("Signature", signature.get("scheme", "hmac-sha256")),
            ("Events", ", ".join(events) if events else "every delivery"),
            ("Deduplicate", spec.get("deduplicateBy", "Body")),
            ("Body limit", f"{spec.get('maxBodyBytes', 1 << 20)} bytes"),
            ("Pass body", "yes" if spec.get("passBody") else "no"),
            ("Last delivery", status.get("lastDeliveryTime") or "never"),
        ]
    )


def _conditions(status: Mapping[str, Any]) -> str:
    conditions = status.get("conditions") or []
    if not conditions:
        return "  none yet (no operator has reconciled it)"
    rows = [
        [
            c.get("type", ""),
            c.get("status", ""),
            c.get("reason", ""),
            c.get("lastTransitionTime", ""),
            c.get("message", ""),
        ]
        for c in conditions
    ]
    return table(("TYPE", "STATUS", "REASON", "SINCE", "MESSAGE"), rows, indent="  ")


def _runs(runs: list[dict[str, Any]]) -> str:
    if not runs:
        return "  none"
    rows = []
    for run in runs[:_RUNS]:
        status = run.get("status") or {}
        phase = status.get("phase") or "Pending"
        duration = status.get("duration") or (f"since {status['startTime']}" if status.get("startTime") else "-")
        scheduled = (run.get("spec") or {}).get("scheduledFire", "")
        rows.append([run["metadata"]["name"], phase, scheduled, duration])
    text = table(("NAME", "PHASE", "SCHEDULED", "DURATION"), rows, indent="  ")
    if len(runs) > _RUNS:
        text += f"\n  ... and {len(runs) - _RUNS} older"
    return text


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    describe = commands.add_parser(
        "describe",
        help="show a trigger on one screen: spec in words, conditions, next and last fires, Runs",
    )
    describe.add_argument("trigger", metavar="KIND/NAME", help="crontrigger/NAME or webhooktrigger/NAME")
    describe.add_argument("-n", "--namespace", default="default")
    describe.add_argument("--next", type=int, default=5, metavar="N", help="how many next fires to show")
    add_kubeconfig_arguments(describe)
    describe.set_defaults(func=cmd_describe)
