"""Appending records to the WAL topic: idempotent, ``acks=all``, awaitable per record.

A record is durable once :meth:`WalAppender.append` returns: Kafka acknowledged it on
every in-sync replica. Nothing the engine promises a client or an SDK may happen before
that, so every write path (ingress, invoker, timers, outbox) goes through here.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import threading
from collections.abc import Callable, Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message

from engine.config import KafkaConfig
from engine.errors import EngineError
from engine.ids import InvocationId
from engine.kafka import clients
from engine.logs import get_logger
from engine.observability.wal import PRODUCE_LATENCY_ALL
from engine.wal import codec
from engine.wal.health import WalHealth
from engine.wal.partitioning import partition_for
from engine.wal.records import DedupId, Record

log = get_logger(__name__)

_observe_produce_latency = PRODUCE_LATENCY_ALL.observe


class WalAppendError(EngineError):
    """Kafka refused or timed out an append; the record is not durable."""


class WalRecordTooLarge(WalAppendError):
    """The encoded record is larger than the WAL accepts: the producer's
    ``message.max.bytes`` (``limit``), or the WAL topic's ``max.message.bytes`` at the
    broker (``limit`` None: the broker refused it)."""

    def __init__(self, size: int | None, limit: int | None) -> None:
        self.size = size
        self.limit = limit
        what = "a WAL record" if size is None else f"a WAL record of {size} bytes"
        if limit is None:
            where = "the broker refused it as larger than the WAL topic's max.message.bytes"
        else:
            where = f"it exceeds the WAL's limit of {limit} bytes per Kafka record (message.max.bytes)"
        super().__init__(
            f"{what} is too large: {where}; make the payload smaller, or raise message.max.bytes in "
            "[kafka.properties] together with the WAL topic's max.message.bytes"
        )


DEFAULT_MAX_RECORD_BYTES = 1_000_000
"""librdkafka's default ``message.max.bytes`` (the broker's topic default, 1048588, is larger)."""


def _failure(err: KafkaError) -> WalAppendError:
    if err.code() == KafkaError.MSG_SIZE_TOO_LARGE:
        return WalRecordTooLarge(None, None)
    return WalAppendError(f"WAL append failed: {err.str()}")


class WalAppender:
    """One idempotent producer shared by the whole process.

    librdkafka serves delivery reports only from ``poll``; a daemon thread polls and
    hands the reports of each ``poll`` back to the event loop that asked for the
    appends, with one wake-up of that loop for all of them.
    """

    def __init__(
        self,
        kafka: KafkaConfig,
        *,
        delivery_timeout_ms: int | None = None,
        on_fatal: Callable[[BaseException], None] | None = None,
    ) -> None:
        """``delivery_timeout_ms``: default ``kafka.wal_delivery_timeout_ms``. ``on_fatal`` is told (on the poll thread) when the producer hit a fatal error
        (:class:`engine.kafka.clients.KafkaFatalError`): no append can succeed any more."""
        self.topic = kafka.wal_topic
        self.partition_count = kafka.partitions
        if delivery_timeout_ms is None:
            delivery_timeout_ms = kafka.wal_delivery_timeout_ms
        self._full_queue_wait_s = delivery_timeout_ms / 1000
        self._on_fatal = on_fatal
        self.health = WalHealth()
        """Up/down as the producer's reports tell (the ingress answers 503 fast while down)."""
        self.max_record_bytes = int(kafka.client_config().get("message.max.bytes", DEFAULT_MAX_RECORD_BYTES))
        """The largest Kafka record (encoded WAL record) the producer sends."""
        self._producer = clients.producer(
            kafka.client_config(
                **{
                    "enable.idempotence": True,
                    "acks": "all",
                    # No linger: every durable step of an invocation waits on an ack, and
                    # librdkafka's 1 ms linger costs ~2 ms per ack on loopback (measured:
                    # docs/PERFORMANCE.md). Records that are ready together are handed
                    # over together (submit() before awaiting) and still share a batch,
                    # and under load librdkafka batches whatever queued while a request
                    # was in flight.
                    "linger.ms": 0,
                    "socket.nagle.disable": True,
                    "delivery.timeout.ms": delivery_timeout_ms,
                    # Back within a second of a broker's return (librdkafka's default
                    # backoff grows to 10 s while the broker is gone).
                    "reconnect.backoff.max.ms": 1000,
                }
            ),
            client="wal-producer",
            on_error=self._client_error,
        )
        # Delivery reports waiting to be handed to their loops (deque: thread-safe ends).
        self._settled: collections.deque[_Delivery] = collections.deque()
        # Records beyond the first of each batch in flight (changed on the event loop).
        self._batched_extra = 0
        self._closed = threading.Event()
        self._poller = threading.Thread(target=self._poll_loop, name="wal-producer-poll", daemon=True)
        self._poller.start()

    def _client_error(self, error: KafkaError) -> None:
        # On the poll thread (error_cb). A single broker's transport error is not an
        # outage (another broker may lead); losing all of them is.
        if error.code() == KafkaError._ALL_BROKERS_DOWN:
            self.health.failed(error.str())

    def partition_of(self, invocation_id: InvocationId) -> int:
        """The WAL partition that owns ``invocation_id``."""
        return partition_for(invocation_id.partition_key, self.partition_count)

    def submit(
        self,
        partition: int,
        record: Record,
        *,
        epoch: int | None = None,
        dedup_id: DedupId | None = None,
        wait_s: float | None = None,
    ) -> asyncio.Future[int]:
        """Hand ``record`` to the producer now; the future gives its offset once durable.

        ``wait_s``: how long a full local queue is waited out (default: the delivery
        timeout); the ingress passes 0 and answers 503 at once instead. The future fails
        with :class:`WalRecordTooLarge` for a record over :attr:`max_record_bytes` and
        :class:`WalAppendError` when Kafka does not take it.

        Call it from the event loop. Records submitted one after the other reach a
        partition in that order (the idempotent producer keeps per-partition order), so
        a writer can submit everything it has ready and await only once: the records
        travel in one produce request instead of one round trip each.
        """
        return self._submit(partition, codec.encode(record, epoch=epoch, dedup_id=dedup_id), wait_s)

    def submit_payload(self, partition: int, payload: bytes, *, records: int = 1) -> asyncio.Future[int]:
        """:meth:`submit` for a record the caller encoded itself (``codec.encode``);
        ``records``: how many WAL records it carries (a ``RecordBatch``), for :meth:`queued`."""
        future = self._submit(partition, payload)
        if records > 1:
            self._batched_extra += records - 1
            future.add_done_callback(lambda _: self._release_batched(records - 1))
        return future

    def _release_batched(self, extra: int) -> None:
        self._batched_extra -= extra

    async def append(
        self,
        partition: int,
        record: Record,
        *,
        epoch: int | None = None,
        dedup_id: DedupId | None = None,
    ) -> int:
        """Append ``record`` to WAL ``partition``; returns its offset once durable."""
        return await self.submit(partition, record, epoch=epoch, dedup_id=dedup_id)

    async def append_many(self, items: Sequence[tuple[int, Record, DedupId | None]]) -> list[int]:
        """Append ``(partition, record, dedup_id)`` items in exactly this order; offsets once all are durable.

        Kafka's idempotent producer keeps produce order per partition, so records a
        caller deduplicates by increasing sequence (Kafka subscriptions) land in that
        order.
        """
        futures = [self._submit(p, codec.encode(r, dedup_id=d)) for p, r, d in items]
        return list(await asyncio.gather(*futures))

    def queued(self) -> int:
        """WAL records handed to the producer and not yet acknowledged (a saturation
        signal; the records inside a batch count one by one). Safe from any thread."""
        return len(self._producer) + self._batched_extra

    def _submit(self, partition: int, payload: bytes, wait_s: float | None = None) -> asyncio.Future[int]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        on_delivery = functools.partial(self._delivered, loop, future)
        try:
            # A full local queue is waited out for up to the delivery timeout (settled
            # reports handed over meanwhile); past it the append fails like one that
            # Kafka did not acknowledge.
            clients.produce(
                self._producer, self.topic, wait_s=self._full_queue_wait_s if wait_s is None else wait_s,
                on_wait=self._hand_over, value=payload, partition=partition, on_delivery=on_delivery,
            )
        except clients.KafkaQueueFull as exc:
            self.health.failed("the producer's local queue is full")
            future.set_exception(WalAppendError(f"WAL append failed: {exc}"))
        except KafkaException as exc:
            # Refused before it was queued: a record over message.max.bytes, mostly.
            err = exc.args[0] if exc.args else None
            if isinstance(err, KafkaError) and err.code() == KafkaError.MSG_SIZE_TOO_LARGE:
                future.set_exception(WalRecordTooLarge(len(payload), self.max_record_bytes))
            else:
                future.set_exception(WalAppendError(f"WAL append refused by the producer: {exc}"))
        return future

    def _delivered(
        self, loop: asyncio.AbstractEventLoop, future: asyncio.Future[int], err: KafkaError | None, msg: Message
    ) -> None:
        # Runs on the poll thread (or inside _submit's poll): collected, and handed to the
        # loop once per poll() call rather than one wake-up per record.
        self._settled.append((loop, future, err, msg))

    def close(self, timeout: float = 10.0) -> None:
        """Flush what is queued (bounded by ``timeout``) and stop the poll thread."""
        remaining = self._producer.flush(timeout)
        if remaining:
            log.warning("wal producer closed with undelivered records", undelivered=remaining)
        self._closed.set()
        self._poller.join(timeout=2)

    def _poll_loop(self) -> None:
        while not self._closed.is_set():
            # poll() returns as soon as a delivery report is ready; the timeout only
            # bounds how long close() waits for this thread.
            try:
                self._producer.poll(0.2)
            except clients.KafkaFatalError as exc:
                # Nothing can be appended any more: the process must stop, not stall.
                self._hand_over()
                if self._on_fatal is not None:
                    self._on_fatal(exc)
                return
            self._hand_over()

    def _hand_over(self) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[_Delivery]] = {}
        while True:
            try:
                item = self._settled.popleft()
            except IndexError:
                break
            by_loop.setdefault(item[0], []).append(item)
        for loop, items in by_loop.items():
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                loop.call_soon_threadsafe(_settle_all, items, self.health)


_Delivery = tuple[asyncio.AbstractEventLoop, "asyncio.Future[int]", "KafkaError | None", Any]


def _settle_all(items: list[_Delivery], health: WalHealth) -> None:
    acknowledged = False
    for _, future, err, msg in items:
        if err is not None:
            if err.code() != KafkaError.MSG_SIZE_TOO_LARGE:
                health.failed(err.str())
            if not future.done():
                future.set_exception(_failure(err))
        else:
            acknowledged = True
            if not future.done():
                future.set_result(int(msg.offset()))
                latency = msg.latency()  # librdkafka's produce-to-ack time, in seconds
                if latency is not None:
                    _observe_produce_latency(latency)
    if acknowledged:
        health.succeeded()
