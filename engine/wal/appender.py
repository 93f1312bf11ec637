"""Appending records to the WAL topic: idempotent, ``acks=all``, awaitable per record.

A record is durable once :meth:`WalAppender.append` returns: Kafka acknowledged it on
every in-sync replica. Nothing the engine promises a client or an SDK may happen before
that, so every write path (ingress, invoker, timers, outbox) goes through here.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from engine.config import KafkaConfig
from engine.errors import EngineError
from engine.ids import InvocationId
from engine.logs import get_logger
from engine.wal import codec
from engine.wal.partitioning import partition_for
from engine.wal.records import DedupId, Record

log = get_logger(__name__)


class WalAppendError(EngineError):
    """Kafka refused or timed out an append; the record is not durable."""


class WalAppender:
    """One idempotent producer shared by the whole process.

    librdkafka serves delivery reports only from ``poll``; a daemon thread polls and
    hands each report back to the event loop that asked for the append.
    """

    def __init__(self, kafka: KafkaConfig, *, delivery_timeout_ms: int = 30_000) -> None:
        self.topic = kafka.wal_topic
        self.partition_count = kafka.partitions
        self._producer = Producer(
            kafka.client_config(
                **{
                    "enable.idempotence": True,
                    "acks": "all",
                    # Latency matters more than batching efficiency for a request path;
                    # under load librdkafka still batches what queues up meanwhile.
                    "linger.ms": 1,
                    "delivery.timeout.ms": delivery_timeout_ms,
                    "logger": logging.getLogger("librdkafka"),
                }
            )
        )
        self._closed = threading.Event()
        self._poller = threading.Thread(target=self._poll_loop, name="wal-producer-poll", daemon=True)
        self._poller.start()

    def partition_of(self, invocation_id: InvocationId) -> int:
        """The WAL partition that owns ``invocation_id``."""
        return partition_for(invocation_id.partition_key, self.partition_count)

    async def append(
        self,
        partition: int,
        record: Record,
        *,
        epoch: int | None = None,
        dedup_id: DedupId | None = None,
    ) -> int:
        """Append ``record`` to WAL ``partition``; returns its offset once durable."""
        future = await self._produce(partition, codec.encode(record, epoch=epoch, dedup_id=dedup_id))
        return await future

    async def append_many(self, items: Sequence[tuple[int, Record, DedupId | None]]) -> list[int]:
        """Append ``(partition, record, dedup_id)`` items in exactly this order; offsets once all are durable.

        Kafka's idempotent producer keeps produce order per partition, so records a
        caller deduplicates by increasing sequence (Kafka subscriptions) land in that
        order. Each item is handed to the producer before the next one, even when the
        local queue is full, which concurrent :meth:`append` calls would not guarantee.
        """
        futures = [await self._produce(p, codec.encode(r, dedup_id=d)) for p, r, d in items]
        return list(await asyncio.gather(*futures))

    def queued(self) -> int:
        """Records handed to the producer and not yet acknowledged (a saturation signal)."""
        return len(self._producer)

    async def _produce(self, partition: int, payload: bytes) -> asyncio.Future[int]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()

        def delivered(err: KafkaError | None, msg: Message) -> None:
            # Runs on the poll thread: hop back to the loop that awaits the future.
            loop.call_soon_threadsafe(_settle, future, err, msg)

        while True:
            try:
                self._producer.produce(self.topic, value=payload, partition=partition, on_delivery=delivered)
                return future
            except BufferError:
                # Local queue full: let delivery reports drain it, then try again.
                await asyncio.sleep(0.005)

    def close(self, timeout: float = 10.0) -> None:
        """Flush what is queued (bounded by ``timeout``) and stop the poll thread."""
        remaining = self._producer.flush(timeout)
        if remaining:
            log.warning("wal producer closed with undelivered records", undelivered=remaining)
        self._closed.set()
        self._poller.join(timeout=2)

    def _poll_loop(self) -> None:
        while not self._closed.is_set():
            self._producer.poll(0.05)


def _settle(future: asyncio.Future[int], err: KafkaError | None, msg: Any) -> None:
    if future.done():
        return
    if err is not None:
        future.set_exception(WalAppendError(f"WAL append failed: {err.str()}"))
    else:
        future.set_result(int(msg.offset()))
