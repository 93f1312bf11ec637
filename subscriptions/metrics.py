"""Prometheus metrics of the subscription consumers (served by the admin API's ``/metrics``).

Labels are the subscription id and the source topic (and partition for lag), so a
dashboard can sum over processes: each engine process reports the partitions it owns.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter, Gauge

__all__ = ["BACKPRESSURE_PAUSES", "EVENTS_FAILED", "EVENTS_INGESTED", "LAG", "forget_partition"]

EVENTS_INGESTED: Final = Counter(
    "logstrate_subscription_events_ingested",
    "Kafka records turned into invocations (durably appended to the WAL).",
    ["subscription", "topic"],
)
EVENTS_FAILED: Final = Counter(
    "logstrate_subscription_events_failed",
    "Kafka records that could not become invocations (reason: decode, key, dead-lettered).",
    ["subscription", "topic", "reason"],
)
BACKPRESSURE_PAUSES: Final = Counter(
    "logstrate_subscription_backpressure_pauses",
    "Times the consumer paused its partitions because the engine's WAL producer queue reached "
    "subscription_pause_at_queued (it resumes at subscription_resume_at_queued).",
    ["subscription", "topic"],
)
LAG: Final = Gauge(
    "logstrate_subscription_lag",
    "Records in the source partition after the consumer's position (end offset - position).",
    ["subscription", "topic", "partition"],
)


def forget_partition(subscription: str, topic: str, partition: int) -> None:
    """Drop the lag series of a partition this process no longer owns."""
    try:
        LAG.remove(subscription, topic, str(partition))
    except KeyError:
        pass
