"""kopf, run in a thread of its own: it watches the trigger kinds and hands every event to the controllers.

Why a thread: kopf installs its own SIGINT/SIGTERM handlers on the main thread's loop and, when it exits, cancels
tasks it did not start. In its own thread (kopf's documented embedding) it does neither, so the HTTP server owns
the signals and shuts down in our order: stop accepting, stop the watches, stop the triggers, finish the Runs in
flight. Every handler runs its work on the main loop, where the plugins and the scheduler live, so no state is
shared between threads.

Only `on.event` handlers are used: they put no finalizer on the objects (deleting a trigger never waits for the
operator) and write nothing back through kopf; status is written by `StatusWriter`. Peering is off (standalone).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

import kopf

from stargraph.k8s.credentials import Credentials
from stargraph.k8s.tokens import TokenProvider

__all__ = ["KopfRunner", "Watch"]

Reconcile = Callable[[str | None, dict[str, Any]], Coroutine[Any, Any, None]]


@dataclass(frozen=True)
class Watch:
    """One resource kopf watches, and the coroutine function (run on the main loop) that gets its events."""

    group: str
    version: str
    plural: str
    reconcile: Reconcile


def _watch(
    registry: kopf.OperatorRegistry, watch: Watch, on_main: Callable[[Coroutine[Any, Any, None]], Awaitable[None]]
) -> None:
    @kopf.on.event(watch.group, watch.version, watch.plural, registry=registry, id=f"{watch.plural}.{watch.group}")
    async def handler(event: kopf.RawEvent, **_: Any) -> None:
        await on_main(watch.reconcile(event.get("type"), dict(event["object"])))


def _registry(
    watches: Sequence[Watch], credentials: Credentials, main: asyncio.AbstractEventLoop
) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    async def on_main(coro: Coroutine[Any, Any, None]) -> None:
        # Submitted from an empty context: kopf's context variables hold the whole event (body included), and every
        # task the reconciler starts (one per cron trigger) would otherwise keep a copy of it alive.
        submitted = contextvars.Context().run(asyncio.run_coroutine_threadsafe, coro, main)
        await asyncio.wrap_future(submitted)

    @kopf.on.login(registry=registry)
    async def login(**_: Any) -> kopf.ConnectionInfo:
        token = await TokenProvider(credentials).token()
        return kopf.ConnectionInfo(
            server=credentials.server,
            ca_path=credentials.ca_file,
            ca_data=credentials.ca_data,
            insecure=not credentials.verify,
            certificate_path=credentials.cert_file,
            private_key_path=credentials.key_file,
            scheme="Bearer" if token else None,
            token=token,
        )

    for watch in watches:
        _watch(registry, watch, on_main)

    return registry


def _settings() -> kopf.OperatorSettings:
    settings = kopf.OperatorSettings()
    settings.posting.enabled = False  # our Events are posted by the controllers, with reasons users can filter on
    # The watched resources and namespaces are fixed at start-up; scanning for new CRDs and namespaces would need
    # cluster-wide list/watch on both, which the operator's least-privilege RBAC does not grant (and kopf retries
    # each refusal for ~54 s before watching anything).
    settings.scanning.disabled = True
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    # Each object gets its own worker while it has events; at start-up that is every trigger at once. Bounding them
    # bounds memory (the handlers are quick), and an idle worker leaves soon instead of after 5 s.
    settings.queueing.worker_limit = 64
    settings.queueing.idle_timeout = 0.5
    return settings


class KopfRunner:
    def __init__(
        self,
        *,
        credentials: Credentials,
        watches: Sequence[Watch],
        namespaces: Sequence[str] = (),
        ready_timeout: float = 60.0,
    ) -> None:
        self._credentials = credentials
        self._watches = list(watches)
        self._namespaces = list(namespaces)
        self._ready_timeout = ready_timeout
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    async def start(self) -> None:
        """Start watching; returns once kopf is up (its initial listings are then on their way)."""
        registry = _registry(self._watches, self._credentials, asyncio.get_running_loop())
        # kopf logs every handled event at INFO; at 10,000 triggers that is most of the operator's CPU.
        logging.getLogger("kopf").setLevel(logging.WARNING)
        self._thread = threading.Thread(target=self._run, args=(registry,), name="kopf", daemon=True)
        self._thread.start()
        if not await asyncio.to_thread(self._ready.wait, self._ready_timeout):
            raise RuntimeError(f"kopf did not become ready within {self._ready_timeout:g}s: {self.error!r}")

    async def stop(self, *, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, timeout)

    def _run(self, registry: kopf.OperatorRegistry) -> None:
        try:
            asyncio.run(
                kopf.operator(
                    registry=registry,
                    settings=_settings(),
                    standalone=True,
                    clusterwide=not self._namespaces,
                    namespaces=self._namespaces,
                    stop_flag=self._stop,
                    ready_flag=self._ready,
                )
            )
        except BaseException as exc:
            self.error = exc
            raise
