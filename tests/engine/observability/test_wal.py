"""WAL produce latency: every acknowledged record is observed, from librdkafka's measurement."""

from __future__ import annotations

import asyncio

from engine.config import KafkaConfig
from engine.observability.wal import PRODUCE_LATENCY_ALL
from engine.wal.appender import WalAppender
from engine.wal.records import OutboxTruncate
from tests.fixtures.kafka import KafkaBroker
from tests.fixtures.kafka_topics import create_topic

RECORDS = 20


def test_each_acknowledged_wal_record_is_observed(kafka: KafkaBroker, topic_prefix: str) -> None:
    config = KafkaConfig(bootstrap_servers=kafka.bootstrap_servers, topic_prefix=topic_prefix, partitions=1)
    create_topic(kafka.bootstrap_servers, config.wal_topic, 1)
    before_count, before_sum = sum(PRODUCE_LATENCY_ALL.counts), PRODUCE_LATENCY_ALL.sum

    async def append() -> list[int]:
        appender = WalAppender(config)
        try:
            return list(await asyncio.gather(*(appender.append(0, OutboxTruncate(i)) for i in range(RECORDS))))
        finally:
            await asyncio.to_thread(appender.close)

    offsets = asyncio.run(append())
    assert sorted(offsets) == list(range(RECORDS))
    assert sum(PRODUCE_LATENCY_ALL.counts) - before_count == RECORDS
    added = PRODUCE_LATENCY_ALL.sum - before_sum
    # Loopback acks=all: more than nothing, less than the delivery timeout per record.
    assert 0 < added < 30 * RECORDS
