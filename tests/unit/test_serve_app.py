"""The serve app's lifespan, health, readiness and metrics, with built-in and deliberately broken plugins."""

from collections.abc import Mapping
from typing import Any

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
