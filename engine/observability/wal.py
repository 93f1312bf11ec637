"""WAL produce latency: from handing a record to the producer to Kafka's acknowledgement.

Observed from librdkafka's own measurement (``Message.latency()``) when the delivery
reports are handed to the event loop, so nothing is timed at submit; a
:mod:`.loop_metrics` histogram, updated on the event loop only.
"""

from __future__ import annotations

from typing import Final

from engine.observability.loop_metrics import LoopHistogram

__all__ = ["PRODUCE_LATENCY", "PRODUCE_LATENCY_ALL"]

PRODUCE_LATENCY: Final = LoopHistogram(
    "logstrate_wal_produce_latency_seconds",
    "Time from handing a WAL record to the producer to its acks=all acknowledgement "
    "(librdkafka's measurement; a RecordBatch counts once).",
    [],
    buckets=(0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0),
)

PRODUCE_LATENCY_ALL: Final = PRODUCE_LATENCY.labels()
"""The one (unlabelled) child."""
