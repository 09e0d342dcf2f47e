"""Submitting an event on behalf of an HTTP caller: scheduler outcomes mapped to answers the caller can act on.

A caller hears 2xx only once the Run exists. Whenever that cannot be known in time (the apiserver is down, frozen
or refusing), the answer is 503 with `Retry-After`: the creation may still complete in the background, and the
caller's retry then gets the existing Run (200) instead of a second one. A caller is never kept waiting longer than
`SUBMIT_BUDGET_SECONDS`, which stays under the 10 s after which common webhook senders give up on a delivery.
"""

from __future__ import annotations

import asyncio

from stargraph.fires.event import TriggerEvent
from stargraph.http import HttpError
from stargraph.runs import PermanentSinkError, RunSubmitter, SchedulerStopped, SubmitResult, TriggerObject

__all__ = ["RETRY_AFTER_SECONDS", "SUBMIT_BUDGET_SECONDS", "submit_or_http_error"]

SUBMIT_BUDGET_SECONDS = 8.0
RETRY_AFTER_SECONDS = 5


async def submit_or_http_error(
    scheduler: RunSubmitter,
    event: TriggerEvent,
    *,
    trigger: TriggerObject | None = None,
    body: str | None = None,
    budget: float = SUBMIT_BUDGET_SECONDS,
) -> SubmitResult:
    """The Run for `event`; `HttpError` 503 when retrying later can help, the sink's own status when it cannot."""
    try:
        async with asyncio.timeout(budget):
            return await scheduler.submit(event, trigger=trigger, body=body)
    except SchedulerStopped as exc:
        raise HttpError(503, "shutting_down", "the server is shutting down; retry the request", retry_after=1) from exc
    except PermanentSinkError as exc:
        raise HttpError(exc.status, exc.reason, str(exc)) from exc
    except TimeoutError as exc:
        raise HttpError(
            503,
            "run_pending",
            f"the Run was not confirmed within {budget:g} s (the Kubernetes API is slow or unreachable); retry: "
            "a retry returns the Run if it was created meanwhile",
            retry_after=RETRY_AFTER_SECONDS,
        ) from exc
    except Exception as exc:
        raise HttpError(
            503,
            "run_not_created",
            f"the Run could not be created ({type(exc).__name__}); retry",
            retry_after=RETRY_AFTER_SECONDS,
        ) from exc
