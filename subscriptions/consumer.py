"""One subscription's Kafka consumer in this engine process: records in, WAL appends out.

Each engine process runs one consumer per active subscription, all in the
subscription's consumer group, so Kafka's group protocol spreads the source partitions
over the processes and hands a dead process's partitions to the others.

The loop, on a dedicated thread (librdkafka calls block):

1. take a batch: the records fetched so far, as soon as there is one (``_next_batch``);
2. decode each record (payload format, key mapping) and build its ``Invoke``
   (:mod:`subscriptions.ingest`); a record that cannot be decoded goes to the
   dead-letter topic when the subscription has one, and is otherwise skipped with an
   error log line and a ``failed`` metric — never silently;
3. append the batch to the WAL in offset order and wait for Kafka's acknowledgement;
   a record the WAL refuses as too large is found (the batch is appended again one
   record at a time; what is in already is dropped as a duplicate) and treated like an
   undecodable one, rather than retried for ever;
4. only then commit the batch's offsets (synchronously), in one Kafka transaction
   with the batch's dead letters when it has any (:mod:`subscriptions.dead_letters`:
   exactly once in the dead-letter topic).

A crash between 3 and 4 re-reads the batch; the WAL partitions drop the duplicates by
their dedup ids. A subscription of ingest version 2 (``Subscription.ingest_version``)
names the cluster and the topic's id in them; the id is read (``describe_topics``) at
the first batch after each assignment and again whenever a partition's offsets go
backwards (a deleted and recreated topic starts again at 0, or a rewind). Nothing is fetched while a batch is in flight, and while the WAL
producer's queue is saturated the assigned partitions are paused (backpressure); if
the WAL cannot be written, the batch is retried with backoff, never skipped.

A schema registry that cannot answer now (unreachable, 5xx) rewinds to the record and
retries it; one that refuses for good (401/403, a URL that is not a registry API) halts
the consumer at that record — assignment paused, nothing after it committed,
``status.halted`` saying what to fix — because retrying cannot help and skipping would
lose every following record.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicCollection, TopicPartition
from confluent_kafka.admin import AdminClient

from engine.ids import InvocationId
from engine.kafka import clients
from engine.logs import get_logger
from engine.metadata.kafka import ORDERING_PARTITION, KafkaCluster, Subscription, consumer_properties
from engine.tailing import TAIL_POLL_S
from engine.wal.appender import WalRecordTooLarge
from engine.wal.records import DedupId, Invoke, Record
from subscriptions import metrics
from subscriptions.dead_letters import KIND_TOO_LARGE, DeadLetter, DeadLetters
from subscriptions.errors import RecordDecodeError, SchemaRegistryError
from subscriptions.ingest import SinkTarget, SourceIdentity, SourceRecord, build_invoke, dedup_id, ordering_key
from subscriptions.keys import KeyMapper, key_mapper
from subscriptions.payload import PayloadDecoder, payload_decoder

__all__ = ["Backpressure", "ConsumerStatus", "SubscriptionConsumer", "WalPort"]

log = get_logger(__name__)

_DEFAULT_BATCH: Final = 500
_MAX_BACKOFF_S: Final = 5.0
_HALTED_POLL_S: Final = 0.2


@dataclass(frozen=True)
class Backpressure:
    """When consumers stop fetching because the engine's WAL producer is saturated.

    ``queued`` is :meth:`WalPort.queued`: WAL records handed to the producer and not yet
    acknowledged by Kafka, from every writer of this process (subscriptions, ingress,
    invocations). Consumption pauses at ``pause_at`` and resumes only once the queue is
    down to ``resume_at``, a lower level, so a queue hovering around one threshold does
    not pause and resume on every batch. Set by the engine config
    (``subscription_pause_at_queued``, ``subscription_resume_at_queued``).
    """

    pause_at: int = 20_000
    resume_at: int = 5_000

    def __post_init__(self) -> None:
        if not 0 < self.resume_at < self.pause_at:
            raise ValueError(f"backpressure needs 0 < resume_at < pause_at, got {self.resume_at} and {self.pause_at}")

    def should_pause(self, queued: int) -> bool:
        return queued >= self.pause_at

    def may_resume(self, queued: int) -> bool:
        return queued <= self.resume_at


class WalPort(Protocol):
    """What the consumer thread needs from the engine's WAL appender (blocking calls)."""

    def partition_of(self, invocation_id: InvocationId) -> int: ...

    def append_many(self, items: Sequence[tuple[int, Record, DedupId | None]]) -> None:
        """Append in order; returns once all are durable, raises if any is not."""
        ...

    def queued(self) -> int: ...


@dataclass
class ConsumerStatus:
    """What this process's consumer of a subscription is doing (for the admin API)."""

    assigned: list[int] = field(default_factory=list)
    ingested: int = 0
    failed: int = 0
    last_error: str | None = None
    backpressured: bool = False
    """Paused right now because the WAL producer queue is saturated (see :class:`Backpressure`)."""
    backpressure_pauses: int = 0
    """How often this consumer paused for backpressure since it started."""
    halted: str | None = None
    """Why this consumer stopped consuming until a person acts (e.g. the schema registry
    refused the credentials); ``None`` while it runs. Nothing after the record that hit
    the error is committed."""


class SubscriptionConsumer:
    """Runs one subscription's consumer thread until :meth:`stop`."""

    def __init__(
        self,
        subscription: Subscription,
        cluster: KafkaCluster,
        *,
        resolve_sink: Callable[[], SinkTarget],
        wal: WalPort,
        node_name: str,
        member_id: str | None = None,
        backpressure: Backpressure = Backpressure(),
        on_exit: Callable[[], None] | None = None,
    ) -> None:
        """``on_exit`` is called on the consumer thread as its last action, however it ends.

        With ``member_id`` (the engine's data-dir identity) the consumer joins the
        subscription's group as a static member, ``group.instance.id`` =
        ``<member_id>.<subscription id>``: an engine restarted on its data dir gets its
        source partitions back at once instead of waiting out the dead process's session.
        """
        self.subscription = subscription
        self._on_exit = on_exit
        self.cluster = cluster
        self._resolve_sink = resolve_sink
        self._wal = wal
        self._backpressure = backpressure
        self._conf: dict[str, Any] = {**consumer_properties(cluster, subscription), "client.id": f"logstrate-{node_name}"}
        if member_id is not None:
            # The engine's own: one id per process and subscription, whatever the options say.
            self._conf["group.instance.id"] = f"{member_id}.{subscription.id}"
        options = subscription.options
        # Validated when the subscription was created; repeated here so that a bad
        # record in the metadata topic fails this consumer, not the engine.
        self._decoder: PayloadDecoder = payload_decoder(options)
        self._keys: KeyMapper = key_mapper(options)
        self._dead_letter_topic = options.get("dead-letter-topic") or None
        self._dead_letters = None if self._dead_letter_topic is None else DeadLetters(
            cluster_properties=cluster.properties, topic=self._dead_letter_topic, subscription=str(subscription.id),
            source_topic=subscription.topic, group_id=subscription.group_id,
            member=self._conf.get("group.instance.id"),
        )
        # Ingest version 2: the cluster and the topic's incarnation name its records.
        self._versioned = subscription.ingest_version >= 2
        self._identity: SourceIdentity | None = None
        self._admin: AdminClient | None = None
        self._last_offsets: dict[int, int] = {}
        self._ordered = options.get("ordering") == ORDERING_PARTITION
        self._batch_size = int(options.get("batch.size", _DEFAULT_BATCH))
        self._group = subscription.group_id
        self._sub = str(subscription.id)
        self._topic = subscription.topic
        self._log = log.bind(subscription=self._sub, topic=self._topic, group=self._group)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._exited = False
        self.status = ConsumerStatus()

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"subscription-{self._sub}", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Finish the batch in flight, commit it, leave the group (blocking)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                self._log.warning("subscription consumer did not stop in time", timeout_s=timeout_s)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._exited

    # --- the thread --------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._consume()
        finally:
            self._exited = True
            if self._on_exit is not None:
                self._on_exit()

    def _consume(self) -> None:
        try:
            consumer = clients.consumer(self._conf, client=f"subscription-{self._sub}")
        except KafkaException as exc:
            self.status.last_error = f"cannot create the Kafka consumer: {exc}"
            self._log.error("subscription consumer not started", error=str(exc))
            return
        if self._dead_letters is not None:
            self._dead_letters.start()
        try:
            consumer.subscribe([self._topic], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_revoke)
            self._log.info("subscription consumer started")
            while not self._stopping.is_set():
                if self.status.halted is not None:
                    self._wait_halted(consumer)
                    break
                self._throttle(consumer)
                messages = _next_batch(consumer, self._batch_size)
                if messages:
                    self._process(consumer, messages)
                self._update_lag(consumer)
        except Exception as exc:  # noqa: BLE001 - report and let the manager restart us
            self.status.last_error = f"consumer failed: {exc}"
            self._log.exception("subscription consumer failed")
        finally:
            for partition in self.status.assigned:
                metrics.forget_partition(self._sub, self._topic, partition)
            consumer.close()
            if self._dead_letters is not None:
                self._dead_letters.close()
            self._log.info("subscription consumer stopped")

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Read the topic's id again at the next batch: it may have been recreated.
        self._identity = None
        for p in partitions:
            self._last_offsets.pop(p.partition, None)
        self.status.assigned = sorted({*self.status.assigned, *(p.partition for p in partitions)})
        self._log.info("partitions assigned", partitions=[p.partition for p in partitions])

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Every batch is committed before the next consume(), so there is nothing to
        # flush here; a batch still being retried is deduplicated if re-read elsewhere.
        revoked = {p.partition for p in partitions}
        self.status.assigned = [p for p in self.status.assigned if p not in revoked]
        for partition in revoked:
            metrics.forget_partition(self._sub, self._topic, partition)
        self._log.info("partitions revoked", partitions=sorted(revoked))

    def _process(self, consumer: Consumer, messages: list[Message]) -> None:
        items: list[tuple[int, Record, DedupId | None]] = []
        sources: list[Message] = []
        dead: list[DeadLetter] = []
        commits: dict[int, int] = {}
        sink = self._wait_for_sink(consumer)
        if sink is None:
            return
        identity = self._identity_for(consumer, messages)
        if self._versioned and identity is None:
            return  # stopping; nothing committed
        for index, message in enumerate(messages):
            err = message.error()
            if err is not None:
                if err.fatal():
                    raise KafkaException(err)
                if err.code() != KafkaError._PARTITION_EOF:
                    self._log.warning("consumer error", error=err.str())
                continue
            record = _source_record(message)
            try:
                invoke = self._to_invoke(sink, record, identity)
            except RecordDecodeError as exc:
                dead.append(DeadLetter(message, str(exc)))
            except SchemaRegistryError as exc:
                # Not this record's fault: keep what was decoded, rewind to this record,
                # and commit nothing past it.
                self._rewind(consumer, messages[index:])
                if exc.retryable:
                    # The registry is down or overloaded: read the record again shortly.
                    self._log.warning("schema registry unavailable; will retry", error=str(exc))
                    self.status.last_error = str(exc)
                    self._paused_wait(consumer, 1.0)
                else:
                    # Bad credentials or a URL that is not a registry API: retrying
                    # cannot help, and skipping would lose every following record.
                    self._halt(exc, record)
                break
            else:
                items.append((self._wal.partition_of(invoke.invocation_id), invoke,
                              dedup_id(self._group, record, identity)))
                sources.append(message)
            commits[record.partition] = record.offset + 1
            self._last_offsets[record.partition] = record.offset
        too_large: list[DeadLetter] = []
        if not self._retry(consumer, "append to the WAL", lambda: self._append(items, sources, too_large)):
            return
        dead += too_large
        appended = len(items) - len(too_large)
        self.status.ingested += appended
        if appended:
            metrics.EVENTS_INGESTED.labels(self._sub, self._topic).inc(appended)
        if dead:
            self.status.failed += len(dead)
            self.status.last_error = f"record {dead[-1].message.partition()}@{dead[-1].message.offset()}: {dead[-1].reason}"
        if dead and self._dead_letters is not None:
            letters = self._dead_letters
            # The batch's offsets are committed in the dead letters' transaction.
            self._retry(consumer, "publish dead letters", lambda: letters.publish(consumer, dead, commits))
            return
        for letter in dead:
            self._skip(letter)
        self._commit(consumer, commits)

    def _append(self, items: list[tuple[int, Record, DedupId | None]], sources: list[Message],
                too_large: list[DeadLetter]) -> None:
        """Append ``items``; a record the WAL refuses as too large goes to ``too_large``
        (searched for one record at a time; what is in already is dropped as a duplicate)."""
        too_large.clear()
        try:
            self._wal.append_many(items)
            return
        except Exception as exc:
            if not _too_large(exc):
                raise
        found: list[DeadLetter] = []
        for item, message in zip(items, sources, strict=True):
            try:
                self._wal.append_many([item])
            except Exception as exc:
                if not _too_large(exc):
                    raise
                found.append(DeadLetter(
                    message, f"the event is too large for the WAL ({exc}); a Kafka record must fit the WAL producer's "
                             "message.max.bytes once it is an invocation (payload plus headers)", KIND_TOO_LARGE,
                ))
        too_large.extend(found)

    def _skip(self, letter: DeadLetter) -> None:
        message = letter.message
        metrics.EVENTS_FAILED.labels(self._sub, self._topic, letter.kind).inc()
        self._log.error(
            "record cannot become an invocation; skipped (set the dead-letter-topic option to keep such records)",
            reason=letter.reason, kind=letter.kind, partition=message.partition(), offset=message.offset(),
        )

    def _identity_for(self, consumer: Consumer, messages: Sequence[Message]) -> SourceIdentity | None:
        """The topic's identity for this batch (ingest version 2), read again when a
        partition's offsets went backwards; ``None`` if stopped before it could be read."""
        if not self._versioned:
            return None
        for message in messages:
            partition, offset = message.partition(), message.offset()
            if message.error() is None and partition is not None and offset is not None \
                    and offset <= self._last_offsets.get(partition, -1):
                self._identity = None  # recreated (offsets start again at 0) or rewound
                break
        if self._identity is None:
            self._retry(consumer, f"read the id of topic {self._topic}", self._read_identity)
        return self._identity

    def _read_identity(self) -> None:
        if self._admin is None:
            self._admin = clients.admin_client(dict(self.cluster.properties), client=f"subscription-{self._sub}-admin")
        described = self._admin.describe_topics(TopicCollection([self._topic]), request_timeout=10)
        topic_id = str(described[self._topic].result(timeout=15).topic_id)
        if self._identity is None or self._identity.topic_id != topic_id:
            self._log.info("source topic identified", topic_id=topic_id, cluster=self.cluster.name)
        self._identity = SourceIdentity(self.cluster.name, topic_id)

    def _to_invoke(self, sink: SinkTarget, record: SourceRecord, identity: SourceIdentity | None) -> Invoke:
        argument = self._decoder.decode(record.value)
        object_key = self._keys.object_key(record.key) if sink.keyed else None
        ordering = ordering_key(self._group, record) if self._ordered and not sink.keyed else None
        return build_invoke(
            self.subscription.id, sink, record, argument=argument, object_key=object_key,
            dead_letter_topic=self._dead_letter_topic, ordering=ordering, source=identity,
        )

    def _wait_for_sink(self, consumer: Consumer) -> SinkTarget | None:
        """The sink as registered now; while it is not, wait (events are kept, not dropped)."""
        backoff = 0.2
        while not self._stopping.is_set():
            try:
                return self._resolve_sink()
            except LookupError as exc:
                self.status.last_error = f"{exc}; events wait until the sink is registered again"
                self._log.error("subscription sink is not registered; waiting", error=str(exc))
                self._paused_wait(consumer, backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF_S)
        return None

    def _retry(self, consumer: Consumer, what: str, step: Callable[[], None]) -> bool:
        """Run ``step`` until it succeeds; ``False`` if stopped first (nothing committed)."""
        backoff = 0.1
        while True:
            try:
                step()
                return True
            except Exception as exc:  # noqa: BLE001 - every failure here is retried
                self.status.last_error = f"cannot {what}: {exc}"
                self._log.warning("retrying", what=what, error=str(exc), backoff_s=backoff)
            if self._stopping.is_set():
                return False
            self._paused_wait(consumer, backoff)
            backoff = min(backoff * 2, _MAX_BACKOFF_S)

    def _paused_wait(self, consumer: Consumer, seconds: float) -> None:
        # Keep polling (group membership, rebalance callbacks) without fetching records.
        consumer.pause(consumer.assignment())
        try:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline and not self._stopping.is_set():
                self._poll_paused(consumer, min(0.1, seconds))
        finally:
            consumer.resume(consumer.assignment())

    def _poll_paused(self, consumer: Consumer, timeout: float) -> None:
        """One ``poll`` while the assignment is paused; a record it returns is put back."""
        message = consumer.poll(timeout)
        if message is None or message.error() is not None:
            return
        # Only a partition assigned during the wait (a rebalance) is not paused. The
        # consumer's position is now past this record, and a later commit would skip
        # it: seek back to it so it is read again, and pause the new partitions too.
        # (A failing seek ends the thread; the manager restarts it from the last commit.)
        consumer.seek(TopicPartition(message.topic() or self._topic, message.partition() or 0, message.offset() or 0))
        consumer.pause(consumer.assignment())
        self._log.info("record delivered while paused; rewound to re-read it",
                       partition=message.partition(), offset=message.offset())

    def _throttle(self, consumer: Consumer) -> None:
        """Pause the assignment while the WAL producer is saturated (see :class:`Backpressure`)."""
        queued = self._wal.queued()
        if not self._backpressure.should_pause(queued):
            return
        self.status.backpressured = True
        self.status.backpressure_pauses += 1
        metrics.BACKPRESSURE_PAUSES.labels(self._sub, self._topic).inc()
        self._log.info(
            "WAL producer saturated; pausing consumption", queued=queued,
            pause_at=self._backpressure.pause_at, resume_at=self._backpressure.resume_at,
        )
        started = time.monotonic()
        consumer.pause(consumer.assignment())
        try:
            while not self._stopping.is_set():
                queued = self._wal.queued()
                if self._backpressure.may_resume(queued):
                    break
                self._poll_paused(consumer, 0.05)
        finally:
            consumer.resume(consumer.assignment())
            self.status.backpressured = False
        self._log.info("WAL producer drained; consumption resumed", queued=queued,
                       paused_s=round(time.monotonic() - started, 3))

    def _halt(self, exc: SchemaRegistryError, record: SourceRecord) -> None:
        """Stop consuming for good (until the subscription changes or is restarted)."""
        where = f"partition {record.partition} offset {record.offset}"
        self.status.halted = (
            f"{exc}. Consumption stopped at {where}; nothing from there on is committed. "
            "Fix the schema registry settings: the subscription's options are fixed at creation, so delete "
            "the subscription and create it again with the corrected schema.registry.url / "
            f"schema.registry.basic.auth.user.info and the option group.id={self._group} (it continues "
            "from here, without duplicates); if the registry itself was fixed, "
            f"PATCH /subscriptions/{self._sub}/pause and then /resume to restart the consumers"
        )
        self.status.last_error = self.status.halted
        # Logged once: the consumer stays halted, it does not retry.
        self._log.error(
            "subscription halted: a schema registry error that retrying cannot fix",
            error=str(exc), partition=record.partition, offset=record.offset,
            action=f"fix schema.registry.* (delete and recreate the subscription with group.id={self._group}), "
                   f"or PATCH /subscriptions/{self._sub}/pause then /resume once the registry is fixed",
        )

    def _wait_halted(self, consumer: Consumer) -> None:
        # Stay in the group with the assignment paused: leaving it would hand the
        # partitions to another process, which would hit the same error.
        consumer.pause(consumer.assignment())
        while not self._stopping.is_set():
            self._poll_paused(consumer, _HALTED_POLL_S)

    def _rewind(self, consumer: Consumer, unprocessed: Sequence[Message]) -> None:
        first: dict[int, int] = {}
        for message in unprocessed:
            if message.error() is not None:
                continue  # events (EOF, errors) carry no record position to return to
            first.setdefault(message.partition() or 0, message.offset() or 0)
        for partition, offset in first.items():
            consumer.seek(TopicPartition(self._topic, partition, offset))

    def _commit(self, consumer: Consumer, commits: dict[int, int]) -> None:
        if not commits:
            return
        offsets = [TopicPartition(self._topic, p, o) for p, o in sorted(commits.items())]
        try:
            consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            # E.g. the partition moved to another process meanwhile: it re-reads from the
            # last commit and the WAL drops what this process appended already.
            self._log.warning("offset commit failed", error=str(exc))

    def _update_lag(self, consumer: Consumer) -> None:
        for partition in list(self.status.assigned):
            tp = TopicPartition(self._topic, partition)
            try:
                _low, high = consumer.get_watermark_offsets(tp, cached=True)
                position = consumer.position([tp])[0].offset
            except KafkaException:
                continue
            if high >= 0 and position >= 0:
                metrics.LAG.labels(self._sub, self._topic, str(partition)).set(max(high - position, 0))


def _next_batch(consumer: Consumer, size: int) -> list[Message]:
    """The records fetched so far, up to ``size``, as soon as there is one.

    ``consume(size, timeout)`` would wait out its timeout unless ``size`` records came,
    delaying a trickle of events by that much; ``poll`` returns with the first record
    (and an idle consumer wakes only every :data:`TAIL_POLL_S`), then a zero-timeout
    ``consume`` takes what librdkafka has prefetched already.
    """
    first = consumer.poll(TAIL_POLL_S)
    if first is None:
        return []
    if size <= 1:
        return [first]
    return [first, *consumer.consume(size - 1, timeout=0)]


def _source_record(message: Message) -> SourceRecord:
    _kind, timestamp = message.timestamp()
    return SourceRecord(
        topic=message.topic() or "",
        partition=message.partition() or 0,
        offset=message.offset() or 0,
        key=message.key(),
        value=message.value(),
        timestamp_ms=timestamp if timestamp > 0 else None,
        headers=_headers(message),
    )


def _headers(message: Message) -> tuple[tuple[str, bytes | None], ...]:
    raw = message.headers() or []
    # Consumed records carry a list of (name, value) pairs; the type also allows a dict.
    pairs = list(raw.items()) if isinstance(raw, dict) else list(raw)
    return tuple((name, value.encode() if isinstance(value, str) else value) for name, value in pairs)


def _too_large(exc: BaseException) -> bool:
    """Whether a WAL append failed because the record is over Kafka's size limit."""
    if isinstance(exc, WalRecordTooLarge):
        return True
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        return bool(exc.args[0].code() == KafkaError.MSG_SIZE_TOO_LARGE)
    return False
