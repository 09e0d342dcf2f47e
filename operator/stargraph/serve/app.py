"""`create_app()`: the FastAPI application that hosts the triggers.

Nothing is built at import time. The lifespan discovers the trigger plugins, starts the scheduler, dispatches
`trigger_init` and `trigger_start` (isolated: a failing plugin is reported in `/readyz`, the others serve), mounts
the routes the plugins return (stargraph routes adapted, Starlette/FastAPI routes as they are; a plugin with a route
that is neither is reported failed and none of its routes is mounted), and at shutdown dispatches `trigger_stop`
and lets the scheduler finish the Runs already being created.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pluggy
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

from stargraph.clock import Clock, SystemClock
from stargraph.http import error_body
from stargraph.metrics import Metrics
from stargraph.plugin import load_trigger_plugins, new_plugin_manager
from stargraph.plugin.triggers_dispatcher import DispatchResult, gather_trigger_routes, run_trigger_lifecycle
from stargraph.runs import InMemoryRunSink, RunSink, RunSubmitter
from stargraph.scheduler import Scheduler
from stargraph.serve.adapter import mountable
from stargraph.serve.limits import HTTP_LIMITS

__all__ = ["App", "AppState", "answer_errors_in_json", "create_app"]

log = structlog.get_logger("stargraph.serve")

App = FastAPI
"""The ASGI application `create_app` returns; named here so that callers need not import FastAPI."""


@dataclass
class AppState:
    """What the running app holds; reachable as `app.state.stargraph`."""

    scheduler: Scheduler
    metrics: Metrics
    pm: pluggy.PluginManager
    ready: bool = False
    plugins: dict[str, str] = field(default_factory=dict)
    """Plugin name → "ok" or the error of its last failed lifecycle call."""

    def record(self, results: Iterable[DispatchResult], hook: str) -> None:
        for outcome in results:
            if outcome.success:
                self.plugins.setdefault(outcome.plugin_name, "ok")
            else:
                self.plugins[outcome.plugin_name] = f"{hook}: {outcome.error!r}"


async def _stop_triggers(state: AppState, timeout: float) -> None:
    state.record(await run_trigger_lifecycle(state.pm, "trigger_stop", timeout=timeout), "trigger_stop")


def _mountable_routes(outcome: DispatchResult, body_timeout: float) -> DispatchResult:
    """A plugin's routes as Starlette routes, or the plugin's failure if one of them cannot be mounted.

    All or nothing: a plugin serving half its routes would fail its callers in ways `/readyz` does not show.
    """
    if not outcome.success:
        return outcome
    try:
        routes = [mountable(route, body_timeout=body_timeout) for route in outcome.result]
    except TypeError as exc:
        log.error("trigger plugin routes cannot be mounted", plugin=outcome.plugin_name, error=str(exc))
        return DispatchResult(plugin_name=outcome.plugin_name, success=False, error=exc)
    return DispatchResult(plugin_name=outcome.plugin_name, success=True, result=routes)


def answer_errors_in_json(app: FastAPI) -> None:
    """Unknown paths, wrong methods and invalid requests answered with `error_body`, like every other error."""

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        reason = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(error_body(reason, str(exc.detail)), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(error_body("invalid_request", str(exc.errors())), status_code=400)


def create_app(
    *,
    sink: RunSink | None = None,
    pm: pluggy.PluginManager | None = None,
    plugins: Iterable[str] | None = None,
    deps: Mapping[str, Any] | None = None,
    clock: Clock | None = None,
    metrics: Metrics | None = None,
    scheduler_workers: int = 64,
    stop_timeout: float = 10.0,
    body_timeout: float = HTTP_LIMITS.body_timeout,
    resources: Callable[[], AbstractAsyncContextManager[Mapping[str, Any]]] | None = None,
    attach: Callable[[AppState], AbstractAsyncContextManager[None]] | None = None,
) -> FastAPI:
    """Build the app. `plugins` limits discovery to those entry-point names; `pm` replaces discovery altogether.

    `deps` is merged into what every trigger's `init` receives (`cron_specs`, `webhook_specs`, `authorizer`, ...).
    `body_timeout` is how long a route's request body may take to arrive (408 beyond).
    Two hooks let the operator wrap the lifespan. `resources()` is entered first and exited last; it may yield
    a `sink`, an `on_result` callback for the scheduler, and more deps (API clients live there). `attach(state)` is
    entered once the triggers serve and exited before they stop (the controller feeding them specs lives there).
    """
    metrics = metrics or Metrics()
    clock = clock or SystemClock()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            provided = dict(await stack.enter_async_context(resources())) if resources else {}
            manager = pm or new_plugin_manager()
            if pm is None:
                load_trigger_plugins(manager, only=plugins)
            run_sink = provided.pop("sink", None) or sink or InMemoryRunSink()
            scheduler = Scheduler(
                run_sink,
                metrics=metrics,
                clock=clock,
                workers=scheduler_workers,
                on_result=provided.pop("on_result", None),
            )
            state = AppState(scheduler=scheduler, metrics=metrics, pm=manager)
            app.state.stargraph = state
            await scheduler.start()
            stack.push_async_callback(scheduler.stop, timeout=stop_timeout)
            submitter: RunSubmitter = scheduler  # what plugins may rely on; mypy checks the Scheduler provides it
            all_deps = {"scheduler": submitter, "clock": clock, "metrics": metrics, **provided, **(deps or {})}
            state.record(await run_trigger_lifecycle(manager, "trigger_init", all_deps), "trigger_init")
            state.record(await run_trigger_lifecycle(manager, "trigger_start"), "trigger_start")
            stack.push_async_callback(_stop_triggers, state, stop_timeout)
            gathered = await gather_trigger_routes(manager)
            route_results = [_mountable_routes(outcome, body_timeout) for outcome in gathered]
            state.record(route_results, "trigger_routes")
            for outcome in route_results:
                app.router.routes.extend(outcome.result or ())
            if attach:
                await stack.enter_async_context(attach(state))
            state.ready = True
            log.info("serving", plugins=state.plugins)
            try:
                yield
            finally:
                state.ready = False

    app = FastAPI(title="stargraph", lifespan=lifespan, docs_url=None, redoc_url=None)
    answer_errors_in_json(app)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> JSONResponse:
        state: AppState | None = getattr(request.app.state, "stargraph", None)
        ready = state is not None and state.ready and state.scheduler.running
        body = {"status": "ready" if ready else "not ready", "plugins": state.plugins if state else {}}
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
