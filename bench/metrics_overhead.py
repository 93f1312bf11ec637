"""What the metrics cost one invocation on the hot path, measured with ``timeit``.

Run from the project root::

    .venv/bin/python -m bench.metrics_overhead [--number 200000]

Times, per invocation of one attempt that ends, the metric work the leader's invocation
executor does (``engine/partition/leader/invocations.py``: the cached children's lookup,
the started counter, two ``perf_counter`` reads around the attempt, the attempt histogram,
the completed counter, the end-to-end histogram and its clock read, and the tracing-off
check) and, per WAL record, the produce-latency observation made when delivery reports reach
the event loop (``engine/wal/appender.py``), on the real prometheus_client objects. A baseline
loop with nothing in it is subtracted. ``--tracing`` also times the spans of one
invocation with tracing on (off, the only cost is an ``is not None`` check).
"""

from __future__ import annotations

import argparse
import logging
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


def tracing_overhead_us(number: int = 5_000) -> float:
    """Microseconds per invocation of one attempt with tracing ON: the invocation's ids
    from its ``traceparent``, the attempt span, the invocation span, into the real
    batch processor (exporting to a closed port, so the export thread fails quietly)."""
    logging.getLogger("opentelemetry").setLevel(logging.CRITICAL)
    from engine.ids import InvocationId
    from engine.observability.tracing import Tracing
    from engine.wal.records import Header

    tracing = Tracing("http://127.0.0.1:9", instance="bench", exporter_timeout_s=0.1)
    invocation_id = InvocationId.parse("inv_1gdJBtdVEcM95d6EfLYmoyFa5oPqVmDNlv")
    headers = (Header("content-type", "application/json"),
               Header("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"))
    created_at_ms = int(time.time() * 1000)

    def per_invocation() -> None:
        trace = tracing.invocation(invocation_id, "BenchService", "handler", None, headers)
        tracing.start_attempt(trace, 1).end("ended")
        tracing.end_invocation(trace, created_at_ms)

    try:
        return min(timeit.repeat(per_invocation, number=number, repeat=3)) / number * 1e6
    finally:
        tracing.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=200_000)
    parser.add_argument("--tracing", action="store_true", help="also time an invocation's spans (tracing on)")
    args = parser.parse_args()
    print(f"metrics per invocation (1 attempt, ended): {invocation_overhead_us(args.number):.2f} us")
    print(f"WAL produce latency per record:            {produce_observation_us(args.number):.2f} us")
    if args.tracing:
        print(f"tracing ON, spans per invocation:          {tracing_overhead_us():.2f} us")


if __name__ == "__main__":
    main()
