"""Prometheus metrics of the partition processors (served on the admin port's ``/metrics``)."""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter, Gauge

__all__ = ["EARLY_STARTS", "HELD_INVOKES", "LEADER", "SPECULATIONS"]

LEADER: Final = Gauge(
    "logstrate_partition_leader",
    "1 while this engine process leads the WAL partition, else 0",
    ["partition"],
)

EARLY_STARTS: Final = Counter(
    "logstrate_invocations_started_early",
    "First attempts started by this process as their Invoke was appended, before it was read back",
    ["partition"],
)

HELD_INVOKES: Final = Counter(
    "logstrate_call_invokes_held",
    "Invokes of calls held back for their first attempt's records (leader/deferred_invokes.py), "
    "by how they left: 'with_attempt' (one WAL record for both) or 'alone' (the attempt wrote nothing in time)",
    ["partition", "left"],
)

SPECULATIONS: Final = Counter(
    "logstrate_object_speculations",
    "Speculative first attempts of object calls (leader/speculation.py), by outcome: 'started'; "
    "'rejected' (the key changed before the Invoke was applied; run anew); 'abandoned' (the attempt "
    "outlived the hold; stopped and run anew)",
    ["partition", "outcome"],
)
