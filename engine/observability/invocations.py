"""Invocation metrics: started, completed, failed, end-to-end and per-attempt latency.

Kept by the leader's invocation executor (:mod:`engine.partition.leader.invocations`),
so each invocation is counted once, by the process leading its partition, and a
replayed log counts nothing again. On the hot path the labelled children of one
service/handler are looked up once (:func:`for_target`, a dict hit afterwards), and the
families are :mod:`.loop_metrics` ones (lock-free, event loop only), so an attempt costs a
``perf_counter`` pair and one histogram observation, an invocation two counter increments
and one more observation (measured with ``bench/metrics_overhead.py``: docs/OBSERVABILITY.md).
"""

from __future__ import annotations

from typing import Final

from engine.observability.loop_metrics import CounterChild, HistogramChild, LoopCounter, LoopHistogram

__all__ = [
    "ATTEMPT_DURATION",
    "INVOCATIONS_COMPLETED",
    "INVOCATIONS_FAILED",
    "INVOCATIONS_STARTED",
    "INVOCATION_DURATION",
    "LATENCY_BUCKETS",
    "TargetMetrics",
    "for_target",
]

#: Seconds; from a sub-millisecond no-op to minutes of retries and sleeps.
LATENCY_BUCKETS: Final = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
)

INVOCATIONS_STARTED: Final = LoopCounter(
    "logstrate_invocations_started",
    "Invocations whose first attempt started (counted by the leader of their partition).",
    ["service", "handler"],
)
INVOCATIONS_COMPLETED: Final = LoopCounter(
    "logstrate_invocations_completed",
    "Invocations that ended with a value (counted by the leader that saw the end).",
    ["service", "handler"],
)
INVOCATIONS_FAILED: Final = LoopCounter(
    "logstrate_invocations_failed",
    "Invocations that ended with a terminal failure: the handler's TerminalError, or "
    "attempts used up with on_max_attempts = kill (counted by the leader that saw the end).",
    ["service", "handler"],
)
INVOCATION_DURATION: Final = LoopHistogram(
    "logstrate_invocation_duration_seconds",
    "End-to-end latency of an invocation: from its creation (the Invoke record's time) to "
    "its end, retries, suspensions and inbox waits included.",
    ["service", "handler"],
    buckets=LATENCY_BUCKETS,
)
ATTEMPT_DURATION: Final = LoopHistogram(
    "logstrate_invocation_attempt_duration_seconds",
    "Latency of one attempt (one endpoint request or HTTP/2 stream, until every record it "
    "wrote is durable), by how it ended: ended, suspended or failed.",
    ["service", "handler", "outcome"],
    buckets=LATENCY_BUCKETS,
)

_OUTCOMES: Final = ("ended", "suspended", "failed")


class TargetMetrics:
    """The labelled children of one service/handler, resolved once."""

    __slots__ = ("attempt", "completed", "duration", "failed", "started")

    def __init__(self, service: str, handler: str) -> None:
        self.started: CounterChild = INVOCATIONS_STARTED.labels(service, handler)
        self.completed: CounterChild = INVOCATIONS_COMPLETED.labels(service, handler)
        self.failed: CounterChild = INVOCATIONS_FAILED.labels(service, handler)
        self.duration: HistogramChild = INVOCATION_DURATION.labels(service, handler)
        #: Attempt latency children by outcome (``OutcomeKind.value``).
        self.attempt: dict[str, HistogramChild] = {outcome: ATTEMPT_DURATION.labels(service, handler, outcome) for outcome in _OUTCOMES}


_BY_TARGET: dict[tuple[str, str], TargetMetrics] = {}


def for_target(service: str, handler: str) -> TargetMetrics:
    """The metrics of ``service``/``handler`` (created on first use, then cached)."""
    key = (service, handler)
    metrics = _BY_TARGET.get(key)
    if metrics is None:
        metrics = _BY_TARGET[key] = TargetMetrics(service, handler)
    return metrics
