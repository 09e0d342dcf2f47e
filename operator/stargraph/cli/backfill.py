"""`stargraph backfill crontrigger/NAME --from T --to T`: create a Backfill (checked here first), optionally follow it.

The checks are the operator's own (`stargraph.triggers.backfill.plan_backfill`, against the trigger as it is now),
so a range the operator would refuse is refused here, naming the flag, before anything is created. The default
name is derived from the trigger and the spec: asking twice for the same backfill finds the first one.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import re
import sys
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from stargraph.cli.common import UsageError, add_kubeconfig_arguments, fail, kube_credentials, parse_target

if TYPE_CHECKING:
    from stargraph.models import FieldError

__all__ = ["register"]

_FLAGS = {
    "spec.from": "--from",
    "spec.to": "--to",
    "spec.maxRuns": "--max-runs",
    "spec.parallelism": "--parallelism",
    "spec.triggerRef.kind": "KIND/NAME",
    "spec.triggerRef.name": "KIND/NAME",
}
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_POLL_SECONDS = 1.0


def _instant(value: str, flag: str) -> datetime:
    if flag == "--to" and value == "now":
        return datetime.now(UTC).replace(microsecond=0)
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(f"{flag}: expected an RFC 3339 time such as 2026-01-31T00:00:00Z, got {value!r}") from None
    if when.tzinfo is None:
        raise UsageError(f"{flag}: {value!r} has no UTC offset; add Z or one such as +02:00")
    return when


def _default_name(trigger: str, spec: dict[str, Any]) -> str:
    """`<trigger>-backfill-<8 hex>` (`-dryrun-` for a dry run), the hex a digest of the whole spec."""
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:8]
    return f"{trigger[: 253 - 18].rstrip('-.')}-{'dryrun' if spec['dryRun'] else 'backfill'}-{digest}"


def _spec(args: argparse.Namespace, kind: str, trigger: str) -> dict[str, Any]:
    from pydantic import ValidationError

    from stargraph.api.v1alpha1 import BackfillSpec
    from stargraph.models import field_errors
    from stargraph.triggers.backfill import spec_errors

    start, end = _instant(args.start, "--from"), _instant(args.end, "--to")
    body: dict[str, Any] = {
        "triggerRef": {"kind": kind, "name": trigger},
        "from": start.isoformat().replace("+00:00", "Z"),
        "to": end.isoformat().replace("+00:00", "Z"),
        "maxRuns": args.max_runs,
        "parallelism": args.parallelism,
        "dryRun": args.dry_run,
    }
    try:
        errors = spec_errors(BackfillSpec.model_validate(body))
    except ValidationError as exc:
        errors = field_errors(exc, prefix="spec")
    if errors:
        raise UsageError(_flag_error(errors[0]))
    return body


def _flag_error(error: FieldError) -> str:
    """A `FieldError` as the CLI says it: the flag instead of the field."""
    return f"{_FLAGS.get(error.field, error.field)}: {error.message}"


def cmd_backfill(args: argparse.Namespace) -> int:
    """Create the Backfill of a CronTrigger's range; print its name; with --wait, follow it until Ready or Stalled."""
    kind, trigger = parse_target(args.trigger, argument="KIND/NAME")
    body = _spec(args, kind, trigger)
    name = args.name or _default_name(trigger, body)
    if not _NAME.match(name) or len(name) > 253:
        raise UsageError(f"--name: {name!r} is not a valid object name (lower-case letters, digits, '-' and '.')")
    return asyncio.run(_create(args, name, body))


async def _create(args: argparse.Namespace, name: str, spec: dict[str, Any]) -> int:
    from stargraph.api.v1alpha1 import BackfillSpec, CronTriggerSpec
    from stargraph.controller.backfill_controller import BACKFILL
    from stargraph.controller.kinds import CRON
    from stargraph.k8s import Conflict, KubeClient, KubeError, NotFound, path
    from stargraph.triggers.backfill import plan_backfill

    namespace = args.namespace
    backfills = path(group=BACKFILL.group, version=BACKFILL.version, plural=BACKFILL.plural, namespace=namespace)
    trigger_path = path(
        group=CRON.group, version=CRON.version, plural=CRON.plural, namespace=namespace, name=spec["triggerRef"]["name"]
    )
    credentials = kube_credentials(args)
    try:
        async with KubeClient(credentials) as api:
            trigger: CronTriggerSpec | None = None
            if spec["triggerRef"]["kind"] == CRON.kind:
                try:
                    trigger = CronTriggerSpec.model_validate((await api.get(trigger_path)).get("spec") or {})
                except NotFound:
                    trigger = None
            plan = plan_backfill(BackfillSpec.model_validate(spec), trigger=trigger, created=datetime.now(UTC))
            if plan.errors:
                raise UsageError(_flag_error(plan.errors[0]))
            manifest = {
                "apiVersion": BACKFILL.api_version,
                "kind": BACKFILL.kind,
                "metadata": {"name": name, "namespace": namespace},
                "spec": spec,
            }
            try:
                await api.create(backfills, manifest)
            except Conflict:
                existing = await api.get(f"{backfills}/{name}")
                if BackfillSpec.model_validate(existing["spec"]) != BackfillSpec.model_validate(spec):
                    fail(f"--name: Backfill {namespace}/{name} already exists with another spec", status=1)
            print(name)
            sys.stdout.flush()
            return await _follow(api, f"{backfills}/{name}", args.timeout) if args.wait else 0
    except KubeError as exc:
        fail(str(exc), status=1)


async def _follow(api: Any, target: str, timeout: float | None) -> int:
    """Print progress while the Backfill works; 0 once Ready, 1 when Stalled (or at the timeout)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    said = None
    while True:
        obj = await api.get(target)
        status = obj.get("status") or {}
        conditions = {c.get("type"): c for c in status.get("conditions") or ()}
        if status.get("observedGeneration") == obj["metadata"].get("generation"):
            progress = (
                f"slots {status.get('slots')}, created {status.get('created', 0)}, "
                f"already existing {status.get('alreadyExisting', 0)}, remaining {status.get('remaining')}"
            )
            if progress != said:
                print(progress, file=sys.stderr)
                said = progress
            if conditions.get("Stalled", {}).get("status") == "True":
                stalled = conditions["Stalled"]
                fail(f"{obj['metadata']['name']}: {stalled.get('reason')}: {stalled.get('message')}", status=1)
            if conditions.get("Ready", {}).get("status") == "True":
                print(conditions["Ready"].get("message") or "done", file=sys.stderr)
                for slot in status.get("plannedSlots") or ():
                    print(slot)
                return 0
        if deadline is not None and time.monotonic() > deadline:
            fail(f"--timeout: not done within {timeout:g}s; the Backfill goes on", status=1)
        await asyncio.sleep(_POLL_SECONDS)


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    backfill = commands.add_parser(
        "backfill", help="create the Runs of a CronTrigger's fires in a past range (a Backfill object)"
    )
    backfill.add_argument("trigger", metavar="KIND/NAME", help="the trigger, e.g. crontrigger/nightly")
    backfill.add_argument("--from", dest="start", required=True, help="start, inclusive (RFC 3339)")
    backfill.add_argument("--to", dest="end", required=True, help="end, inclusive (RFC 3339, or now)")
    backfill.add_argument("--max-runs", type=int, default=100, help="refuse a range with more fires (100)")
    backfill.add_argument("--parallelism", type=int, default=1, help="unfinished Runs at once (1)")
    backfill.add_argument("--dry-run", action="store_true", help="only compute and report the fires")
    backfill.add_argument("--name", help="the Backfill's name (default: from the trigger and the range)")
    backfill.add_argument("-n", "--namespace", default="default")
    backfill.add_argument("--wait", action="store_true", help="follow the Backfill until Ready (0) or Stalled (1)")
    backfill.add_argument("--timeout", type=float, default=None, help="with --wait: give up after this many seconds")
    add_kubeconfig_arguments(backfill)
    backfill.set_defaults(func=cmd_backfill)
