"""The serve app: lifespan, health, readiness, metrics and plugin routes, with built-in and broken plugins."""

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount
from starlette.routing import Route as StarletteRoute

from stargraph.http import HttpRequest, HttpResponse, Route
from stargraph.plugin import TriggerHooks, load_trigger_plugins, new_plugin_manager
from stargraph.serve import create_app
from tests.support.app import running_app


class BrokenStart:
    stopped = False

    def init(self, deps: Mapping[str, Any]) -> None: ...

    async def start(self) -> None:
        raise RuntimeError("cannot start")

    async def stop(self) -> None:
        BrokenStart.stopped = True

    def routes(self) -> list[Any]:
        return []


class Greeting(BaseModel):
    name: str


async def ping() -> dict[str, bool]:
    return {"pong": True}


async def plain(request: Request) -> PlainTextResponse:
    return PlainTextResponse("plain")


class Lifecycle:
    def init(self, deps: Mapping[str, Any]) -> None: ...
    def start(self) -> None: ...
    def stop(self) -> None: ...


class EveryKindOfRoute(Lifecycle):
    """Returns one route of each kind a plugin may: FastAPI (alone and from a router), Starlette, stargraph."""

    def routes(self) -> list[object]:
        router = APIRouter(prefix="/v1/acme")

        @router.post("/greet")
        async def greet(greeting: Greeting) -> dict[str, str]:
            return {"hello": greeting.name}

        async def neutral(request: HttpRequest) -> HttpResponse:
            return HttpResponse(status=200, body={"neutral": request.path_params["name"]})

        return [
            APIRoute("/v1/acme/ping", ping, methods=["GET"]),
            *router.routes,
            StarletteRoute("/v1/acme/plain", plain),
            Mount("/v1/acme/static", routes=[StarletteRoute("/file", plain)]),
            Route(path="/v1/acme/neutral/{name}", handler=neutral, methods=("GET",)),
        ]


class DuckRoute:
    """Shaped like a Starlette route, so the dispatcher passes it on, but not one the serve app can mount."""

    def matches(self, scope: Any) -> Any: ...
    def handle(self, scope: Any, receive: Any, send: Any) -> Any: ...


class HalfMountable(Lifecycle):
    def routes(self) -> list[object]:
        return [APIRoute("/v1/half/ping", ping, methods=["GET"]), DuckRoute()]


class NotRoutes(Lifecycle):
    def routes(self) -> list[object]:
        return ["/v1/not/a/route"]


async def test_health_ready_metrics_and_json_404() -> None:
    async with running_app(create_app()) as (http, state):
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        ready = await http.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["plugins"] == {"cron": "ok", "manual": "ok", "webhook": "ok"}
        metrics = (await http.get("/metrics")).text
        assert "stargraph_trigger_fires_total" in metrics and "stargraph_scheduler_lag_seconds" in metrics
        missing = await http.get("/nope")
        assert missing.status_code == 404 and missing.json()["error"]["reason"] == "not_found"
        assert (await http.get("/v1/runs")).status_code == 405
    assert not state.ready and not state.scheduler.running


async def test_a_plugin_that_fails_to_start_is_reported_and_still_stopped() -> None:
    pm = new_plugin_manager()
    load_trigger_plugins(pm, only=["manual"])
    pm.register(TriggerHooks(BrokenStart()), name="broken")
    async with running_app(create_app(pm=pm)) as (http, _):
        plugins = (await http.get("/readyz")).json()["plugins"]
        assert plugins["manual"] == "ok"
        assert plugins["broken"].startswith("trigger_start: RuntimeError")
        # The healthy plugin keeps serving.
        assert (await http.post("/v1/runs", json={})).status_code == 400
    assert BrokenStart.stopped


async def test_plugins_may_return_fastapi_starlette_and_stargraph_routes() -> None:
    pm = new_plugin_manager()
    load_trigger_plugins(pm, only=["manual"])
    pm.register(TriggerHooks(EveryKindOfRoute()), name="acme")
    async with running_app(create_app(pm=pm)) as (http, _):
        assert (await http.get("/readyz")).json()["plugins"] == {"manual": "ok", "acme": "ok"}
        assert (await http.get("/v1/acme/ping")).json() == {"pong": True}
        assert (await http.post("/v1/acme/greet", json={"name": "ada"})).json() == {"hello": "ada"}
        # FastAPI's own validation runs, answered in this product's error shape.
        invalid = await http.post("/v1/acme/greet", json={})
        assert invalid.status_code == 400 and invalid.json()["error"]["reason"] == "invalid_request"
        assert (await http.get("/v1/acme/plain")).text == "plain"
        assert (await http.get("/v1/acme/static/file")).text == "plain"
        assert (await http.get("/v1/acme/neutral/x")).json() == {"neutral": "x"}
        # The built-in plugin's stargraph routes are adapted as before.
        assert (await http.post("/v1/runs", json={})).status_code == 400


async def test_a_plugin_with_a_route_that_cannot_be_mounted_is_failed_and_the_others_serve() -> None:
    pm = new_plugin_manager()
    pm.register(TriggerHooks(EveryKindOfRoute()), name="acme")
    pm.register(TriggerHooks(HalfMountable()), name="half")
    pm.register(TriggerHooks(NotRoutes()), name="not_routes")
    async with running_app(create_app(pm=pm)) as (http, _):
        ready = await http.get("/readyz")
        assert ready.status_code == 200
        plugins = ready.json()["plugins"]
        assert plugins["acme"] == "ok"
        assert plugins["half"].startswith("trigger_routes: TypeError") and "DuckRoute" in plugins["half"]
        assert plugins["not_routes"].startswith("trigger_routes: TypeError")
        # None of a failed plugin's routes is mounted, not even its mountable one.
        assert (await http.get("/v1/half/ping")).status_code == 404
        assert (await http.get("/v1/acme/ping")).json() == {"pong": True}
