"""Dead letters of one subscription consumer: published exactly once, with the offset commit.

A record that cannot become an invocation (it cannot be decoded, or it is too large for
the WAL) goes to the subscription's ``dead-letter-topic``. The dead letters of a batch
and the batch's offsets are written in ONE Kafka transaction
(``send_offsets_to_transaction`` with the consumer's group metadata): a crash before
the commit aborts both (the next producer with the same transactional id aborts the
open transaction when it starts, which the consumer does before it joins the group;
else the transaction timeout, 30 s, does), the batch is read
again and its dead letters written again, so a ``read_committed`` reader of the
dead-letter topic sees each exactly once. (The batch's WAL appends come before and are
deduplicated by their dedup ids, :mod:`subscriptions.ingest`.)

The transactional id is ``logstrate.dead-letters.<group>.<member>``, where ``<member>``
is the consumer's static ``group.instance.id`` (an engine restarted on its data dir
takes over, and fences, its predecessor's producer) or a random one. Zombie fencing
across members rests on the group generation (KIP-447). The principal needs WRITE and
DESCRIBE on that TransactionalId.

Every dead letter carries headers that say what went wrong: ``logstrate.error.kind``
(``decode`` or ``too-large``), ``logstrate.error.message``, and the record's
subscription, topic, partition and offset. A record too large for the dead-letter topic
as well is written without its value (header ``logstrate.error.value-dropped``).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from engine.kafka import clients
from engine.logs import get_logger
from subscriptions import metrics
from subscriptions.ingest import source_header_name

__all__ = ["DeadLetter", "DeadLetters", "KIND_DECODE", "KIND_TOO_LARGE"]

log = get_logger(__name__)

KIND_DECODE: Final = "decode"
KIND_TOO_LARGE: Final = "too-large"
_KAFKA_TIMEOUT_S: Final = 30.0
# How long a dead process's open transaction (and the batch offsets in it, which hold
# back the group's committed position) lasts when no successor aborts it sooner.
_TRANSACTION_TIMEOUT_MS: Final = 30_000


@dataclass(frozen=True)
class DeadLetter:
    """One record that did not become an invocation, and why."""

    message: Message
    reason: str
    kind: str = KIND_DECODE


class DeadLetters:
    """The dead-letter producer of one subscription consumer (module docstring)."""

    def __init__(self, *, cluster_properties: Mapping[str, str], topic: str, subscription: str, source_topic: str,
                 group_id: str, member: str | None) -> None:
        self._properties = dict(cluster_properties)
        self.topic = topic
        self._sub = subscription
        self._source_topic = source_topic
        self.transactional_id = f"logstrate.dead-letters.{group_id}.{member or secrets.token_hex(8)}"
        self._producer: Producer | None = None
        self._log = log.bind(subscription=subscription, dlq=topic)

    def start(self) -> None:
        """Start the producer now, before consuming: its ``init_transactions`` aborts a
        dead predecessor's open transaction, whose pending offsets would otherwise keep
        the group's committed position unreadable until the transaction timeout."""
        try:
            self._ready()
        except KafkaException as exc:
            self._log.error("dead-letter producer not started; retried at the first dead letter", error=str(exc))

    def _ready(self) -> Producer:
        if self._producer is None:
            conf: dict[str, Any] = {
                **self._properties, "enable.idempotence": True, "acks": "all",
                "transactional.id": self.transactional_id, "transaction.timeout.ms": _TRANSACTION_TIMEOUT_MS,
            }
            producer = clients.producer(conf, client=f"dead-letters-{self._sub}")
            try:
                producer.init_transactions(_KAFKA_TIMEOUT_S)
            except KafkaException as exc:
                raise KafkaException(KafkaError(
                    KafkaError._STATE,
                    f"cannot start the dead-letter transactions ({exc.args[0]}); grant WRITE and DESCRIBE on "
                    f"TransactionalId {self.transactional_id!r}",
                )) from exc
            self._producer = producer
        return self._producer

    def publish(self, consumer: Consumer, dead: Sequence[DeadLetter], commits: Mapping[int, int]) -> None:
        """Write ``dead`` and commit the batch's offsets ``commits`` in one transaction;
        raises (nothing visible, nothing committed) when that fails, for the caller to retry."""
        producer = self._ready()
        producer.begin_transaction()
        try:
            for letter in dead:
                self._produce(producer, letter)
            offsets = [TopicPartition(self._source_topic, p, o) for p, o in sorted(commits.items())]
            producer.send_offsets_to_transaction(offsets, consumer.consumer_group_metadata(), _KAFKA_TIMEOUT_S)
            self._commit(producer)
        except BaseException as exc:
            self._abandon(producer, exc)
            raise
        for letter in dead:
            metrics.EVENTS_FAILED.labels(self._sub, self._source_topic, "dead-lettered").inc()
            self._log.warning("record sent to the dead-letter topic", reason=letter.reason, kind=letter.kind,
                              partition=letter.message.partition(), offset=letter.message.offset())

    def _commit(self, producer: Producer) -> None:
        producer.commit_transaction(_KAFKA_TIMEOUT_S)

    def _produce(self, producer: Producer, letter: DeadLetter) -> None:
        message = letter.message
        # Renamed like ingestion does, so no source header poses as the engine's logstrate.*.
        headers: list[tuple[str, str | bytes | None]] = [
            (source_header_name(k), v) for k, v in _headers(message)
        ]
        headers += error_headers(self._sub, message, letter.reason, letter.kind)
        try:
            clients.produce(producer, self.topic, wait_s=_KAFKA_TIMEOUT_S, key=message.key(), value=message.value(),
                            headers=headers)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.MSG_SIZE_TOO_LARGE:
                raise
            headers.append(("logstrate.error.value-dropped", f"too large for {self.topic}: {exc.args[0].str()}".encode()))
            clients.produce(producer, self.topic, wait_s=_KAFKA_TIMEOUT_S, key=message.key(), value=None,
                            headers=headers)

    def _abandon(self, producer: Producer, exc: BaseException) -> None:
        error = exc.args[0] if isinstance(exc, KafkaException) and exc.args else None
        if isinstance(error, KafkaError) and error.fatal():
            self._producer = None  # a new one next time (fenced, or a fatal producer error)
            return
        try:
            producer.abort_transaction(_KAFKA_TIMEOUT_S)
        except KafkaException as abort_error:
            self._log.warning("dead-letter transaction abort failed; starting a new producer",
                              error=str(abort_error))
            self._producer = None

    def close(self) -> None:
        self._producer = None


def _headers(message: Message) -> tuple[tuple[str, bytes | None], ...]:
    raw = message.headers() or []
    pairs = list(raw.items()) if isinstance(raw, dict) else list(raw)
    return tuple((name, value.encode() if isinstance(value, str) else value) for name, value in pairs)


def error_headers(subscription: str, message: Message, reason: str, kind: str = KIND_DECODE) -> list[tuple[str, bytes]]:
    """The headers a dead letter carries: what went wrong and where the record came from."""
    return [
        ("logstrate.error.kind", kind.encode()),
        ("logstrate.error.message", reason.encode()),
        ("logstrate.subscription.id", subscription.encode()),
        ("logstrate.source.topic", (message.topic() or "").encode()),
        ("logstrate.source.partition", str(message.partition()).encode()),
        ("logstrate.source.offset", str(message.offset()).encode()),
    ]
