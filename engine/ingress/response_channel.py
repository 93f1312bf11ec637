"""Answers for ingress requests that wait on another engine process.

Any engine process accepts requests; the invocation runs where its WAL partition's
leader is. When the leader applies the end of an invocation whose response sink names
another process, it publishes the answer to the responses topic
(``<prefix>.responses``), on the partition that process reads (a hash of its
instance name), and that process resolves the waiting request. Kafka is the internal
channel: no addresses to configure or discover, and it works across machines exactly
as the WAL does.

Nothing here is durable on purpose: a process that restarts has no requests waiting,
so it starts reading at the end of its partition, and the topic keeps an hour of
answers. An answer lost with a dead process loses no work: the result is retained
(requests with an idempotency key, workflows), and the client re-attaches or retries.

An answer the producer cannot take (its local queue is full) or that Kafka did not
acknowledge (a broker outage) is not dropped: it is kept and sent again from the reader
thread, every poll, until it is delivered or :data:`ANSWER_RETRY_S` (the topic's
retention) has passed — a caller waiting on another process is answered once Kafka is
back, instead of waiting for good. At most :data:`MAX_UNSENT` answers are kept.

Record value (UTF-8 JSON, ``v`` 1)::

    {"v": 1, "node": <instance>, "request_id": "...", "invocation_id": "inv_...",
     "value": "<base64>"}  |  "failure": {"code", "message", "metadata": [[k, v]...]}
                           |  "void": true   (get-output of an invocation not done yet)
                           |  "submitted": {"previously_accepted": bool}
                                            (a /send with a derived id was applied)
"""

from __future__ import annotations

import asyncio
import base64
import collections
import hashlib
import json
import threading
import time
from typing import Any, Final

from confluent_kafka import OFFSET_END, Consumer, KafkaError, KafkaException, Producer, TopicPartition

from engine.config import KafkaConfig
from engine.ids import IdParseError, InvocationId
from engine.ingress.pending import PendingResponses
from engine.kafka import clients
from engine.logs import get_logger
from engine.partition.actions import Submitted
from engine.tailing import TAIL_FETCH_WAIT_MS, TAIL_POLL_S
from engine.wal.records import Failure, FailureMetadata, Value, Void

__all__ = ["RESPONSE_PARTITIONS", "ResponseChannel", "consumer_config", "decode_answer", "encode_answer", "partition_of"]

log = get_logger(__name__)

RESPONSE_PARTITIONS: Final = 8
"""Partitions of the responses topic; each engine process reads one of them."""

Answer = Value | Failure | Void | Submitted

ANSWER_RETRY_S: Final = 3600.0
"""How long an answer Kafka did not take is sent again (the responses topic's retention)."""
MAX_UNSENT: Final = 100_000
"""Answers kept for sending again at most; beyond, the oldest is given up (logged)."""


def partition_of(instance: str, partitions: int = RESPONSE_PARTITIONS) -> int:
    """The responses-topic partition engine process ``instance`` reads."""
    digest = hashlib.sha256(instance.encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") % partitions


def encode_answer(instance: str, request_id: str, invocation_id: InvocationId, result: Answer) -> bytes:
    """The record value carrying ``result`` to ``request_id`` on ``instance``."""
    document: dict[str, Any] = {
        "v": 1, "node": instance, "request_id": request_id, "invocation_id": str(invocation_id),
    }
    if isinstance(result, Value):
        document["value"] = base64.b64encode(result.content).decode("ascii")
    elif isinstance(result, Failure):
        document["failure"] = {
            "code": result.code,
            "message": result.message,
            "metadata": [[m.key, m.value] for m in result.metadata],
        }
    elif isinstance(result, Submitted):
        document["submitted"] = {"previously_accepted": result.previously_accepted}
    else:
        document["void"] = True
    return json.dumps(document, separators=(",", ":")).encode("utf-8")


def decode_answer(data: bytes) -> tuple[str, str, InvocationId, Answer]:
    """``(instance, request_id, invocation_id, result)`` of a record value.

    Raises:
        ValueError: the value is not an answer this engine writes.
    """
    try:
        document = json.loads(data)
        if document.get("v") != 1:
            raise ValueError(f"unknown answer version {document.get('v')!r}")
        invocation_id = InvocationId.parse(document["invocation_id"])
        result: Answer
        if "value" in document:
            result = Value(base64.b64decode(document["value"]))
        elif "failure" in document:
            f = document["failure"]
            metadata = tuple(FailureMetadata(str(k), str(v)) for k, v in f.get("metadata", []))
            result = Failure(int(f["code"]), str(f["message"]), metadata)
        elif "submitted" in document:
            result = Submitted(bool(document["submitted"]["previously_accepted"]))
        elif document.get("void") is True:
            result = Void()
        else:
            raise ValueError("answer has no result")
        return str(document["node"]), str(document["request_id"]), invocation_id, result
    except (KeyError, TypeError, IdParseError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"malformed answer: {exc}") from None


def consumer_config(kafka: KafkaConfig, instance: str) -> dict[str, Any]:
    """The librdkafka configuration of engine process ``instance``'s responses-topic reader."""
    return kafka.client_config(
        **{
            # Assigned by hand and never committed: the group is never joined.
            "group.id": f"{kafka.topic_prefix}.responses",
            "client.id": f"logstrate-{instance}-responses",
            "enable.auto.commit": False,
            # An answer is delivered the moment it lands whatever this is (the broker
            # answers a fetch at the first byte); it only sets how many empty fetches an
            # idle engine costs the broker: 2 a second, not 100 (engine.tailing). The
            # watermark query in start() runs before any fetch, so it never waits behind one.
            "fetch.wait.max.ms": TAIL_FETCH_WAIT_MS,
        }
    )


_NOT_READY: Final = frozenset(
    (
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError._UNKNOWN_PARTITION,
    )
)


def _end_offset(consumer: Consumer, partition: TopicPartition, timeout_s: float) -> int:
    """The partition's high watermark; waits out a topic created a moment ago (no leader yet)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            _, high = consumer.get_watermark_offsets(
                partition, timeout=max(deadline - time.monotonic(), 0.1), cached=False
            )
            return int(high)
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            if not (isinstance(err, KafkaError) and err.code() in _NOT_READY) or time.monotonic() >= deadline:
                raise
        time.sleep(0.05)


class ResponseChannel:
    """Sends answers to other engine processes and receives this process's own."""

    def __init__(
        self, kafka: KafkaConfig, instance: str, pending: PendingResponses,
        producer_overrides: dict[str, Any] | None = None,
    ) -> None:
        """``producer_overrides``: librdkafka settings of the answers' producer (tests)."""
        self._topic = kafka.responses_topic
        self._kafka = kafka
        self._instance = instance
        self._pending = pending
        self._partition = partition_of(instance)
        self._log = log.bind(topic=self._topic, partition=self._partition, node=instance)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._producer = clients.producer(
            kafka.client_config(
                **{
                    "client.id": f"logstrate-{instance}-responses",
                    "linger.ms": 0,
                    "acks": 1,
                    **(producer_overrides or {}),
                }
            ),
            client="responses-producer",
        )
        # (give up at, target instance, value) of answers to send again; appended from
        # the event loop and the producer's delivery reports, sent from the reader thread.
        self._unsent: collections.deque[tuple[float, str, bytes]] = collections.deque()

    async def start(self) -> None:
        """Start reading this process's partition from its current end."""
        consumer = clients.consumer(consumer_config(self._kafka, self._instance), client="responses-tail")
        # Requests are only accepted after this returns, so nothing addressed to this
        # instance can precede the end offset read here.
        high = await asyncio.to_thread(
            _end_offset, consumer, TopicPartition(self._topic, self._partition), self._kafka.connect_timeout_s
        )
        consumer.assign([TopicPartition(self._topic, self._partition, high if high >= 0 else OFFSET_END)])
        loop = asyncio.get_running_loop()
        self._thread = threading.Thread(
            target=self._run, args=(consumer, loop), name="ingress-responses", daemon=True
        )
        self._thread.start()

    def send(self, instance: str, request_id: str, invocation_id: InvocationId, result: Answer) -> None:
        """Publish an answer for a request waiting on ``instance`` (fire and forget: an
        answer Kafka does not take now is sent again, see the module docstring)."""
        self._produce(time.monotonic() + ANSWER_RETRY_S, instance, encode_answer(instance, request_id, invocation_id, result))
        self._producer.poll(0)

    def _produce(self, give_up_at: float, instance: str, value: bytes) -> bool:
        """Hand one answer to the producer; False (kept for later) if its queue is full."""

        def delivered(err: KafkaError | None, _: Any) -> None:
            if err is not None:
                self._keep(give_up_at, instance, value, str(err))

        try:
            # Called on the event loop: never wait for room (wait_s=0).
            clients.produce(
                self._producer,
                self._topic,
                wait_s=0,
                key=instance.encode("utf-8"),
                value=value,
                partition=partition_of(instance),
                on_delivery=delivered,
            )
        except clients.KafkaQueueFull:
            self._keep(give_up_at, instance, value, "the responses producer's queue is full")
            return False
        return True

    def _keep(self, give_up_at: float, instance: str, value: bytes, why: str) -> None:
        if not self._unsent:
            self._log.warning("ingress answer for another process not sent yet; it is sent again until "
                              "Kafka takes it", target=instance, error=why)
        if len(self._unsent) >= MAX_UNSENT:
            self._unsent.popleft()
            self._log.error("too many ingress answers waiting for Kafka; the oldest is given up "
                            "(its caller can re-attach with its idempotency key)", kept=MAX_UNSENT)
        self._unsent.append((give_up_at, instance, value))

    def _send_unsent(self) -> None:
        """On the reader thread: send again what Kafka did not take (in order)."""
        now = time.monotonic()
        for _ in range(len(self._unsent)):
            try:
                give_up_at, instance, value = self._unsent.popleft()
            except IndexError:
                return
            if now >= give_up_at:
                self._log.error("ingress answer given up: Kafka did not take it for an hour", target=instance)
                continue
            if not self._produce(give_up_at, instance, value):
                return  # still full: _produce kept it (at the end); try again next poll

    def _run(self, consumer: Consumer, loop: asyncio.AbstractEventLoop) -> None:
        try:
            while not self._stopping.is_set():
                if self._unsent:
                    self._send_unsent()
                self._producer.poll(0)
                message = consumer.poll(TAIL_POLL_S)
                if message is None:
                    continue
                if message.error() is not None:
                    self._log.warning("responses topic read error", error=str(message.error()))
                    continue
                self._receive(message.value() or b"", loop)
        finally:
            consumer.close()

    def _receive(self, value: bytes, loop: asyncio.AbstractEventLoop) -> None:
        try:
            instance, request_id, invocation_id, result = decode_answer(value)
        except ValueError as exc:
            self._log.warning("unreadable record on the responses topic; skipped", error=str(exc))
            return
        if instance != self._instance:
            return  # another process hashed to the same partition
        loop.call_soon_threadsafe(self._pending.resolve, request_id, invocation_id, result)

    async def stop(self) -> None:
        """Stop reading and flush answers not yet sent."""
        self._stopping.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 5.0)
            self._thread = None
        await asyncio.to_thread(self._producer.flush, 5.0)

