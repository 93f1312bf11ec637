"""Announcing leadership (engine/partition/processor.py) against the real broker and LMDB.

The consumer group is played by the test: it calls the processor's ``assigned`` and
``revoked`` as the WAL consumer's callbacks would, so a rebalance can be placed exactly
where a race needs it. Records are real: appended by a real ``WalAppender``, read back
by a real consumer on a pump thread and applied to a real LMDB environment. The
partition leader is a recorder (what it does is not under test here).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from engine.config import KafkaConfig
from engine.partition.consumer import WalMessage
from engine.partition.leader import egress as egress_module
from engine.partition.leader.egress import EgressProducers
from engine.partition.processor import PartitionProcessors
from engine.storage.environment import StorageEnvironment
from engine.storage.tables import TableHandles
from engine.wal.appender import WalAppender
from engine.wal.records import AnnounceLeader
from tests.fixtures.kafka import KafkaBroker
from tests.fixtures.kafka_topics import create_topic
from tests.fixtures.ports import free_port


class _Leader:
    def __init__(self, partition: int, epoch: int, started: list[tuple[int, int]], producer: Any) -> None:
        self.partition, self.epoch, self.producer = partition, epoch, producer
        self._started = started

    def start(self) -> None:
        self._started.append((self.partition, self.epoch))

    async def stop(self) -> None:
        return None

    def handle(self, action: object) -> None:
        return None


class _CountingAppender(WalAppender):
    """The real appender; counts announcement attempts."""

    calls = 0

    async def append(self, partition: int, record: Any, **kwargs: Any) -> int:
        self.calls += 1
        return await super().append(partition, record, **kwargs)


class _Node:
    """One engine process's processors, fed by a pump thread reading the real WAL."""

    def __init__(self, name: str, kafka: KafkaConfig, data_dir: Path, loop: asyncio.AbstractEventLoop,
                 before_announce: Callable[[int], Awaitable[None]] | None = None,
                 egress: EgressProducers | None = None, delivery_timeout_ms: int = 30_000) -> None:
        self.storage = StorageEnvironment(data_dir, 64)
        self.appender = _CountingAppender(kafka, delivery_timeout_ms=delivery_timeout_ms)
        self.started: list[tuple[int, int]] = []
        self.leaders: list[_Leader] = []

        def make(partition: int, epoch: int) -> Any:
            leader = _Leader(partition, epoch, self.started, egress.producer(partition) if egress else None)
            self.leaders.append(leader)
            return leader

        self.processors = PartitionProcessors(
            env=self.storage.env, handles=TableHandles.open(self.storage.env), partition_count=1, node_name=name,
            appender=self.appender, loop=loop, leader_factory=make, before_announce=before_announce,
        )
        self._kafka = kafka
        self._stop = threading.Event()
        self._pump: threading.Thread | None = None

    def start_pump(self) -> None:
        self._pump = threading.Thread(target=self._run, daemon=True)
        self._pump.start()

    def _run(self) -> None:
        consumer = Consumer({"bootstrap.servers": self._kafka.bootstrap_servers, "group.id": "unused",
                             "isolation.level": "read_committed", "enable.auto.commit": False})
        consumer.assign([TopicPartition(self._kafka.wal_topic, 0, OFFSET_BEGINNING)])
        try:
            while not self._stop.is_set():
                msg = consumer.poll(0.1)
                if msg is None or msg.error() is not None:
                    continue
                self.processors.apply(0, [WalMessage(0, msg.offset(), msg.timestamp()[1], msg.value())])
        finally:
            consumer.close()

    def leader(self) -> tuple[int, str] | None:
        found = self.processors.reader.read(0, lambda t: t.fsm.leader())
        return None if found is None else (found.epoch, found.node_id)

    async def close(self) -> None:
        self._stop.set()
        if self._pump is not None:
            await asyncio.to_thread(self._pump.join, 10)
        await self.processors.stop()
        await asyncio.to_thread(self.appender.close)
        self.storage.close()


async def _until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        result = condition()
        if result:
            return result
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _config(kafka: KafkaBroker, prefix: str) -> KafkaConfig:
    return KafkaConfig(bootstrap_servers=kafka.bootstrap_servers, topic_prefix=prefix, partitions=1)


def test_a_late_announcement_of_a_process_that_lost_the_partition_does_not_win(
    kafka: KafkaBroker, topic_prefix: str, tmp_path: Path,
) -> None:
    config = _config(kafka, topic_prefix)
    create_topic(kafka.bootstrap_servers, config.wal_topic, 1)

    async def main() -> None:
        node = _Node("B", config, tmp_path / "b", asyncio.get_running_loop())
        node.start_pump()
        try:
            node.processors.assigned(0, 0)
            await _until(lambda: node.processors.leader_of(0), 20, "B to lead")
            assert node.started == [(0, 1)]
            # Process A lost the partition with its announcement already handed to Kafka:
            # it lands after B's, with the next epoch, naming A, which is not assigned it.
            await node.appender.append(0, AnnounceLeader(2, "A", 0))
            await _until(lambda: node.leader() == (2, "A"), 20, "the late announcement to be applied")
            # B, still assigned, announces again and leads.
            await _until(lambda: node.processors.leader_of(0) and node.leader() == (3, "B"), 20,
                         "B to lead again with the next epoch")
            assert node.started == [(0, 1), (0, 3)]
        finally:
            await node.close()

    asyncio.run(main())


def test_a_failed_announcement_is_retried_while_the_partition_is_assigned(
    kafka: KafkaBroker, topic_prefix: str, tmp_path: Path,
) -> None:
    config = _config(kafka, topic_prefix)

    async def main() -> None:
        # The WAL topic does not exist yet (auto-creation is off): the append times out.
        node = _Node("B", config, tmp_path / "b", asyncio.get_running_loop(), delivery_timeout_ms=1_000)
        try:
            node.processors.assigned(0, 0)
            await _until(lambda: node.appender.calls >= 2, 30, "the failed announcement to be tried again")
            assert node.processors.leader_of(0) is None
            await asyncio.to_thread(create_topic, kafka.bootstrap_servers, config.wal_topic, 1)
            node.start_pump()
            await _until(lambda: node.processors.leader_of(0), 60, "B to lead once the WAL accepts the announcement")
            assert node.leader() is not None and node.leader()[1] == "B"
        finally:
            await node.close()

    asyncio.run(main())


def test_a_revoke_cancels_the_announcement_under_way(
    kafka: KafkaBroker, topic_prefix: str, tmp_path: Path,
) -> None:
    config = _config(kafka, topic_prefix)
    create_topic(kafka.bootstrap_servers, config.wal_topic, 1)

    async def main() -> None:
        preparing = asyncio.Event()
        release = asyncio.Event()

        async def slow_fence(partition: int) -> None:  # like init_transactions taking its time
            preparing.set()
            await release.wait()

        node = _Node("A", config, tmp_path / "a", asyncio.get_running_loop(), before_announce=slow_fence)
        node.start_pump()
        try:
            node.processors.assigned(0, 0)
            await asyncio.wait_for(preparing.wait(), 10)
            node.processors.revoked(0)
            await _until(lambda: 0 not in node.processors._announcing, 5, "the revoke to be handled")
            release.set()
            # A marker after the point where the announcement would have been appended.
            await node.appender.append(0, AnnounceLeader(1, "marker", 0))
            await _until(lambda: node.leader() is not None, 20, "the marker to be applied")
            assert node.leader() == (1, "marker"), "the revoked process must not have announced"
            assert node.appender.calls == 1
        finally:
            await node.close()

    asyncio.run(main())


def test_a_failed_egress_fence_does_not_stop_leading_and_is_retried(
    kafka: KafkaBroker, topic_prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = _config(kafka, topic_prefix)
    create_topic(kafka.bootstrap_servers, config.wal_topic, 1)
    monkeypatch.setattr(egress_module, "_FENCE_TIMEOUT_S", 1.0, raising=False)
    # The egress producer reaches no broker (as init_transactions refused for want of a
    # TransactionalId permission would): its fence fails.
    unreachable = KafkaConfig(bootstrap_servers=f"127.0.0.1:{free_port()}", topic_prefix=topic_prefix, partitions=1)
    egress = EgressProducers(unreachable)

    async def main() -> None:
        node = _Node("B", config, tmp_path / "b", asyncio.get_running_loop(), before_announce=egress.fence,
                     egress=egress)
        node.start_pump()
        try:
            node.processors.assigned(0, 0)
            await _until(lambda: node.processors.leader_of(0), 30, "B to lead although egress cannot be fenced")
            assert [(leader.epoch, leader.producer) for leader in node.leaders] == [(1, None)]
            assert "init_transactions" in egress.last_error[0] and "TransactionalId" in egress.last_error[0]
            # The permission is granted (here: the broker becomes reachable): the fence is
            # retried, and a new epoch is announced whose leader has the producer.
            egress._kafka = config
            await _until(lambda: len(node.leaders) == 2 and node.processors.leader_of(0) is node.leaders[1], 60,
                         "a new epoch with Kafka egress")
            assert node.leaders[1].epoch == 2 and node.leaders[1].producer is not None
        finally:
            await node.close()

    asyncio.run(main())
