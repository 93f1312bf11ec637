"""The current end offset of a WAL partition, for admin reads that must not miss a fresh record.

A record is durable (and its ``/send`` answered) before the partition processor applies
it, so an invocation accepted a moment ago may not be in LMDB yet. Before the admin API
answers "not found", it asks Kafka for the partition's high watermark and waits until
the local processor applied everything below it.
"""

from __future__ import annotations

import asyncio
import threading

from confluent_kafka import Consumer, KafkaException, TopicPartition

from engine.config import KafkaConfig
from engine.kafka import clients
from engine.logs import get_logger

__all__ = ["WalWatermarks"]

log = get_logger(__name__)


class WalWatermarks:
    """Asks Kafka for WAL high watermarks; one lazily created consumer that never joins a group."""

    def __init__(self, kafka: KafkaConfig, node_name: str = "admin", timeout_s: float = 5.0) -> None:
        self._kafka = kafka
        self._node_name = node_name
        self._timeout_s = timeout_s
        self._consumer: Consumer | None = None
        self._lock = threading.Lock()

    def _client(self) -> Consumer:
        if self._consumer is None:
            self._consumer = clients.consumer(
                self._kafka.client_config(
                    **{
                        # Required by librdkafka; never joined (no subscribe, no commit).
                        "group.id": f"{self._kafka.topic_prefix}.admin-watermarks",
                        "client.id": f"logstrate-{self._node_name}-admin",
                        "enable.auto.commit": False,
                    }
                ),
                client="admin-watermarks",
            )
        return self._consumer

    def _high(self, partition: int) -> int | None:
        with self._lock:
            try:
                _, high = self._client().get_watermark_offsets(
                    TopicPartition(self._kafka.wal_topic, partition), timeout=self._timeout_s, cached=False
                )
                return int(high)
            except KafkaException as exc:
                log.warning("WAL high watermark unavailable", partition=partition, error=str(exc))
                return None

    async def high(self, partition: int) -> int | None:
        """The offset the next record of ``partition`` will take; ``None`` if Kafka did not say."""
        return await asyncio.to_thread(self._high, partition)

    def close(self) -> None:
        """Close the consumer, if one was created."""
        with self._lock:
            if self._consumer is not None:
                self._consumer.close()
                self._consumer = None
