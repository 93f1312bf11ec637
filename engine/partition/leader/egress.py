"""The built-in egress service: publish a Kafka record and end the invocation atomically.

An invocation of ``logstrate.KafkaEgress/publish`` (:mod:`engine.egress`) is not sent to
an endpoint. The partition leader that runs it publishes, in ONE Kafka transaction,

1. the user's record to its topic (on the engine's own Kafka cluster), and
2. the ``InvocationEnded`` WAL record that completes the invocation with
   ``{"topic", "partition", "offset"}``, stamped with the leader's epoch,

then commits. The WAL consumer reads with ``isolation.level=read_committed``, so the
invocation ends exactly when the record becomes visible to read-committed consumers:
both or neither. A crash before the commit leaves the invocation Invoked; the next
leader re-runs it in a new transaction, and the dead one's transaction is aborted.

**Fencing.** The transactional id is ``<prefix>.egress.<partition>``: one per WAL
partition, shared by every process that may lead it. :meth:`EgressProducers.fence`
creates a producer and calls ``init_transactions()`` *before* this process announces
leadership of the partition. That aborts a crashed leader's open transaction (whose
records would otherwise hold back the read-committed WAL consumer until the
transaction timeout) and fences any older producer with the same id: once a new
leader's ``AnnounceLeader`` is in the log, no deposed leader can commit an egress
transaction after it. A transaction that committed before the fence lies before the
announcement and is applied normally (its epoch was still current).

**A failed fence never stops leading.** When ``init_transactions`` fails (no
TransactionalId permission, a broker hiccup), the partition is announced and led
anyway, without egress: its egress attempts fail with a retryable 503 that names the
cause, while the processor retries the fence in the background and, once it succeeds,
announces a new epoch, whose leader has the producer (the fence must precede the
announcement of the epoch that publishes, or a deposed leader could still commit).

**A late fence does not disable the live leader's egress.** A process that lost the
partition while its ``init_transactions`` was under way fences the live leader's
producer when the call completes. The live leader's executor, told it was fenced,
fences in again (after a pause, with backoff) for as long as it leads: a process that
lost the partition to a real successor has been revoked, and its executor stopped,
before the successor is assigned it, so two live leaders never fence each other in
turn. Nothing is lost meanwhile: the attempts fail with a retryable 503.

**Once per leader.** The invocation's end is applied a moment after the commit; an
``InvokeAction`` in between (a leader's start re-reading Invoked invocations, a resume)
must not publish again. The executor remembers what it committed, with the WAL offset
of the ``InvocationEnded``, until the partition has applied that offset, and runs an
invocation only from a snapshot that reads its status and the applied offset together.

**Batching.** Egress requests queued while a transaction runs go into the next one
together (one commit for many publishes). A failure of the transaction fails the
attempts of the whole batch, which are retried by the usual retry policy.

Errors: a malformed request ends the invocation with a terminal failure 400 (nothing
is published); a value over the producer's size limit 413. A missing topic is an
attempt failure (404, retried: create the topic and the publish goes through, nothing is
lost), as are Kafka errors (503).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from engine.config import KafkaConfig
from engine.egress import EgressRequest, EgressRequestError, encode_result, is_egress, parse_request
from engine.ids import InvocationId
from engine.kafka import clients
from restate_protocol import MessageType, pb
from engine.invoker.task import AttemptFailure, FailureKind
from engine.logs import get_logger
from engine.partition.state_reader import InvocationTaskData
from engine.wal import codec
from engine.wal.records import Failure, InvocationEnded, OutputResult, Record, Value

__all__ = ["EgressExecutor", "EgressProducers", "Snapshot", "transactional_id"]

log = get_logger(__name__)

Snapshot = Callable[[InvocationId], tuple[InvocationTaskData | None, int | None]]
"""Reads an invocation's task data and the partition's applied offset in ONE read
transaction (``None`` data: not Invoked)."""
AppendOwn = Callable[[Record], Awaitable[int]]

_KAFKA_TIMEOUT_S: Final = 30.0
# Bounds how long a transaction of a hung (not dead) leader can hold back the
# read-committed WAL readers; a dead one's is aborted by the next leader's fence.
_TRANSACTION_TIMEOUT_MS: Final = 30_000
_MAX_BATCH: Final = 500
_TOPIC_CACHE_S: Final = 60.0
_COMMIT_TRIES: Final = 3
# init_transactions is bounded below the processor's wait for it, so a fence that gave
# up here is not completed behind the processor's back much later.
_FENCE_TIMEOUT_S: Final = 10.0
_REFENCE_FIRST_S: Final = 1.0
_REFENCE_MAX_S: Final = 30.0


def transactional_id(topic_prefix: str, partition: int) -> str:
    """The transactional id of WAL partition ``partition``'s egress. NEVER CHANGE: a
    different id would not fence the producers of engines still running the old one."""
    return f"{topic_prefix}.egress.{partition}"


class EgressProducers:
    """The transactional producers of this process, one per WAL partition it leads."""

    def __init__(self, kafka: KafkaConfig) -> None:
        self._kafka = kafka
        self._producers: dict[int, Producer] = {}
        self._generation: dict[int, int] = {}
        self.last_error: dict[int, str] = {}
        """Why the last fence of each partition failed (told to egress callers)."""

    def _config(self, partition: int) -> dict[str, Any]:
        return self._kafka.client_config(
            **{
                "transactional.id": transactional_id(self._kafka.topic_prefix, partition),
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 1,
                "transaction.timeout.ms": _TRANSACTION_TIMEOUT_MS,
                "message.timeout.ms": _TRANSACTION_TIMEOUT_MS - 5_000,
                # A typo in a topic name must not create a topic (if the broker allows it).
                "allow.auto.create.topics": False,
            }
        )

    async def fence(self, partition: int) -> None:
        """A fresh producer for ``partition``, initialized: fences older ones (module docstring).

        Called before this process announces leadership of ``partition``; raises the
        Kafka error when ``init_transactions`` fails. The partition then has no
        producer here (not an older one either) until a later fence succeeds.
        """
        await self.new_producer(partition)

    async def new_producer(self, partition: int) -> Producer:
        """Fence in a fresh producer for ``partition`` and return it (see :meth:`fence`)."""
        generation = self._generation[partition] = self._generation.get(partition, 0) + 1
        self._producers.pop(partition, None)
        tid = transactional_id(self._kafka.topic_prefix, partition)
        producer = clients.producer(self._config(partition), client=f"egress-{partition}")
        started = time.monotonic()
        try:
            await asyncio.to_thread(producer.init_transactions, _FENCE_TIMEOUT_S)
        except Exception as exc:
            reason = exc.args[0].str() if exc.args and isinstance(exc.args[0], KafkaError) else str(exc)
            self.last_error[partition] = (
                f"init_transactions for transactional id {tid!r} failed: {reason}; grant the engine's principal "
                "WRITE and DESCRIBE on that TransactionalId (and check the brokers' transaction state log); "
                "retried in the background"
            )
            log.error("egress producer could not be fenced in; the partition is led without Kafka egress",
                      partition=partition, transactional_id=tid, error=reason)
            raise
        if self._generation.get(partition) != generation:
            raise asyncio.CancelledError()  # a newer fence of the partition took over
        self._producers[partition] = producer
        self.last_error.pop(partition, None)
        log.info("egress producer fenced in", partition=partition, transactional_id=tid,
                 took_ms=int((time.monotonic() - started) * 1000))
        return producer

    def producer(self, partition: int) -> Producer | None:
        """The newest producer of ``partition`` (``None`` if it was never fenced in here,
        or its last fence failed)."""
        return self._producers.get(partition)


@dataclasses.dataclass(slots=True)
class _Pending:
    invocation_id: InvocationId
    request: EgressRequest
    future: asyncio.Future[AttemptFailure | None]


@dataclasses.dataclass(slots=True)
class _Committed:
    """What a successful transaction did for one invocation."""

    wal_offset: int


class _Fenced(Exception):
    """The producer was fenced: another process leads the partition now."""


class EgressExecutor:
    """Runs the egress invocations of one partition leader (one epoch)."""

    def __init__(
        self,
        *,
        partition: int,
        epoch: int,
        wal_topic: str,
        producer: Producer | None,
        snapshot: Snapshot,
        append_own: AppendOwn,
        refence: Callable[[], Awaitable[Producer]] | None = None,
        unavailable: Callable[[], str | None] | None = None,
    ) -> None:
        """``refence``: fences in a fresh producer when this one was fenced by a process
        that does not lead (module docstring); ``unavailable``: why there is no producer."""
        self._partition = partition
        self._epoch = epoch
        self._wal_topic = wal_topic
        self._producer = producer
        self._snapshot = snapshot
        self._append_own = append_own
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._refence = refence
        self._unavailable = unavailable
        self._refencing: asyncio.Task[None] | None = None
        self._inflight: dict[InvocationId, asyncio.Future[AttemptFailure | None]] = {}
        self._committed: dict[InvocationId, int] = {}
        self._topics: dict[str, tuple[int, float]] = {}
        self._log = log.bind(partition=partition, epoch=epoch)

    @staticmethod
    def serves(service: str) -> bool:
        """Whether invocations of ``service`` run here rather than on an endpoint."""
        return is_egress(service)

    def start(self) -> None:
        """Start the transaction worker."""
        self._worker = asyncio.create_task(self._work(), name=f"egress-{self._partition}")

    async def stop(self) -> None:
        """Stop the worker; a transaction in flight finishes (or is fenced) in its thread."""
        tasks = [task for task in (self._worker, self._refencing) if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for pending in self._inflight.values():
            if not pending.done():
                pending.cancel()

    async def run(self, invocation_id: InvocationId) -> AttemptFailure | None:
        """One attempt: publish and end the invocation, or say why the attempt failed.

        Returns ``None`` when there is nothing left to do for this attempt (published
        and ended, ended with a terminal failure, or no longer this leader's to run).
        """
        inflight = self._inflight.get(invocation_id)
        if inflight is not None:
            # A previous attempt was cancelled but its transaction still runs: join it.
            return await asyncio.shield(inflight)
        data, applied = self._snapshot(invocation_id)
        if applied is not None:
            self._committed = {k: v for k, v in self._committed.items() if v > applied}
        if data is None:
            return None
        bound = self._log.bind(invocation_id=str(invocation_id))
        if invocation_id in self._committed:
            bound.debug("published already; waiting for the end to be applied")
            return None
        try:
            request = parse_request(_input_of(data))
        except EgressRequestError as exc:
            bound.warning("egress request refused", error=str(exc))
            await self._append_own(InvocationEnded(invocation_id, Failure(400, f"invalid egress request: {exc}")))
            return None
        if self._producer is None:
            why = self._unavailable() if self._unavailable is not None else None
            return _retryable(503, "the egress producer of this partition is not available: "
                                   f"{why or 'see the engine log'}")
        future: asyncio.Future[AttemptFailure | None] = asyncio.get_running_loop().create_future()
        self._inflight[invocation_id] = future
        self._queue.put_nowait(_Pending(invocation_id, request, future))
        return await asyncio.shield(future)

    # -- the worker ---------------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty() and len(batch) < _MAX_BATCH:
                batch.append(self._queue.get_nowait())
            try:
                outcomes = await asyncio.to_thread(self._transact, batch)
            except _Fenced as exc:
                self._log.warning("egress producer fenced by another process; fencing in again while this "
                                  "process leads the partition", error=str(exc))
                self._producer = None
                self._start_refence()
                outcomes = [_retryable(503, f"the egress producer was fenced ({exc}); fencing in again")] * len(batch)
            except Exception as exc:  # noqa: BLE001 - fail the attempts, keep the worker
                self._log.exception("egress transaction failed")
                outcomes = [_retryable(503, f"egress transaction failed: {exc}")] * len(batch)
            for pending, outcome in zip(batch, outcomes, strict=True):
                self._inflight.pop(pending.invocation_id, None)
                if isinstance(outcome, _Committed):
                    self._committed[pending.invocation_id] = outcome.wal_offset
                    result: AttemptFailure | None = None
                else:
                    result = outcome
                if not pending.future.done():
                    pending.future.set_result(result)

    def _start_refence(self) -> None:
        if self._refence is None or (self._refencing is not None and not self._refencing.done()):
            return
        self._refencing = asyncio.create_task(self._refence_until_done(), name=f"egress-refence-{self._partition}")

    async def _refence_until_done(self) -> None:
        assert self._refence is not None
        delay = _REFENCE_FIRST_S
        while True:
            # A pause first: a real successor's announcement is applied (and this leader
            # stopped) meanwhile, so the successor is not fenced back.
            await asyncio.sleep(delay)
            try:
                self._producer = await self._refence()
                self._log.info("egress producer fenced in again")
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - retried while this leader runs
                self._log.warning("fencing the egress producer in again failed; retrying", error=str(exc),
                                  retry_in_s=delay)
            delay = min(delay * 2, _REFENCE_MAX_S)

    def _topic_partitions(self, producer: Producer, topic: str) -> int | None:
        """The topic's partition count, ``None`` if it does not exist (cached a minute)."""
        cached = self._topics.get(topic)
        now = time.monotonic()
        if cached is not None and now - cached[1] < _TOPIC_CACHE_S:
            return cached[0]
        metadata = producer.list_topics(topic, timeout=_KAFKA_TIMEOUT_S)
        found = metadata.topics.get(topic)
        if found is None or found.error is not None or not found.partitions:
            self._topics.pop(topic, None)
            return None
        self._topics[topic] = (len(found.partitions), now)
        return len(found.partitions)

    def _transact(self, batch: Sequence[_Pending]) -> list[_Committed | AttemptFailure | None]:
        """Runs on a worker thread: one transaction for the publishable part of ``batch``."""
        producer = self._producer
        outcomes: list[_Committed | AttemptFailure | None] = [None] * len(batch)
        if producer is None:
            return [_retryable(503, "the egress producer was fenced")] * len(batch)
        ends: dict[int, OutputResult] = {}
        for index, pending in enumerate(batch):
            request = pending.request
            partitions = self._topic_partitions(producer, request.topic)
            if partitions is None:
                outcomes[index] = _retryable(
                    404, f"topic {request.topic!r} does not exist on the engine's Kafka cluster "
                         "(create it; the publish is retried)")
            elif request.partition is not None and request.partition >= partitions:
                ends[index] = Failure(400, f"topic {request.topic!r} has {partitions} partitions; "
                                           f"partition {request.partition} does not exist")
            else:
                ends[index] = Value(b"")  # placeholder until delivered
        if not ends:
            return outcomes
        try:
            self._publish(producer, batch, ends, outcomes)
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            if error.fatal() or error.code() == KafkaError._FENCED:
                raise _Fenced(error.str()) from exc
            self._abort(producer)
            failure = _retryable(503, f"egress transaction aborted: {error.str()}")
            return [failure if index in ends else outcome for index, outcome in enumerate(outcomes)]
        except Exception:
            # Never leave a transaction open on the producer: the next one could not begin.
            self._abort(producer)
            raise
        return outcomes

    def _publish(
        self,
        producer: Producer,
        batch: Sequence[_Pending],
        ends: dict[int, OutputResult],
        outcomes: list[_Committed | AttemptFailure | None],
    ) -> None:
        producer.begin_transaction()
        delivered: dict[int, Message] = {}
        errors: list[str] = []

        def on_delivery(index: int) -> Callable[[KafkaError | None, Message], None]:
            def report(err: KafkaError | None, msg: Message) -> None:
                if err is not None:
                    errors.append(err.str())
                else:
                    delivered[index] = msg
            return report

        for index, result in list(ends.items()):
            if isinstance(result, Failure):
                continue
            request = batch[index].request
            kwargs: dict[str, Any] = {"value": request.value, "key": request.key,
                                      "headers": [(k, v.encode()) for k, v in request.headers],
                                      "on_delivery": on_delivery(index)}
            if request.partition is not None:
                kwargs["partition"] = request.partition
            try:
                _produce(producer, request.topic, kwargs)
            except KafkaException as exc:
                error: KafkaError = exc.args[0]
                if error.code() != KafkaError.MSG_SIZE_TOO_LARGE:
                    raise
                ends[index] = Failure(413, f"the record is too large for the egress producer: {error.str()}")
        # Deliver the user records first: their partitions and offsets are the result.
        _flush(producer)
        if errors:
            raise KafkaException(KafkaError(KafkaError._STATE, f"record not delivered: {errors[0]}"))
        wal_offsets: dict[int, int] = {}

        def on_wal(index: int) -> Callable[[KafkaError | None, Message], None]:
            def report(err: KafkaError | None, msg: Message) -> None:
                if err is not None:
                    errors.append(err.str())
                else:
                    wal_offsets[index] = int(msg.offset() or 0)
            return report

        for index, result in ends.items():
            pending = batch[index]
            msg = delivered.get(index)
            if msg is not None:
                result = Value(encode_result(pending.request.topic, int(msg.partition() or 0), int(msg.offset() or 0)))
            ended = codec.encode(InvocationEnded(pending.invocation_id, result), epoch=self._epoch)
            _produce(producer, self._wal_topic, {"value": ended, "partition": self._partition,
                                                 "on_delivery": on_wal(index)})
        _flush(producer)
        if errors:
            raise KafkaException(KafkaError(KafkaError._STATE, f"WAL record not delivered: {errors[0]}"))
        for attempt in range(_COMMIT_TRIES):
            try:
                producer.commit_transaction(_KAFKA_TIMEOUT_S)
                break
            except KafkaException as exc:
                if not exc.args[0].retriable() or attempt == _COMMIT_TRIES - 1:
                    raise
        for index in ends:
            outcomes[index] = _Committed(wal_offsets[index])
        self._log.debug("egress transaction committed", records=len(delivered), ended=len(ends))

    def _abort(self, producer: Producer) -> None:
        try:
            producer.abort_transaction(_KAFKA_TIMEOUT_S)
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            if error.fatal() or error.code() == KafkaError._FENCED:
                raise _Fenced(error.str()) from exc
            # Not in a transaction (begin failed) or a transient error: the broker
            # aborts it by the transaction timeout at the latest.
            self._log.warning("egress transaction abort failed", error=error.str())


def _produce(producer: Producer, topic: str, kwargs: dict[str, Any]) -> None:
    try:
        clients.produce(producer, topic, wait_s=_KAFKA_TIMEOUT_S, **kwargs)
    except clients.KafkaQueueFull as exc:
        # Fails the transaction like an undelivered record: aborted, the attempts retried.
        raise KafkaException(KafkaError(KafkaError._QUEUE_FULL, str(exc))) from None


def _flush(producer: Producer) -> None:
    remaining = producer.flush(_KAFKA_TIMEOUT_S)
    if remaining:
        raise KafkaException(KafkaError(KafkaError._TIMED_OUT, f"{remaining} records not delivered in time"))


def _retryable(code: int, message: str) -> AttemptFailure:
    return AttemptFailure(FailureKind.TRANSPORT, code, message)


def _input_of(data: InvocationTaskData) -> bytes:
    """The call's argument: the value of the InputCommand, journal entry 0."""
    for entry in data.journal:
        if entry.message_type == MessageType.INPUT_COMMAND:
            return bytes(pb.InputCommandMessage.FromString(entry.message).value.content)
    raise EgressRequestError("the invocation has no input")
