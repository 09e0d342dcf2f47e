"""A Run's status, read off its Job: phase, times, message, and the kstatus conditions tools read a Run's health by.

Phase: Succeeded or Failed only once the Job has its terminal `Complete` or `Failed` condition (a Job with
`SuccessCriteriaMet` or `FailureTarget` is still finishing: its Pods are being stopped), Running while one of its
Pods is ready or has already run, Pending before. Conditions follow kstatus: Succeeded → Ready=True, Failed →
Stalled=True, anything else → Reconciling=True, so `kubectl wait --for=condition=Ready`, Argo CD and Flux see a
Run's health without knowing stargraph.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

__all__ = ["FINISHING", "failed_status", "run_status", "status_conditions"]

FINISHING = {"SuccessCriteriaMet": "succeeded", "FailureTarget": "failed"}
"""Job conditions that come before the terminal one, and what they announce."""


def _condition(job: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    for condition in (job.get("status") or {}).get("conditions") or ():
        if condition.get("type") == type_ and condition.get("status") == "True":
            return condition  # type: ignore[no-any-return]
    return None


def _duration(start: str | None, end: str | None) -> str | None:
    if not start or not end:
        return None
    seconds = max(0, int((datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return "".join(f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m")) if n) + f"{seconds}s"


def status_conditions(phase: str, *, reason: str, message: str, generation: int) -> list[dict[str, Any]]:
    """Ready / Stalled / Reconciling for a Run in `phase` (transition times are added by the writer)."""
    ready, stalled = phase == "Succeeded", phase == "Failed"
    reconciling = not (ready or stalled)

    def condition(type_: str, status: bool, text: str = "") -> dict[str, Any]:
        return {
            "type": type_,
            "status": "True" if status else "False",
            "reason": reason,
            "message": text if status else "",
            "observedGeneration": generation,
        }

    return [
        condition("Ready", ready, message),
        condition("Stalled", stalled, message),
        condition("Reconciling", reconciling, message),
    ]


def run_status(job: Mapping[str, Any]) -> dict[str, Any]:
    """The Run status fields (phase, reason, message, times, jobRef; no conditions) that Job object `job` implies."""
    status = job.get("status") or {}
    name = job["metadata"]["name"]
    start = status.get("startTime")
    ended: Mapping[str, Any] | None
    if (ended := _condition(job, "Complete")) is not None:
        phase, reason, message = "Succeeded", "JobComplete", f"Job {name} completed"
        end = status.get("completionTime") or ended.get("lastTransitionTime")
    elif (ended := _condition(job, "Failed")) is not None:
        why = ended.get("message") or ended.get("reason") or "failed"
        phase, reason, message = "Failed", ended.get("reason") or "JobFailed", f"Job {name} failed: {why}"
        end = ended.get("lastTransitionTime")
    else:
        phase, reason, message = _unfinished(job, name)
        return {"phase": phase, "reason": reason, "message": message, "jobRef": {"name": name}, "startTime": start}
    return {
        "phase": phase,
        "reason": reason,
        "message": message,
        "jobRef": {"name": name},
        "startTime": start,
        "completionTime": end,
        "duration": _duration(start, end),
    }


def _unfinished(job: Mapping[str, Any], name: str) -> tuple[str, str, str]:
    """(phase, reason, message) of a Job without a terminal condition."""
    for type_, outcome in FINISHING.items():
        if (finishing := _condition(job, type_)) is not None:
            detail = f": {finishing['message']}" if finishing.get("message") else ""
            return "Running", type_, f"Job {name} has {outcome}; its Pods are finishing{detail}"
    status = job.get("status") or {}
    if any(int(status.get(count) or 0) > 0 for count in ("ready", "succeeded", "failed")):
        return "Running", "JobRunning", f"Job {name} is running"
    return "Pending", "JobPending", f"Job {name} is waiting for its Pods"


def failed_status(*, reason: str, message: str, now: str) -> dict[str, Any]:
    """A Run that failed before or outside its Job (refused, or deleted by hand)."""
    return {"phase": "Failed", "reason": reason, "message": message, "completionTime": now}
