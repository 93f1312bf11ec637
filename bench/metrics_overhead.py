"""What the metrics cost one invocation on the hot path, measured with ``timeit``.

Run from the project root::

    .venv/bin/python -m bench.metrics_overhead [--number 200000]

Times, per invocation of one attempt that ends, the metric work the leader's invocation
executor does (``engine/partition/leader/invocations.py``: the cached children's lookup,
the started counter, two ``perf_counter`` reads around the attempt, the attempt histogram,
the completed counter, the end-to-end histogram and its clock read, and the tracing-off
check) and, per WAL record, the produce-latency observation made when delivery reports reach
the event loop (``engine/wal/appender.py``), on the real prometheus_client objects. A baseline
loop with nothing in it is subtracted.
"""

from __future__ import annotations

import argparse
import time
import timeit

from engine.observability import invocations
from engine.observability.wal import PRODUCE_LATENCY_ALL


def invocation_overhead_us(number: int = 200_000) -> float:
    """Microseconds of metric work per invocation (one attempt, ended)."""
    tracing = None
    created_at_ms = int(time.time() * 1000)

    def per_invocation() -> None:
        metrics = invocations.for_target("BenchService", "handler")
        metrics.started.inc()
        if tracing is not None:  # tracing off: the only cost is this check
            raise AssertionError
        started = time.perf_counter()
        metrics.attempt["ended"].observe(time.perf_counter() - started)
        metrics.completed.inc()
        metrics.duration.observe(max(0.0, time.time() - created_at_ms / 1000))

    def nothing() -> None:
        pass

    per_invocation()  # children created outside the measurement, as after the first call
    best = min(timeit.repeat(per_invocation, number=number, repeat=5))
    base = min(timeit.repeat(nothing, number=number, repeat=5))
    return (best - base) / number * 1e6


def produce_observation_us(number: int = 200_000) -> float:
    """Microseconds per WAL record for the produce-latency observation."""
    observe = PRODUCE_LATENCY_ALL.observe
    best = min(timeit.repeat(lambda: observe(0.002), number=number, repeat=5))
    base = min(timeit.repeat(lambda: None, number=number, repeat=5))
    return (best - base) / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=200_000)
    args = parser.parse_args()
    print(f"metrics per invocation (1 attempt, ended): {invocation_overhead_us(args.number):.2f} us")
    print(f"WAL produce latency per record:            {produce_observation_us(args.number):.2f} us")


if __name__ == "__main__":
    main()
