"""Submitting an event on behalf of an HTTP caller: scheduler outcomes mapped to answers the caller can act on."""

from __future__ import annotations

from stargraph.http import HttpError
from stargraph.scheduler import PermanentSinkError, Scheduler, SchedulerStopped, SubmitResult
from stargraph.triggers.events import TriggerEvent

__all__ = ["submit_or_http_error"]


async def submit_or_http_error(scheduler: Scheduler, event: TriggerEvent) -> SubmitResult:
    """The Run for `event`; `HttpError` 503 when retrying later can help, the sink's own status when it cannot."""
    try:
        return await scheduler.submit(event)
    except SchedulerStopped as exc:
        raise HttpError(503, "shutting_down", "the server is shutting down; retry the request") from exc
    except PermanentSinkError as exc:
        raise HttpError(exc.status, exc.reason, str(exc)) from exc
    except Exception as exc:
        raise HttpError(503, "run_not_created", f"the Run could not be created ({type(exc).__name__}); retry") from exc
