"""Prometheus metrics of the trigger path. One `Metrics` per app, each with its own registry (no global state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["Metrics"]

_LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.fires = Counter(
            "stargraph_trigger_fires", "Events emitted by triggers.", ["source"], registry=self.registry
        )
        self.runs_created = Counter(
            "stargraph_runs_created", "Runs created by the scheduler.", ["source"], registry=self.registry
        )
        self.dedupes = Counter(
            "stargraph_dedupes",
            "Events that matched an existing or in-flight Run (stage: index, inflight, sink).",
            ["stage"],
            registry=self.registry,
        )
        self.create_errors = Counter(
            "stargraph_run_create_errors", "Failed Run creation attempts.", ["source"], registry=self.registry
        )
        self.create_refusals = Counter(
            "stargraph_run_create_refusals",
            "Run creations refused for good, by reason (run_name_conflict: the Run's name is held by an object "
            "that is not this fire's Run, which is left alone).",
            ["reason"],
            registry=self.registry,
        )
        self.missed = Counter(
            "stargraph_cron_missed_fires",
            "Cron fires skipped because they were later than the starting deadline.",
            registry=self.registry,
        )
        self.webhook_rejects = Counter(
            "stargraph_webhook_rejects", "Webhook deliveries rejected, by reason.", ["reason"], registry=self.registry
        )
        self.webhook_ignored = Counter(
            "stargraph_webhook_ignored",
            "Verified webhook deliveries that created no Run: their event type is not in the trigger's filter.",
            registry=self.registry,
        )
        self.secret_reads = Counter(
            "stargraph_secret_reads",
            "Secrets whose data reached the operator: a GET of a Secret a WebhookTrigger names, when it is new or "
            "changed. The Secret watch carries metadata only.",
            registry=self.registry,
        )
        self.leader = Gauge(
            "stargraph_leader",
            "1 while this replica leads (fires cron schedules), 0 otherwise; 1 without leader election.",
            registry=self.registry,
        )
        self.scheduler_lag = Histogram(
            "stargraph_scheduler_lag_seconds",
            "Delay from when an event was due (its scheduled fire, later by a cron trigger's jitter) to its Run "
            "existing.",
            ["source"],
            buckets=_LAG_BUCKETS,
            registry=self.registry,
        )
