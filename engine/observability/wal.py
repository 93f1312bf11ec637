"""WAL produce latency: from handing a record to the producer to Kafka's acknowledgement.

Observed on the WAL producer's poll thread from librdkafka's own measurement
(``Message.latency()``), so the event loop does no work for it and nothing is timed at
submit.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import Histogram

__all__ = ["PRODUCE_LATENCY"]

PRODUCE_LATENCY: Final = Histogram(
    "logstrate_wal_produce_latency_seconds",
    "Time from handing a WAL record to the producer to its acks=all acknowledgement "
    "(librdkafka's measurement; a RecordBatch counts once).",
    buckets=(0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0),
)
