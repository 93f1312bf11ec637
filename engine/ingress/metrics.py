"""Prometheus metrics of the ingress (served on the admin port's ``/metrics``)."""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter, Gauge

__all__ = ["KAFKA_REFUSED", "PENDING", "WAL_UP"]

PENDING: Final = Gauge(
    "logstrate_ingress_pending_requests",
    "Ingress requests of this process waiting for an invocation's answer",
)

KAFKA_REFUSED: Final = Counter(
    "logstrate_ingress_kafka_unavailable",
    "Ingress requests answered 503 because Kafka did not take their record "
    "(accepted=false: nothing appended; accepted=unknown: not acknowledged within ingress_kafka_timeout_s)",
    ["accepted"],
)

WAL_UP: Final = Gauge(
    "logstrate_wal_up",
    "1 while the WAL producer's brokers acknowledge records, 0 while they are known to be down",
)
