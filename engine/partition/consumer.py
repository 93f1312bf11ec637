"""Reading the WAL: one consumer per process, partitions assigned by the consumer group.

The group decides which process leads which partition. Offsets are NOT committed to the
group: the applied offset lives in LMDB in the same transaction as the state it produced,
so on (re)assignment the consumer seeks to ``applied + 1`` and the state stays exactly
the fold of the log. Everything here runs on one dedicated thread, because the
confluent-kafka consumer and LMDB write transactions are both thread-affine.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from engine.config import KafkaConfig
from engine.errors import EngineError
from engine.kafka import clients
from engine.logs import get_logger
from engine.partition.halt import PartitionHalt

log = get_logger(__name__)

_WATERMARK_TIMEOUT_S = 2.0
_WATERMARK_RETRY_S = 0.5
WATERMARK_REFRESH_S = 1.0
"""How often the consumer thread notes its partitions' high watermarks (apply lag)."""


@dataclass(frozen=True, slots=True)
class WalMessage:
    """One WAL record as read from Kafka; the timestamp is the producer's CreateTime."""

    partition: int
    offset: int
    timestamp_ms: int
    value: bytes


class WalListener(Protocol):
    """What the consumer thread calls; implemented by the partition processor."""

    def applied_offset(self, partition: int) -> int | None:
        """The last offset applied to LMDB for ``partition`` (None: nothing yet)."""

    def apply(self, partition: int, messages: Sequence[WalMessage]) -> PartitionHalt | None:
        """Apply a batch of one partition's records, in order, in one LMDB transaction.

        A halt means: stop before the record at ``halt.offset`` (nothing from it on
        was applied); the consumer pauses the partition (:mod:`engine.partition.halt`)."""

    def assigned(self, partition: int, high_watermark: int) -> None:
        """``partition`` is now ours; records below ``high_watermark`` exist already."""

    def reached_end(self, partition: int) -> None:
        """Everything committed in ``partition`` so far has been handed to :meth:`apply`."""

    def revoked(self, partition: int) -> None:
        """``partition`` is no longer ours: stop leading it at once."""


class WalGapError(EngineError):
    """The record after the applied offset is gone from the WAL (deleted): applying on
    would skip it and diverge from the replicas that applied it."""


class WalConsumer:
    """The consumer thread: poll, group by partition, hand batches to the listener."""

    def __init__(
        self,
        kafka: KafkaConfig,
        listener: WalListener,
        *,
        group_id: str | None = None,
        group_instance_id: str | None = None,
        max_batch: int = 1000,
        on_fatal: Callable[[BaseException], None] | None = None,
    ) -> None:
        self._kafka = kafka
        self._listener = listener
        self._max_batch = max_batch
        self._on_fatal = on_fatal
        self._stop = threading.Event()
        # Assigned partitions whose high watermark could not be read yet (a broker
        # restarting): consumed already, reported to the listener once it is read.
        self._unreported: dict[int, str] = {}
        self._unreported_at_end: set[int] = set()
        self._next_watermark_try = 0.0
        static = {} if group_instance_id is None else {"group.instance.id": group_instance_id}
        self._consumer = clients.consumer(
            kafka.client_config(
                **static,
                **{
                    "group.id": group_id or f"{kafka.topic_prefix}.partition-processors",
                    "enable.auto.commit": False,
                    "enable.auto.offset.store": False,
                    # Never jump over missing records: a position that no longer exists
                    # (records deleted below it) is an error, not a silent skip to the
                    # earliest offset. A new partition seeks OFFSET_BEGINNING explicitly.
                    "auto.offset.reset": "error",
                    "isolation.level": "read_committed",
                    # End-of-partition events tell catch-up it is done even when the
                    # last offsets are transaction markers, which are never delivered.
                    "enable.partition.eof": True,
                    # Quick failover when a process dies; heartbeats keep live ones in.
                    "session.timeout.ms": 10_000,
                    "heartbeat.interval.ms": 1_000,
                    # A fetch waits at the broker until a record arrives (fetch.min.bytes
                    # is 1), so a long wait adds no latency; a short one only makes the
                    # broker answer empty fetches all day (idle CPU).
                    "fetch.wait.max.ms": 500,
                    "socket.nagle.disable": True,
                    "partition.assignment.strategy": "cooperative-sticky",
                }
            ),
            client="wal-consumer",
        )
        self._thread = threading.Thread(target=self._run, name="wal-consumer", daemon=True)
        # Halted partitions (paused) -> monotonic time of the next try, None: no retry.
        self._halted: dict[int, float | None] = {}
        # Partition -> high watermark, noted by the consumer thread (apply lag metric).
        self._high_watermarks: dict[int, int] = {}
        self._next_watermarks = 0.0

    def start(self) -> None:
        self._consumer.subscribe([self._kafka.wal_topic], on_assign=self._on_assign, on_revoke=self._on_revoke,
                                 on_lost=self._on_revoke)
        self._thread.start()

    def high_watermark(self, partition: int) -> int | None:
        """The partition's end as the consumer thread last noted it (at most
        :data:`WATERMARK_REFRESH_S` old; safe from any thread); ``None`` when unknown.

        Read from the consumer thread's notes, never from the client: confluent-kafka
        serializes calls on a consumer, and one from another thread waits behind the
        consumer thread's polls indefinitely."""
        return self._high_watermarks.get(partition)

    def _note_watermarks(self) -> None:
        # librdkafka's cached watermarks (learnt from fetch responses): no request made.
        for tp in self._consumer.assignment():
            try:
                _, high = self._consumer.get_watermark_offsets(tp, cached=True)
            except KafkaException:
                continue
            if high >= 0:
                self._high_watermarks[tp.partition] = int(high)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    # -- consumer thread ------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        positioned = []
        for tp in partitions:
            applied = self._listener.applied_offset(tp.partition)
            tp.offset = OFFSET_BEGINNING if applied is None else applied + 1
            positioned.append(tp)
        consumer.incremental_assign(positioned)
        for tp in positioned:
            log.info("wal partition assigned", partition=tp.partition, start_offset=tp.offset)
            self._unreported[tp.partition] = tp.topic
        self._report_assigned(consumer)

    def _report_assigned(self, consumer: Consumer) -> None:
        """Tell the listener of each assigned partition whose high watermark can be read
        now. A read that fails (a broker restarting, a partition without a leader yet)
        is retried from the poll loop, never raised: an exception in the assignment
        callback would stop the consumer, and with it the process."""
        self._next_watermark_try = time.monotonic() + _WATERMARK_RETRY_S
        for partition, topic in list(self._unreported.items()):
            try:
                _, high = consumer.get_watermark_offsets(TopicPartition(topic, partition),
                                                         timeout=_WATERMARK_TIMEOUT_S)
            except KafkaException as exc:
                err = exc.args[0] if exc.args else None
                if isinstance(err, KafkaError) and err.fatal():
                    raise
                log.warning("cannot read the high watermark of an assigned WAL partition yet; retrying (it is "
                            "led once the read succeeds)", partition=partition, error=str(exc))
                continue
            del self._unreported[partition]
            log.info("wal partition ready", partition=partition, high_watermark=high)
            self._listener.assigned(partition, high)
            if partition in self._unreported_at_end:
                # The end-of-partition event came while unreported: not repeated by Kafka.
                self._unreported_at_end.discard(partition)
                self._listener.reached_end(partition)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            log.info("wal partition revoked", partition=tp.partition)
            self._unreported.pop(tp.partition, None)
            self._unreported_at_end.discard(tp.partition)
            self._halted.pop(tp.partition, None)
            self._high_watermarks.pop(tp.partition, None)
            self._listener.revoked(tp.partition)
        consumer.incremental_unassign(partitions)

    def _halt(self, halt: PartitionHalt) -> None:
        """Stop fetching ``halt.partition``; what was fetched past the halt is dropped."""
        self._consumer.pause([TopicPartition(self._kafka.wal_topic, halt.partition)])
        retry = None if halt.retry_after_s is None else time.monotonic() + halt.retry_after_s
        self._halted[halt.partition] = retry

    def _resume_due(self) -> None:
        """Try halted partitions again whose retry is due: from ``applied + 1``."""
        now = time.monotonic()
        for partition, due in list(self._halted.items()):
            if due is None or due > now:
                continue
            tp = TopicPartition(self._kafka.wal_topic, partition)
            applied = self._listener.applied_offset(partition)
            try:
                # Seek while paused, then resume: nothing fetched before the halt is
                # delivered again out of order.
                self._consumer.seek(TopicPartition(tp.topic, partition, OFFSET_BEGINNING if applied is None
                                                   else applied + 1))
                _, high = self._consumer.get_watermark_offsets(tp, timeout=10)
            except KafkaException as exc:
                log.warning("halted wal partition not resumed yet", partition=partition, error=str(exc))
                self._halted[partition] = now + 5.0
                continue
            del self._halted[partition]
            self._consumer.resume([tp])
            log.info("halted wal partition tried again", partition=partition, offset=applied)
            self._listener.assigned(partition, high)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                if self._unreported and time.monotonic() >= self._next_watermark_try:
                    self._report_assigned(self._consumer)
                if self._halted:
                    self._resume_due()
                # consume() waits for a full batch or its timeout, which would add its
                # timeout to every hop of an invocation; poll() returns with the first
                # record, and a zero-timeout consume() then takes what is queued already.
                first = self._consumer.poll(0.2)
                now = time.monotonic()
                if now >= self._next_watermarks:
                    self._next_watermarks = now + WATERMARK_REFRESH_S
                    self._note_watermarks()
                if first is None:
                    continue
                messages = [first, *self._consumer.consume(self._max_batch - 1, timeout=0)]
                batches: dict[int, list[WalMessage]] = {}
                at_end: set[int] = set()
                for msg in messages:
                    err = msg.error()
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            eof_partition = msg.partition()
                            if eof_partition is not None:
                                at_end.add(eof_partition)
                            continue
                        if err.fatal():
                            raise KafkaException(err)
                        if err.code() == KafkaError._AUTO_OFFSET_RESET:
                            raise WalGapError(
                                f"WAL partition {msg.partition()}: the record after the applied offset was deleted "
                                f"({err.str()}); the engine stops rather than skip it (see engine.wal.topics)"
                            )
                        log.warning("wal consumer error", error=err.str())
                        continue
                    _, ts = msg.timestamp()
                    partition, offset = msg.partition(), msg.offset()
                    assert partition is not None and offset is not None  # set on every fetched record
                    if partition in self._halted:
                        continue
                    batches.setdefault(partition, []).append(WalMessage(partition, offset, ts, msg.value() or b""))
                for partition, batch in batches.items():
                    halt = self._listener.apply(partition, batch)
                    if halt is not None:
                        self._halt(halt)
                if self._unreported:
                    self._unreported_at_end.difference_update(batches)
                    self._unreported_at_end.update(at_end & self._unreported.keys())
                for partition in at_end:
                    if partition not in self._halted:
                        self._listener.reached_end(partition)
        except BaseException as exc:  # noqa: BLE001 - the process must learn its WAL reader died
            log.exception("wal consumer stopped on an error")
            if self._on_fatal is not None:
                self._on_fatal(exc)
        finally:
            self._consumer.close()
