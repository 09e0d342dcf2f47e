"""The scheduler: turns TriggerEvents into exactly one Run each, deduplicating by idempotency key."""

from stargraph.scheduler.scheduler import RetryPolicy, Scheduler

__all__ = ["RetryPolicy", "Scheduler"]
