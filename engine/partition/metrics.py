"""Prometheus metrics of the partition processors (served on the admin port's ``/metrics``)."""

from __future__ import annotations

from typing import Final

from prometheus_client import Gauge

__all__ = ["LEADER"]

LEADER: Final = Gauge(
    "logstrate_partition_leader",
    "1 while this engine process leads the WAL partition, else 0",
    ["partition"],
)
