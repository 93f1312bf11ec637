"""How the engine's consumers wait at the end of a topic they tail, without costing CPU while idle.

An idle engine must be idle (a few tenths of a percent of a core, and next to nothing
for its broker). What an idle tailing consumer costs is decided by two numbers:

``fetch.wait.max.ms`` (:data:`TAIL_FETCH_WAIT_MS`)
    How long the broker holds a fetch that found nothing new before it answers empty.
    With ``fetch.min.bytes=1`` (librdkafka's default) the broker answers *as soon as*
    a record arrives, so a long wait adds no latency to a record; it only decides how
    many empty fetches per second the broker serves for a consumer that reads nothing:
    ``1000 / fetch.wait.max.ms`` each. At 10 ms that is 100 requests a second, which
    was most of the dev broker's idle CPU. Measured on a single-node broker, from a
    produce (acks=all) to its delivery on a tailing consumer: p50 1.5-1.9 ms at both
    20 ms and 500 ms.

    What a long wait does delay: (1) ``PARTITION_EOF``, which librdkafka reports only
    from a fetch that started at the end, i.e. one wait after the last record;
    (2) requests that librdkafka sends on the same broker connection as the fetch,
    notably ``get_watermark_offsets(cached=False)`` (ListOffsets), which queue behind
    a fetch in flight (Kafka serves one request per connection at a time). Commits and
    group heartbeats use the separate coordinator connection and are not delayed.
    A consumer that needs either on its hot path must ask for watermarks from another
    client (or before it starts fetching) and not wait for EOF.

the ``poll`` timeout (:data:`TAIL_POLL_S`)
    ``poll`` returns with the first record, so its timeout adds no latency either; it
    is how often an idle thread wakes up (to check whether it should stop), and so
    bounds how long stopping takes.
"""

from __future__ import annotations

from typing import Final

__all__ = ["TAIL_FETCH_WAIT_MS", "TAIL_POLL_S"]

TAIL_FETCH_WAIT_MS: Final = 500
"""``fetch.wait.max.ms`` of the engine's tailing consumers (librdkafka's default)."""

TAIL_POLL_S: Final = 0.5
"""``poll`` timeout of a thread that tails a topic: idle wake-ups per second and stop latency."""
