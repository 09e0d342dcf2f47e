"""The scheduler: a queue of TriggerEvents, deduplicated by idempotency key, drained by a fixed pool of workers.

Dedupe happens twice before anything is created: against the sink's index of known Runs (cheap, in memory, on the
caller's task — the redelivery path never touches the queue), and against creations already in flight (the second
caller awaits the first one's result). The sink's own idempotent create settles whatever races remain (another
replica, an index that lags). Transient sink errors are retried with backoff (longer when the error carries a
`retry_after` in seconds, as the Kubernetes client's 429s do); a caller that still gets an error can retry the fire
(a webhook sender will, the cron trigger does), because nothing half-done is left behind. Where this sits on the
path of a fire: docs/architecture.md.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import structlog
from prometheus_client import Counter

from stargraph.clock import Clock, SystemClock
from stargraph.fires.event import TriggerEvent
from stargraph.fires.keys import split_trigger_id
from stargraph.metrics import Metrics
from stargraph.runs.manifest import TriggerObject
from stargraph.runs.refs import SubmitResult
from stargraph.runs.sink import PermanentSinkError, RunRequest, RunSink
from stargraph.runs.submit import SchedulerStopped
from stargraph.workers import Idle, WorkerPool

__all__ = ["RetryPolicy", "Scheduler"]

log = structlog.get_logger("stargraph.scheduler")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 5
    first_delay: float = 0.1
    max_delay: float = 2.0

    def delays(self) -> list[float]:
        return [min(self.first_delay * 2**i, self.max_delay) for i in range(self.attempts - 1)]


def _source(event: TriggerEvent) -> str:
    return split_trigger_id(event.trigger_id)[0] or "unknown"


_Job = tuple[RunRequest, datetime, "asyncio.Future[SubmitResult]"]
"""A creation to make, when it was due (the lag counts from then), and where its result goes."""


class _Labelled(dict[str, Counter]):
    """Counter children by label value, created on first use."""

    def __init__(self, parent: Counter) -> None:
        super().__init__()
        self._parent = parent

    def __missing__(self, label: str) -> Counter:
        child = self[label] = self._parent.labels(label)
        return child


class Scheduler:
    """The `RunSubmitter` that plugins get as `deps["scheduler"]`."""

    def __init__(
        self,
        sink: RunSink,
        *,
        metrics: Metrics | None = None,
        clock: Clock | None = None,
        workers: int = 64,
        retry: RetryPolicy = RetryPolicy(),
        on_result: Callable[[TriggerEvent, SubmitResult], None] | None = None,
    ) -> None:
        self.sink = sink
        self.metrics = metrics or Metrics()
        self.clock: Clock = clock or SystemClock()
        self._retry = retry
        self._on_result = on_result
        self._pool: WorkerPool[_Job] = WorkerPool(self._handle, workers=workers, name="scheduler")
        self._inflight: dict[str, asyncio.Future[SubmitResult]] = {}
        self._idle = Idle()
        self._accepting = False
        # Label lookups cost a lock and a dict probe each; the duplicate path is hot enough to keep them bound.
        self._fires = _Labelled(self.metrics.fires)
        self._index_dedupes = self.metrics.dedupes.labels("index")

    @property
    def running(self) -> bool:
        return self._accepting

    async def wait_idle(self) -> None:
        """Return once no Run creation is in flight."""
        await self._idle.wait()

    @property
    def idle_since(self) -> float | None:
        """When the last Run creation ended (the event loop's clock); None while one is in flight."""
        return self._idle.since

    async def start(self) -> None:
        if self._pool.started:
            return
        self._accepting = True
        await self._pool.start()

    async def stop(self, *, timeout: float = 30.0) -> None:
        """Stop accepting, finish the creations already queued (up to `timeout`), then stop the workers."""
        self._accepting = False
        await self._pool.stop(timeout=timeout)
        for future in self._inflight.values():
            if not future.done():
                future.set_exception(SchedulerStopped("scheduler stopped before the Run was created"))
        self._inflight.clear()

    def known(self, idempotency_key: str, *, source: str) -> SubmitResult | None:
        """The Run already recorded for this key, counted as a dedupe; lets a caller skip building the event."""
        run = self.sink.lookup(idempotency_key)
        if run is None:
            return None
        self._fires[source].inc()
        self._index_dedupes.inc()
        return SubmitResult(run=run, created=False)

    async def submit(
        self,
        event: TriggerEvent,
        *,
        trigger: TriggerObject | None = None,
        body: str | None = None,
        due: datetime | None = None,
    ) -> SubmitResult:
        """Turn `event` into its Run (owned by `trigger`) and return it; submissions of one key share one Run."""
        key = event.idempotency_key
        known = self.known(key, source=_source(event))
        if known is not None:
            return known
        self._fires[_source(event)].inc()
        pending = self._inflight.get(key)
        if pending is not None:
            self.metrics.dedupes.labels("inflight").inc()
            result = await asyncio.shield(pending)
            return SubmitResult(run=result.run, created=False)
        if not self._accepting:
            raise SchedulerStopped("scheduler is not accepting events")
        future: asyncio.Future[SubmitResult] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        self._idle.busy()
        self._pool.put((RunRequest(event=event, trigger=trigger, body=body), due or event.scheduled_fire, future))
        # Shielded: a caller that goes away (client disconnect) must not cancel a creation others may be awaiting.
        return await asyncio.shield(future)

    async def _handle(self, job: _Job) -> None:
        request, due, future = job
        event = request.event
        try:
            result = await self._create(request, due=due)
        except Exception as exc:
            if not future.done():
                future.set_exception(exc)
        else:
            if not future.done():
                future.set_result(result)
            if self._on_result is not None:
                self._on_result(event, result)
        finally:
            self._inflight.pop(event.idempotency_key, None)
            if not self._inflight:
                self._idle.done()
        # Nobody may be awaiting (the caller went away); retrieve the exception so asyncio does not warn.
        if future.done() and not future.cancelled():
            future.exception()

    async def _create(self, request: RunRequest, *, due: datetime) -> SubmitResult:
        event = request.event
        source = _source(event)
        result = await self._create_with_retries(request, source)
        if result.created:
            self.metrics.runs_created.labels(source).inc()
            lag = (self.clock.now() - due).total_seconds()
            self.metrics.scheduler_lag.labels(source).observe(max(lag, 0.0))
        else:
            self.metrics.dedupes.labels("sink").inc()
        return result

    async def _create_with_retries(self, request: RunRequest, source: str) -> SubmitResult:
        delays = iter(self._retry.delays())
        while True:
            try:
                return await self.sink.create(request)
            except PermanentSinkError as exc:
                self.metrics.create_errors.labels(source).inc()
                self.metrics.create_refusals.labels(exc.reason).inc()
                raise
            except Exception as exc:
                self.metrics.create_errors.labels(source).inc()
                delay = next(delays, None)
                if delay is None:
                    raise
                # An apiserver that says how long to back off (429 Retry-After) is believed, within reason.
                asked = getattr(exc, "retry_after", None)
                if isinstance(asked, int | float):
                    delay = max(delay, min(float(asked), self._retry.max_delay))
                log.warning(
                    "run create failed; retrying", trigger_id=request.event.trigger_id, in_s=delay, error=repr(exc)
                )
                await asyncio.sleep(delay)
