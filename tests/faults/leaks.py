"""Secrets the fault tests use, and the search for them where they must never appear: logs and error bodies.

A test registers every webhook secret and bearer token it uses (`secret()`), every HTTP error body it receives
(`error_body()`) and whatever else users read (`observed()`); `assert_none_leaked(operators)` stops the operators
and searches their whole log files and those texts for each secret, as sent and base64-encoded (how a Secret's
`data` holds it). A finding names the secret by a short fingerprint only, so the failure report leaks nothing
either.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from pathlib import Path

import yaml

from tests.e2e.conftest import Operators

__all = ["LeakWatch", "kubeconfig_token"]

_MIN_SECRET_CHARS = 16


def kubeconfig_token(kubeconfig: Path) -> str:
    """The bearer token of a kubeconfig's (only) user."""
    token: str = yaml.safe_load(kubeconfig.read_text())["users"][0]["user"]["token"]
    return token


def _fingerprint(secret: str) -> str:
    return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()[:12]


class LeakWatch:
    def __init__(self) -> None:
        self._secrets: dict[str, str] = {}
        self._bodies: list[bytes] = []
        self._observed: list[tuple[str, bytes]] = []

    @property
    def error_bodies(self) -> int:
        return len(self._bodies)

    def secret(self, value: str, *, what: str) -> str:
        """Watch for `value` (returned, for use in a call); it must be long enough never to occur by chance."""
        assert len(value) >= _MIN_SECRET_CHARS, f"{what}: a secret this short could occur by chance"
        self._secrets[value] = what
        return value

    def error_body(self, body: bytes) -> None:
        self._bodies.append(body)

    def observed(self, place: str, text: bytes) -> None:
        """Search `text` too (a trigger's status, the Events): what the operator wrote where users read."""
        self._observed.append((place, text))

    def findings(self, log_files: Iterable[Path]) -> list[str]:
        """Where a watched secret appears: '<what> (<fingerprint>) in <place>' for each occurrence."""
        places = [(f"log {path.name}", path.read_bytes()) for path in log_files]
        places += [(f"error body #{index}", body) for index, body in enumerate(self._bodies)]
        places += self._observed
        found = []
        for secret, what in self._secrets.items():
            forms = {secret.encode(), base64.b64encode(secret.encode())}
            for place, text in places:
                if any(form in text for form in forms):
                    found.append(f"{what} ({_fingerprint(secret)}) in {place}")
        return found

    def assert_none_leaked(self, operators: Operators) -> None:
        """Stop `operators` (their shutdown is logged too), then search their logs and the error bodies."""
        operators.close()
        logs = [process.log_file for process in operators.started]
        assert logs, "no operator log to search"
        assert all(log.stat().st_size > 0 for log in logs), "an operator log is empty: nothing was searched"
        findings = self.findings(logs)
        assert not findings, f"secrets leaked ({len(findings)}): {findings}"
