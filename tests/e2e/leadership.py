"""Leader election of operator processes under test: how they are started, who leads now, and what they recorded.

`leading` reads a replica's `stargraph_leader` gauge (the present); `leadership` reads the "started leading" and
"stopped leading" records of its JSON log (the past, each with the time the replica itself stamped on it), so a
test can order a hand-over from what the replicas did rather than from when its own polling noticed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import httpx
from kubernetes.client import ApiClient

from tests.e2e.conftest import OperatorIdentity, Operators
from tests.e2e.kube import create, cron_trigger, list_runs, parse_time
from tests.support.operator import OperatorProcess, eventually

__all__ = [
    "LEASE",
    "LeadershipRecord",
    "elect_args",
    "electing_pair",
    "firing_every_second",
    "leadership",
    "leading",
    "only",
    "the_leader",
]

LEASE = {"duration": 4.0, "renew": 3.0, "retry": 0.5}

_EVENTS = ("started leading", "stopped leading")


def elect_args(identity: OperatorIdentity) -> list[str]:
    return [
        "--leader-elect",
        "--leader-election-namespace", identity.lease_namespace,
        "--leader-election-name", identity.lease_name,
        "--leader-election-lease-duration", str(LEASE["duration"]),
        "--leader-election-renew-deadline", str(LEASE["renew"]),
        "--leader-election-retry-period", str(LEASE["retry"]),
    ]  # fmt: skip


def leading(process: OperatorProcess) -> bool:
    try:
        metrics = httpx.get(f"{process.url}/metrics", timeout=2).text
    except httpx.HTTPError:
        return False
    return "stargraph_leader 1.0" in metrics


def the_leader(*processes: OperatorProcess) -> OperatorProcess:
    def one() -> OperatorProcess | None:
        leaders = [p for p in processes if leading(p)]
        return leaders[0] if len(leaders) == 1 else None

    return eventually(one, timeout=LEASE["duration"] + 10, what="exactly one leader")


@dataclass(frozen=True)
class LeadershipRecord:
    event: str
    """"started leading" or "stopped leading"."""
    identity: str
    """The replica's identity in the Lease."""
    at: datetime
    """When the replica logged it."""
    renew_time: datetime | None
    """The Lease `renewTime` of the replica's last successful write: the moment every other replica's wait began."""
    reason: str | None
    """Why it stopped leading (None on starting)."""


def leadership(process: OperatorProcess) -> list[LeadershipRecord]:
    """The replica's leadership records, oldest first."""
    return [
        LeadershipRecord(
            event=record["event"],
            identity=record.get("identity", ""),
            at=parse_time(record["timestamp"]),
            renew_time=parse_time(record["renew_time"]) if record.get("renew_time") else None,
            reason=record.get("reason"),
        )
        for record in process.log_records()
        if record.get("logger") == "stargraph.k8s.lease" and record.get("event") in _EVENTS
    ]


def only(process: OperatorProcess, event: str) -> LeadershipRecord | None:
    """The replica's one record of `event`; None while there is none; fails if there are several."""
    found = [record for record in leadership(process) if record.event == event]
    assert len(found) <= 1, f"{process.name} logged {event!r} {len(found)} times: {found}"
    return found[0] if found else None


def electing_pair(operators: Operators, identity: OperatorIdentity) -> tuple[OperatorProcess, OperatorProcess]:
    """Two replicas `a` and `b` with leader election, once one of them leads: (leader, follower)."""
    a = operators.start("a", extra_args=elect_args(identity))
    b = operators.start("b", extra_args=elect_args(identity))
    leader = the_leader(a, b)
    return leader, b if leader is a else a


def firing_every_second(api: ApiClient, namespace: str, name: str) -> None:
    """CronTrigger `name` on every second (catch-up All, 60 s deadline), applied; returns once it has three Runs."""
    create(api, namespace, cron_trigger(name, "* * * * * *", startingDeadlineSeconds=60, catchUp="All"))
    eventually(lambda: len(list_runs(api, namespace)) >= 3 or None, timeout=15, what="Runs from the leader")
