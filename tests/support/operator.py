"""`stargraph operator` as a real subprocess, and the small helpers the end-to-end tests share.

The operator under test runs exactly as a user starts it (``python -m stargraph.cli operator --kubeconfig ...``),
in its own process group, listening on a free loopback port, logging JSON to a file. ``start()`` returns once
``/readyz`` answers 200; ``stop()`` sends SIGTERM and returns the exit code; ``kill()`` sends SIGKILL;
``pause()``/``resume()`` send SIGSTOP/SIGCONT (a frozen process whose connections stay open). The log's tail is what
a failing test shows (see ``tests/e2e/conftest.py``); ``log_records()`` are its JSON records, for a test to read what
the operator itself recorded and when.

    with OperatorProcess(kubeconfig, log_dir) as op:
        httpx.get(op.url + "/readyz")

``eventually`` polls a condition with a short interval and a bounded timeout; ``stays`` asserts that one holds
for a while. ``Kubectl`` runs kubectl against a kubeconfig with a private discovery cache.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self, TypeVar

import httpx

from tests.support.controlplane import _die_with_parent

__all__ = ["Kubectl", "OperatorProcess", "eventually", "free_port", "stays"]

T = TypeVar("T")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def eventually(fn: Callable[[], T | None], *, timeout: float = 10.0, interval: float = 0.1, what: str = "") -> T:
    """Call ``fn`` until it returns a truthy value without raising ``AssertionError``; return that value.

    On timeout, fail with the last assertion (or the last falsy value), naming ``what``.
    """
    deadline = time.monotonic() + timeout
    last: str = ""
    while True:
        try:
            result = fn()
        except AssertionError as exc:
            last = f"last assertion: {exc}"
        else:
            if result:
                return result
            last = f"last value: {result!r}"
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {timeout:g}s: {what or getattr(fn, '__name__', 'condition')}; {last}")
        time.sleep(interval)


def stays(fn: Callable[[], None], *, duration: float, interval: float = 0.1) -> None:
    """Assert that ``fn`` (which raises ``AssertionError`` when the condition is broken) holds for ``duration`` s."""
    deadline = time.monotonic() + duration
    while True:
        fn()
        if time.monotonic() >= deadline:
            return
        time.sleep(interval)


class Kubectl:
    """``kubectl --kubeconfig <kubeconfig>`` with a private discovery cache (the apiserver is new each session)."""

    def __init__(self, kubeconfig: Path, cache_dir: Path) -> None:
        self._base = ["kubectl", "--kubeconfig", str(kubeconfig), "--cache-dir", str(cache_dir)]

    def run(self, *args: str, stdin: str | None = None, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self._base, *args], input=stdin, capture_output=True, text=True, timeout=timeout, check=False
        )

    def ok(self, *args: str, stdin: str | None = None, timeout: float = 60.0) -> str:
        result = self.run(*args, stdin=stdin, timeout=timeout)
        assert result.returncode == 0, f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}"
        return result.stdout


class OperatorProcess:
    """One ``stargraph operator`` subprocess on 127.0.0.1:<free port>, logging JSON to ``log_dir/<name>-<port>.log``."""

    def __init__(
        self,
        kubeconfig: Path,
        log_dir: Path,
        *,
        name: str = "operator",
        extra_args: Sequence[str] = (),
        python: str = sys.executable,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self._env = dict(env or {})
        self.kubeconfig = kubeconfig
        self.port = free_port()
        self.log_file = log_dir / f"{name}-{self.port}.log"
        self._args = [
            python,
            "-m",
            "stargraph.cli",
            "operator",
            "--kubeconfig",
            str(kubeconfig),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--log-format",
            "json",
            *extra_args,
        ]
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self._process is not None, "not started"
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        return None if self._process is None else self._process.poll()

    def start(self, *, ready_timeout: float = 60.0) -> Self:
        """Spawn the process and wait until ``/readyz`` answers 200 (fails early if the process exits)."""
        assert self._process is None, "an OperatorProcess starts once"
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_file.open("ab")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self._env}
        self._process = subprocess.Popen(
            self._args,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: signals reach it and nothing else
            preexec_fn=_die_with_parent(os.getpid()),  # and it dies with the test run, even one killed -9
            cwd=self.log_file.parent,  # not the repo root, whose operator/ directory is no package to import
            env=env,
        )
        atexit.register(self._reap)
        try:
            self.wait_ready(timeout=ready_timeout)
        except BaseException:
            self.kill()
            raise
        return self

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/readyz", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_ready(self, *, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready():
            if self.returncode is not None:
                raise RuntimeError(f"{self.name} exited with {self.returncode} before ready:\n{self.log_tail()}")
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{self.name} not ready within {timeout:g}s:\n{self.log_tail()}")
            time.sleep(0.05)

    def stop(self, *, timeout: float = 20.0) -> int:
        """SIGTERM, wait up to ``timeout`` s, return the exit code (SIGKILL and raise if it does not exit)."""
        process = self._require()
        if process.poll() is None:
            self._signal(signal.SIGTERM)
            self._signal(signal.SIGCONT)  # a paused process would keep the SIGTERM pending forever
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise TimeoutError(f"{self.name} did not exit within {timeout:g}s of SIGTERM") from None
        self._close()
        return process.returncode

    def terminate(self) -> None:
        """Send SIGTERM without waiting (``stop()`` then waits); lets several processes drain at once."""
        if self._require().poll() is None:
            self._signal(signal.SIGTERM)
            self._signal(signal.SIGCONT)  # a paused process would keep the SIGTERM pending forever

    def pause(self) -> None:
        """SIGSTOP to the whole process group: it runs no code, yet its connections stay open, until ``resume()``."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT to the whole process group."""
        self._signal(signal.SIGCONT)

    def kill(self) -> int:
        """SIGKILL (to the whole process group) and return the exit code."""
        process = self._require()
        if process.poll() is None:
            self._signal(signal.SIGKILL)
            process.wait()
        self._close()
        return process.returncode

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def log_records(self) -> list[dict[str, Any]]:
        """The JSON records logged so far, in order; other lines (a traceback printed at a crash) are skipped."""
        try:
            lines = self.log_file.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return []
        records: list[dict[str, Any]] = []
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                records.append(record)
        return records

    def _require(self) -> subprocess.Popen[bytes]:
        assert self._process is not None, "not started"
        return self._process

    def _signal(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, sig)

    def _close(self) -> None:
        atexit.unregister(self._reap)
        if self._log is not None:
            self._log.close()
            self._log = None

    def _reap(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self.kill()

    def __enter__(self) -> Self:
        return self.start() if self._process is None else self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._process is not None and self._process.poll() is None:
            with contextlib.suppress(TimeoutError):  # stop() has killed it then
                self.stop(timeout=10.0)
        self._close()
