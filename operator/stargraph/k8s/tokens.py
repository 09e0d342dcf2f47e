"""The bearer token ``KubeClient`` sends, kept current as it rotates.

In-cluster tokens are bound and short-lived: the kubelet rewrites the projected token file well before expiry, so
the file is checked (one ``stat``) at most every ``check_interval`` seconds and re-read only when it changed; that
much file I/O on the event loop costs microseconds. A kubeconfig credential plugin may run a subprocess for seconds,
so its refresh runs in a worker thread, again at most every ``check_interval`` seconds.
"""

from __future__ import annotations

import asyncio
import os
import time

import structlog

from stargraph.k8s.credentials import Credentials
from stargraph.k8s.errors import ConfigError

__all__ = ["TokenProvider"]

log = structlog.get_logger("stargraph.k8s")


class TokenProvider:
    """``await provider.token()`` gives the bearer token to send now, or None for certificate-only credentials."""

    def __init__(self, credentials: Credentials, *, check_interval: float = 10.0) -> None:
        self._credentials = credentials
        self._check_interval = check_interval
        self._token = credentials.token
        self._dynamic = credentials.token_file is not None or credentials.refresh is not None
        self._next_check = 0.0
        self._file_stamp: tuple[int, int, int] | None = None
        self._lock = asyncio.Lock()

    async def token(self) -> str | None:
        # The hot path (every request) is a clock read; only one caller per interval does any work.
        if not self._dynamic or time.monotonic() < self._next_check:
            return self._token
        async with self._lock:
            if time.monotonic() >= self._next_check:
                await self._update()
                self._next_check = time.monotonic() + self._check_interval
        return self._token

    async def _update(self) -> None:
        token_file, refresh = self._credentials.token_file, self._credentials.refresh
        try:
            if token_file is not None:
                self._read_file(token_file)
            elif refresh is not None:
                self._token = await asyncio.to_thread(refresh)
        except Exception as e:
            if self._token is None:
                raise ConfigError(f"{self._credentials.source}: cannot read the bearer token: {e}") from e
            # A token that was valid a moment ago is better than none: keep it and try again next interval.
            log.warning("bearer token refresh failed; keeping the previous token", error=str(e))

    def _read_file(self, token_file: str) -> None:
        stat = os.stat(token_file)
        # The kubelet replaces the file through a symlink swap, so the inode changes even when mtime does not.
        stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if stamp == self._file_stamp:
            return
        with open(token_file, encoding="ascii") as f:
            token = f.read().strip()
        if not token:
            raise ConfigError(f"{token_file} is empty")
        self._token, self._file_stamp = token, stamp
