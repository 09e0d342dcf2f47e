"""Which of a trigger's Runs are active, when the newest succeeded, and which finished ones fall outside its
history limits."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from stargraph.runs.index import RunInfo

__all__ = ["active_run_names", "beyond_history_limits", "last_success"]


def active_run_names(runs: Sequence[RunInfo]) -> list[str]:
    """Names of the unfinished Runs, oldest first (`runs` as `RunIndex.runs_of` orders them)."""
    return [run.ref.name for run in runs if run.active]


def last_success(runs: Sequence[RunInfo]) -> datetime | None:
    """When the newest Succeeded Run finished, or None if none has."""
    return max((datetime.fromisoformat(run.finished) for run in runs if run.phase == "Succeeded"), default=None)


def beyond_history_limits(runs: Sequence[RunInfo], *, succeeded: int, failed: int) -> list[RunInfo]:
    """The finished Runs to delete: all but the newest `succeeded` Succeeded and the newest `failed` Failed ones."""
    doomed: list[RunInfo] = []
    for phase, limit in (("Succeeded", succeeded), ("Failed", failed)):
        finished = sorted((run for run in runs if run.phase == phase), key=lambda run: run.finished)
        doomed.extend(finished[: max(0, len(finished) - limit)])
    return doomed
