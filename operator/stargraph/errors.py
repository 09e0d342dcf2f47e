"""The one base of stargraph's own errors: each carries a stable `reason` and a human `message`.

`reason` is what machines key on (a metric label, a status condition's reason, an HTTP error body's `reason`);
`message` is a sentence for a person, naming the field or object at fault and never containing a secret. The
Kubernetes transport keeps its own tree (`stargraph.k8s.errors`), which carries what the apiserver said.
"""

from __future__ import annotations

__all__ = ["StargraphError"]


class StargraphError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
