"""`stargraph convert`: CronJob manifests to CronTriggers; with --apply, the switch-over in the cluster."""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from pathlib import Path
from typing import Any

from stargraph.cli.common import UsageError, add_kubeconfig_arguments, fail, kube_credentials

__all__ = ["register"]

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
    from stargraph.k8s import KubeClient, KubeError, NotFound, path
    from stargraph.triggers.cronjob import ConversionError, convert_cronjob

    credentials = kube_credentials(args)
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
                fail(f"{where}: {exc}", status=1)
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
                fail(f"{where}: {exc}", status=1)
    print(yaml.safe_dump_all(triggers, sort_keys=False), end="")
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    add_kubeconfig_arguments(convert)
    convert.set_defaults(func=cmd_convert)
