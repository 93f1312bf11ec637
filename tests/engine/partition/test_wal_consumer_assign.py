"""The WAL consumer's assignment callback (engine/partition/consumer.py) when Kafka cannot
tell the partition's high watermark yet (a broker restarting, a partition without a
leader): it must not raise (an exception there stops the consumer thread and the
process), and the partition is reported to the listener once the read succeeds."""

from __future__ import annotations

from collections.abc import Sequence

from confluent_kafka import TopicPartition

from engine.config import KafkaConfig
from engine.partition.consumer import WalConsumer, WalMessage
from tests.fixtures.kafka import KafkaBroker
from tests.fixtures.kafka_topics import create_topic, publish
from tests.fixtures.ports import wait_until


class _Listener:
    def __init__(self) -> None:
        self.assigned_calls: list[tuple[int, int]] = []
        self.ends: list[int] = []

    def applied_offset(self, partition: int) -> int | None:
        return None

    def apply(self, partition: int, messages: Sequence[WalMessage]) -> None:
        return None

    def assigned(self, partition: int, high_watermark: int) -> None:
        self.assigned_calls.append((partition, high_watermark))

    def reached_end(self, partition: int) -> None:
        self.ends.append(partition)

    def revoked(self, partition: int) -> None:
        return None


def test_an_unreadable_high_watermark_in_the_assignment_callback_is_retried_not_raised(
    kafka: KafkaBroker, topic_prefix: str,
) -> None:
    config = KafkaConfig(bootstrap_servers=kafka.bootstrap_servers, topic_prefix=topic_prefix, partitions=1)
    listener = _Listener()
    wal = WalConsumer(config, listener)
    consumer = wal._consumer
    try:
        # The partition's watermarks cannot be read: Kafka does not know it (yet).
        wal._on_assign(consumer, [TopicPartition(config.wal_topic, 0)])
        assert listener.assigned_calls == []
        create_topic(kafka.bootstrap_servers, config.wal_topic, 1)
        publish(kafka.bootstrap_servers, config.wal_topic, [(None, b"x"), (None, b"y")])
        wait_until(lambda: wal._report_assigned(consumer) or listener.assigned_calls, 30,
                   "the partition to be reported once its watermark can be read", interval=0.2)
        assert listener.assigned_calls == [(0, 2)]
    finally:
        consumer.close()
