"""Lifecycle dispatch isolates every plugin: raising, hanging or misbehaving ones never affect the others.

Both flavours: the plain reference functions (`dispatch_trigger_lifecycle`, `collect_trigger_routes`), which hand
back what each bound method returns, and the concurrent, timeout-bounded ones the serve app uses.
"""

import asyncio
import inspect
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

import pytest
import structlog
from starlette.responses import PlainTextResponse
from starlette.routing import Route as StarletteRoute

from stargraph.http import Route
from stargraph.plugin import TriggerHooks, new_plugin_manager
from stargraph.plugin.hookspecs import hookimpl
from stargraph.triggers import (
    DispatchResult,
    Trigger,
    collect_trigger_routes,
    dispatch_trigger_lifecycle,
    gather_trigger_routes,
    run_trigger_lifecycle,
)


class Recorder:
    """A well-behaved async trigger."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def init(self, deps: Mapping[str, Any]) -> str:
        self.calls.append(f"init:{sorted(deps)}")
        return "initialised"

    async def start(self) -> None:
        self.calls.append("start")

    async def stop(self) -> None:
        self.calls.append("stop")

    def routes(self) -> list[Route]:
        async def handler(request: Any) -> Any:
            raise NotImplementedError

        return [Route(path="/recorder", handler=handler)]


class SyncCounter:
    """A well-behaved sync trigger."""

    def init(self, deps: Mapping[str, Any]) -> str:
        return f"counting with {sorted(deps)}"

    def start(self) -> None: ...
    def stop(self) -> None: ...

    def routes(self) -> list[Route]:
        return []


class SyncRaiser:
    def init(self, deps: Mapping[str, Any]) -> None:
        raise RuntimeError("sync boom")

    def start(self) -> None:
        raise RuntimeError("sync boom")

    def stop(self) -> None:
        raise RuntimeError("sync boom")

    def routes(self) -> list[Route]:
        raise RuntimeError("sync boom")


class AsyncRaiser:
    async def init(self, deps: Mapping[str, Any]) -> None:
        raise ValueError("async boom")

    async def start(self) -> None:
        raise ValueError("async boom")

    async def stop(self) -> None:
        raise ValueError("async boom")

    async def routes(self) -> list[Route]:
        raise ValueError("async boom")


class AsyncHanger:
    async def init(self, deps: Mapping[str, Any]) -> None:
        await asyncio.Event().wait()

    async def start(self) -> None:
        await asyncio.Event().wait()

    async def stop(self) -> None:
        await asyncio.Event().wait()

    def routes(self) -> list[Route]:
        return []


class SyncHanger:
    """Blocks its thread, the way a plugin stuck on a socket would; released at the end of the test."""

    release = threading.Event()

    def init(self, deps: Mapping[str, Any]) -> None:
        self.release.wait(1)

    def start(self) -> None:
        self.release.wait(1)

    def stop(self) -> None:
        self.release.wait(1)

    def routes(self) -> list[Route]:
        self.release.wait(1)
        return []


class BadRoutes:
    def init(self, deps: Mapping[str, Any]) -> None: ...
    def start(self) -> None: ...
    def stop(self) -> None: ...

    def routes(self) -> list[str]:
        return ["/not-a-route"]


class StarletteRoutes:
    """Returns a framework route, which the dispatcher passes on for the serve layer to mount."""

    def init(self, deps: Mapping[str, Any]) -> None: ...
    def start(self) -> None: ...
    def stop(self) -> None: ...

    def routes(self) -> list[StarletteRoute]:
        return [StarletteRoute("/plain", lambda request: PlainTextResponse("plain"))]


def manager(**plugins: object) -> Any:
    pm = new_plugin_manager()
    for name, plugin in plugins.items():
        pm.register(TriggerHooks(plugin) if isinstance(plugin, Trigger) else plugin, name=name)
    return pm


@pytest.fixture(autouse=True)
def _release_hangers() -> Any:
    SyncHanger.release.clear()
    yield
    SyncHanger.release.set()


def by_name(results: list[DispatchResult]) -> dict[str, DispatchResult]:
    return {result.plugin_name: result for result in results}


@pytest.mark.parametrize("hook", ["trigger_init", "trigger_start", "trigger_stop"])
async def test_raising_and_hanging_plugins_do_not_stop_the_others(hook: str) -> None:
    good = Recorder()
    pm = manager(
        first=Recorder(),
        sync_raiser=SyncRaiser(),
        async_raiser=AsyncRaiser(),
        async_hanger=AsyncHanger(),
        sync_hanger=SyncHanger(),
        good=good,
    )
    started = time.monotonic()
    results = await run_trigger_lifecycle(pm, hook, {"scheduler": None}, timeout=0.2)
    elapsed = time.monotonic() - started

    assert [r.plugin_name for r in results] == [
        "first",
        "sync_raiser",
        "async_raiser",
        "async_hanger",
        "sync_hanger",
        "good",
    ]
    outcome = by_name(results)
    assert outcome["good"].success and outcome["first"].success
    assert good.calls and good.calls[-1].startswith(hook.removeprefix("trigger_"))
    assert isinstance(outcome["sync_raiser"].error, RuntimeError)
    assert isinstance(outcome["async_raiser"].error, ValueError)
    for hanger in ("async_hanger", "sync_hanger"):
        assert not outcome[hanger].success
        assert isinstance(outcome[hanger].error, TimeoutError)
        assert hook in str(outcome[hanger].error)
    # Plugins run concurrently: two hangers cost one timeout, not two.
    assert elapsed < 2.0


async def test_dispatch_result_contents() -> None:
    pm = manager(good=Recorder(), bad=SyncRaiser())
    good, bad = await run_trigger_lifecycle(pm, "trigger_init", {"x": 1})
    assert good == DispatchResult(plugin_name="good", success=True, result="initialised", error=None)
    assert bad.plugin_name == "bad" and bad.success is False and bad.result is None
    assert str(bad.error) == "sync boom"
    with pytest.raises(AttributeError):
        good.success = False  # type: ignore[misc]
    assert not hasattr(good, "__dict__")


async def test_sync_plugins_run_off_the_event_loop() -> None:
    seen: list[str] = []

    class ThreadProbe:
        def init(self, deps: Mapping[str, Any]) -> None:
            seen.append(threading.current_thread().name)

        def start(self) -> None: ...
        def stop(self) -> None: ...
        def routes(self) -> list[Route]:
            return []

    await run_trigger_lifecycle(manager(probe=ThreadProbe()), "trigger_init", {})
    assert seen and seen[0] != threading.main_thread().name


async def test_native_pluggy_plugins_are_dispatched_too() -> None:
    class Native:
        @hookimpl
        def trigger_start(self) -> str:
            return "native"

    results = await run_trigger_lifecycle(manager(native=Native(), good=Recorder()), "trigger_start")
    assert by_name(results)["native"].result == "native"


async def test_failures_are_logged_to_the_plugin_logger() -> None:
    with structlog.testing.capture_logs() as logs:
        await run_trigger_lifecycle(manager(bad=AsyncRaiser(), hang=AsyncHanger()), "trigger_stop", timeout=0.05)
    failures = {entry["plugin"]: entry for entry in logs if entry["log_level"] == "error"}
    assert set(failures) == {"bad", "hang"}
    assert failures["bad"]["hook"] == "trigger_stop"
    assert "async boom" in failures["bad"]["error"]


async def test_collect_routes_isolates_and_validates() -> None:
    pm = manager(good=Recorder(), raiser=AsyncRaiser(), bad_routes=BadRoutes(), hanger=SyncHanger())
    outcome = by_name(await gather_trigger_routes(pm, timeout=0.2))
    assert [route.path for route in outcome["good"].result] == ["/recorder"]
    assert isinstance(outcome["raiser"].error, ValueError)
    assert isinstance(outcome["bad_routes"].error, TypeError)
    assert isinstance(outcome["hanger"].error, TimeoutError)


async def test_unknown_or_non_lifecycle_hook_is_a_caller_error() -> None:
    with pytest.raises(ValueError, match="not a lifecycle hook"):
        await run_trigger_lifecycle(manager(), "trigger_routes", {})
    with pytest.raises(ValueError, match="not a lifecycle hook"):
        dispatch_trigger_lifecycle(manager(), "trigger_routes", {})


def test_the_reference_snippet_runs_verbatim(caplog: pytest.LogCaptureFixture) -> None:
    pm = manager(bad=SyncRaiser(), good=SyncCounter())
    deps = {"scheduler": None}
    logger = logging.getLogger("acme.app")
    with caplog.at_level(logging.ERROR, logger="acme.app"):
        # The Triggers Reference, verbatim:
        results = dispatch_trigger_lifecycle(pm, "trigger_init", deps)
        for r in results:
            if not r.success:
                logger.error("trigger %s failed: %s", r.plugin_name, r.error)

    snippet_lines = [record.getMessage() for record in caplog.records if record.name == "acme.app"]
    assert snippet_lines == ["trigger bad failed: sync boom"]
    # The raising plugin did not stop the one after it, whose sync `init` value is there as it returned it.
    assert by_name(results)["good"] == DispatchResult(
        plugin_name="good", success=True, result="counting with ['scheduler']"
    )


async def test_an_async_init_hands_back_its_coroutine_for_the_caller_to_await() -> None:
    recorder = Recorder()
    (outcome,) = dispatch_trigger_lifecycle(manager(recorder=recorder), "trigger_init", {"x": 1})
    assert outcome.success and inspect.iscoroutine(outcome.result)
    assert recorder.calls == []  # nothing ran yet: awaiting is the caller's
    assert await outcome.result == "initialised"
    assert recorder.calls == ["init:['x']"]


async def test_a_native_async_hookimpl_hands_back_its_coroutine_too() -> None:
    class Native:
        @hookimpl
        async def trigger_start(self) -> str:
            return "native"

    (outcome,) = dispatch_trigger_lifecycle(manager(native=Native()), "trigger_start")
    assert inspect.iscoroutine(outcome.result)
    assert await outcome.result == "native"


def test_the_plain_dispatch_logs_failures_to_the_plugin_logger() -> None:
    with structlog.testing.capture_logs() as logs:
        results = dispatch_trigger_lifecycle(manager(bad=SyncRaiser(), good=SyncCounter()), "trigger_stop")
    assert [(r.plugin_name, r.success) for r in results] == [("bad", False), ("good", True)]
    failures = [entry for entry in logs if entry["log_level"] == "error"]
    assert [(entry["plugin"], entry["hook"]) for entry in failures] == [("bad", "trigger_stop")]
    assert "sync boom" in failures[0]["error"]


async def test_collect_routes_is_the_plain_reference_call() -> None:
    pm = manager(
        good=Recorder(),
        framework=StarletteRoutes(),
        raiser=SyncRaiser(),
        bad_routes=BadRoutes(),
        async_routes=AsyncRaiser(),
    )
    outcome = by_name(collect_trigger_routes(pm))
    assert [route.path for route in outcome["good"].result] == ["/recorder"]
    assert [route.path for route in outcome["framework"].result] == ["/plain"]
    assert isinstance(outcome["raiser"].error, RuntimeError)
    assert isinstance(outcome["bad_routes"].error, TypeError)
    # An async `routes()` is not awaited here: its coroutine is the result, and what it raises is the caller's.
    assert outcome["async_routes"].success and inspect.iscoroutine(outcome["async_routes"].result)
    with pytest.raises(ValueError, match="async boom"):
        await outcome["async_routes"].result


async def test_gather_routes_passes_framework_routes_on() -> None:
    outcome = by_name(await gather_trigger_routes(manager(framework=StarletteRoutes(), good=Recorder())))
    assert [type(route) for route in outcome["framework"].result] == [StarletteRoute]
    assert [type(route) for route in outcome["good"].result] == [Route]
