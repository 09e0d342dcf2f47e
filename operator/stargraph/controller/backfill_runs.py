"""The Runs each Backfill created, kept current by the Run informer: which are unfinished, and a wake-up on change.

A Backfill's Runs carry the label `stargraph.io/backfill: <name>`; this is how a Backfill knows them again after a
restart (a Run found for a fire counts as created when it carries the label, as already existing otherwise) and
how its parallelism is judged. Any change of any Run wakes the Backfills waiting for room: the ones whose trigger
forbids concurrent Runs wait for the trigger's other Runs too.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any

from stargraph.api.v1alpha1 import GROUP
from stargraph.runs import FINISHED_PHASES, label_value

__all__ = ["LABEL_BACKFILL", "BackfillRuns"]

LABEL_BACKFILL = f"{GROUP}/backfill"
"""On every Run a Backfill created: the Backfill's name (as a label value)."""


class BackfillRuns:
    def __init__(self) -> None:
        self._unfinished: dict[tuple[str, str], dict[str, bool]] = {}
        """(namespace, label value) → Run name → whether it is unfinished."""
        self._made_by: dict[tuple[str, str], str] = {}
        """(namespace, Run name) → the label value of the Backfill that made it."""
        self._changed = asyncio.Event()

    def run_changed(self, change: str, body: Mapping[str, Any]) -> None:
        """Informer callback for Runs (`ADDED`, `MODIFIED`, `DELETED`)."""
        metadata = body["metadata"]
        backfill = (metadata.get("labels") or {}).get(LABEL_BACKFILL)
        if backfill is not None:
            namespace = metadata.get("namespace", "")
            runs = self._unfinished.setdefault((namespace, backfill), {})
            if change == "DELETED":
                runs.pop(metadata["name"], None)
                self._made_by.pop((namespace, metadata["name"]), None)
            else:
                runs[metadata["name"]] = (body.get("status") or {}).get("phase") not in FINISHED_PHASES
                self._made_by[namespace, metadata["name"]] = backfill
        self._changed.set()
        self._changed = asyncio.Event()

    def created(self, namespace: str, backfill: str, run: str) -> None:
        """A Run this process just created: unfinished until the informer says otherwise."""
        self._unfinished.setdefault((namespace, label_value(backfill)), {}).setdefault(run, True)

    def made_by(self, namespace: str, run: str) -> str | None:
        """The label value of the Backfill that made this Run; None for a Run of no Backfill."""
        return self._made_by.get((namespace, run))

    def ours(self, namespace: str, backfill: str, run: str) -> bool:
        return run in self._unfinished.get((namespace, label_value(backfill)), {})

    def unfinished(self, namespace: str, backfill: str) -> int:
        return sum(self._unfinished.get((namespace, label_value(backfill)), {}).values())

    async def changed(self, *, timeout: float) -> None:
        """Return when any Run changes, or after `timeout` seconds."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)
