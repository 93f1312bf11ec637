"""Partition metrics computed when ``/metrics`` is scraped: apply lag, inbox depth, timers.

Nothing of this is kept up to date on the hot path. At scrape time one LMDB read
transaction counts each assigned partition's inbox rows and timer rows (keys only) and
reads its applied offset; the WAL consumer's cached high watermark (librdkafka keeps it
from every fetch response, no request is made) gives the lag in records. The lag in
seconds is the age of the last applied record while records wait, 0 when caught up.

The admin API runs the scrape on a worker thread (:mod:`engine.admin.app`), so the scans
never block the event loop.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from typing import Final

import lmdb
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from engine.storage.tables import PartitionTables, TableHandles

__all__ = ["PartitionCollector", "PartitionSource"]

_LAG_RECORDS: Final = "logstrate_wal_apply_lag_records"
_LAG_SECONDS: Final = "logstrate_wal_apply_lag_seconds"
_INBOX: Final = "logstrate_inbox_depth"
_TIMERS: Final = "logstrate_timers_pending"


class PartitionSource:
    """Where the collector reads from; callables, so it holds no engine objects itself.

    ``assigned``: the WAL partitions this process applies; ``high_watermark``: the
    consumer's cached end of a partition (``None`` or negative when not known yet);
    ``last_applied_ms``: the Kafka timestamp of the last record applied, if any;
    ``reading``: held while the read transaction is open (the LMDB map is never
    remapped under it, :mod:`engine.storage.growth`)."""

    def __init__(
        self,
        env: lmdb.Environment,
        handles: TableHandles,
        assigned: Callable[[], Iterable[int]],
        high_watermark: Callable[[int], int | None],
        last_applied_ms: Callable[[int], int | None],
        reading: Callable[[], AbstractContextManager[None]] = contextlib.nullcontext,
    ) -> None:
        self.env = env
        self.reading = reading
        self.handles = handles
        self.assigned = assigned
        self.high_watermark = high_watermark
        self.last_applied_ms = last_applied_ms


class PartitionCollector(Collector):
    """Yields the four partition gauges from a :class:`PartitionSource` on each scrape."""

    def __init__(self, source: PartitionSource, clock: Callable[[], float] = time.time) -> None:
        self._source = source
        self._clock = clock

    def describe(self) -> Iterator[Metric]:
        # Names only: registering must not scan LMDB.
        yield from _families()

    def collect(self) -> Iterator[Metric]:
        lag_records, lag_seconds, inbox, timers = _families()
        source = self._source
        now_ms = self._clock() * 1000
        with source.reading(), source.env.begin(write=False) as txn:
            for partition in sorted(source.assigned()):
                tables = PartitionTables(txn, source.handles, partition)
                label = str(partition)
                applied = tables.fsm.applied_offset()
                high = source.high_watermark(partition)
                if high is not None and high >= 0:
                    behind = max(0, high - (0 if applied is None else applied + 1))
                    lag_records.add_metric([label], behind)
                    if behind == 0:
                        lag_seconds.add_metric([label], 0.0)
                    else:
                        last = source.last_applied_ms(partition)
                        if last is not None:
                            lag_seconds.add_metric([label], max(0.0, (now_ms - last) / 1000))
                inbox.add_metric([label], tables.inbox.count())
                for kind, count in tables.timers.count_by_kind().items():
                    timers.add_metric([label, kind.value.lower()], count)
        yield from (lag_records, lag_seconds, inbox, timers)


def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
    return (
        GaugeMetricFamily(
            _LAG_RECORDS,
            "WAL records of the partition not yet applied to LMDB by this process "
            "(the consumer's cached high watermark minus the applied offset + 1).",
            labels=["partition"],
        ),
        GaugeMetricFamily(
            _LAG_SECONDS,
            "Age of the last applied WAL record while records wait to be applied; 0 when caught up.",
            labels=["partition"],
        ),
        GaugeMetricFamily(
            _INBOX,
            "Invocations queued behind a running exclusive handler of their object "
            "(or ordering key), in every inbox of the partition.",
            labels=["partition"],
        ),
        GaugeMetricFamily(
            _TIMERS,
            "Timers waiting to fire in the partition, by kind: sleep, retry, delayed_invoke "
            "(a /send with a delay), cleanup (end of an invocation's retention).",
            labels=["partition", "kind"],
        ),
    )
