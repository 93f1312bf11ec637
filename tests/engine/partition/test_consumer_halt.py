"""The WAL consumer pauses a halted partition, keeps the others going, and on a due retry
goes on exactly at the halted record (real broker, real consumer group).

The listener is a small in-test implementation of the consumer's ``WalListener``
protocol (as the processor implements it): it halts partition 0 at its 5th record the
first time it sees it, with a short retry, and records what it applied.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from confluent_kafka import Producer

from engine.config import KafkaConfig
from engine.partition.consumer import WalConsumer, WalMessage
from engine.partition.halt import HaltReason, PartitionHalt
from engine.wal.topics import ensure_topics
from tests.fixtures.kafka import KafkaBroker
from tests.fixtures.ports import wait_until

HALT_AT = 4


class Listener:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.applied: dict[int, list[int]] = {0: [], 1: []}
        self.halts = 0
        self.assigned_calls: list[int] = []

    def applied_offset(self, partition: int) -> int | None:
        with self.lock:
            done = self.applied[partition]
            return done[-1] if done else None

    def apply(self, partition: int, messages: Sequence[WalMessage]) -> PartitionHalt | None:
        with self.lock:
            for message in messages:
                if partition == 0 and message.offset == HALT_AT and self.halts == 0:
                    self.halts += 1
                    return PartitionHalt(0, HALT_AT, HaltReason.STORAGE_ERROR, "disk full (test)", retry_after_s=5.0)
                self.applied[partition].append(message.offset)
        return None

    def assigned(self, partition: int, high_watermark: int) -> None:
        with self.lock:
            self.assigned_calls.append(partition)

    def reached_end(self, partition: int) -> None:
        pass

    def revoked(self, partition: int) -> None:
        pass


def test_a_halted_partition_is_paused_and_resumes_at_the_halted_record(kafka: KafkaBroker, topic_prefix: str) -> None:
    config = KafkaConfig(bootstrap_servers=kafka.bootstrap_servers, topic_prefix=topic_prefix, partitions=2)
    ensure_topics(config)
    producer = Producer({"bootstrap.servers": kafka.bootstrap_servers, "enable.idempotence": True})
    for partition in (0, 1):
        for n in range(10):
            producer.produce(config.wal_topic, f"{partition}-{n}".encode(), partition=partition)
    assert producer.flush(30) == 0

    listener = Listener()
    consumer = WalConsumer(config, listener)
    consumer.start()
    try:
        def halted_and_one_done() -> bool:
            with listener.lock:
                return listener.halts == 1 and listener.applied[1] == list(range(10))

        wait_until(halted_and_one_done, 60, "partition 0 to halt and partition 1 to be applied")
        # While 0 is halted, 1 goes on with new records; 0 stays where it stopped.
        for n in range(10, 15):
            producer.produce(config.wal_topic, f"1-{n}".encode(), partition=1)
        assert producer.flush(30) == 0
        wait_until(lambda: listener.applied_offset(1) == 14, 4, "partition 1 to go on")
        with listener.lock:
            assert listener.applied[0] == list(range(HALT_AT))

        def done() -> bool:
            with listener.lock:
                return listener.applied[0] == list(range(10)) and listener.applied[1] == list(range(15))

        wait_until(done, 60, "both partitions applied after the retry")
        with listener.lock:
            assert listener.halts == 1
            # Assigned once each, then partition 0 again when its retry resumed it.
            assert sorted(listener.assigned_calls) == [0, 0, 1]
    finally:
        consumer.stop()
