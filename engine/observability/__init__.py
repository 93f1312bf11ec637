"""What an operator sees of a running engine: Prometheus metrics and OpenTelemetry traces.

One module per concern: :mod:`.invocations` (counters and latency histograms of
invocations and attempts, kept live on the hot path through cached label children),
:mod:`.wal` (WAL produce latency), :mod:`.partitions` (a collector computing apply lag,
inbox depth and pending timers when ``/metrics`` is scraped, nothing on the hot path),
:mod:`.tracing` (spans per invocation and attempt, off unless ``tracing_endpoint`` is
set). Everything registers in prometheus_client's default registry, which the admin
API serves on ``/metrics``. User guide: docs/OBSERVABILITY.md.
"""
