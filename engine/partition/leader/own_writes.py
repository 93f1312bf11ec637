"""A partition leader's writes to its own partition, batched per turn of the event loop.

Everything the leader writes to its own partition (the invoker's records, timer firings,
outbox truncations, and the held ``Invoke`` of a call, see :mod:`.deferred_invokes`) is
stamped with its epoch and goes through :class:`OwnWrites`. What
is handed over during one turn of the event loop (the frames of one chunk from an
endpoint, the prelude and output and end of an attempt, every attempt that a read of
the WAL resumed, the timers due at once) leaves at the end of that turn as ONE Kafka
record, a :class:`~engine.wal.records.RecordBatch`, or as the record itself when it is
alone. Nothing waits for that: the turn ends anyway, so batching adds no latency, and it
saves what every Kafka record costs on both sides (an encode, a produce and its
delivery report, the broker's work, a fetch, a decode, a fencing check).

Order is kept: batches leave in the order their first records were handed over, and a
batch is applied record by record. A batch never grows past :data:`MAX_BATCH_BYTES`
encoded (it is split in halves until it fits), so it stays far below Kafka's default
message size limit; a speculative attempt (:mod:`.speculation`) in a batch that must be
split (too large, or a record that cannot be encoded) is dropped instead.
"""

from __future__ import annotations

import asyncio
import dataclasses
import typing

from engine.wal import codec
from engine.wal.appender import WalAppendError, WalAppender
from engine.wal.records import BatchedRecord, Invoke, Record, RecordBatch

__all__ = ["MAX_BATCH_BYTES", "OwnWrites", "SpeculationDropped"]

MAX_BATCH_BYTES = 256 * 1024
"""Largest encoded batch; a larger one is split (a single record is sent as it is)."""

_BATCHABLE: typing.Final = frozenset(typing.get_args(BatchedRecord))


class OwnWrites:
    """Epoch-stamped appends of one leader to its own partition, batched per loop turn."""

    def __init__(self, appender: WalAppender, partition: int, epoch: int) -> None:
        self._appender = appender
        self._partition = partition
        self._epoch = epoch
        self._pending: list[tuple[BatchedRecord, asyncio.Future[int]]] = []

    def submit(self, record: Record) -> asyncio.Future[int]:
        """Queue ``record`` for the end of this loop turn; the future gives its offset
        (the batch's) once durable."""
        if type(record) not in _BATCHABLE:
            self.flush()  # keep the order with what is queued already
            return self._appender.submit(self._partition, record, epoch=self._epoch)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        if not self._pending:
            loop.call_soon(self.flush)
        self._pending.append((typing.cast(BatchedRecord, record), future))
        return future

    def flush(self) -> None:
        """Hand everything queued to the producer now."""
        pending, self._pending = self._pending, []
        if pending:
            self._send(pending)  # failures went to the records' futures

    def _send(self, items: list[tuple[BatchedRecord, asyncio.Future[int]]]) -> BaseException | None:
        """Hand ``items`` over in order; returns the failure that stopped it, if any.

        A record that cannot be encoded or is refused at once (over the WAL's record
        limit) fails, and so does every record queued after it: they follow it in the
        partition's order (an attempt's suspension after its run completion), so none of
        them may land without it. Their attempts fail and are retried. This runs in a
        loop callback (flush at the end of the turn), so nothing may raise here: every
        waiter gets its outcome.
        """
        try:
            if len(items) == 1:
                payload = codec.encode(items[0][0], epoch=self._epoch)
            else:
                payload = codec.encode(RecordBatch(tuple(record for record, _ in items)), epoch=self._epoch)
        except codec.WalCodecError as exc:
            if len(items) == 1:
                return _fail(items, exc)
            return self._send_halves(items)
        if len(items) > 1 and len(payload) > MAX_BATCH_BYTES:
            return self._send_halves(items)
        durable = self._appender.submit_payload(self._partition, payload, records=len(items))
        if durable.done() and not durable.cancelled() and durable.exception() is not None:
            failure = durable.exception()
            assert failure is not None
            return _fail(items, failure)
        futures = [future for _, future in items]
        durable.add_done_callback(lambda done: _settle(futures, done))
        return None

    def _send_halves(self, items: list[tuple[BatchedRecord, asyncio.Future[int]]]) -> BaseException | None:
        # A speculative attempt's records must stay in ONE batch with its Invoke (a
        # refusal drops them only from that batch): drop the speculation instead, then
        # try the rest as a whole again (it may fit or encode now).
        kept, dropped = _without_speculations(items)
        if dropped:
            return self._send(kept)
        half = len(items) // 2
        failure = self._send(items[:half])
        if failure is not None:
            return _fail(items[half:], failure)
        return self._send(items[half:])


class SpeculationDropped(WalAppendError):
    """A speculative attempt's records did not fit one batch with its ``Invoke``: they
    are not written, and the ``Invoke`` leaves as an ordinary one (the invocation runs
    anew, see :mod:`.speculation`)."""


def _without_speculations(
    items: list[tuple[BatchedRecord, asyncio.Future[int]]],
) -> tuple[list[tuple[BatchedRecord, asyncio.Future[int]]], bool]:
    """``items`` about to be split: a speculative attempt counts only in ONE batch with
    its ``Invoke``, so each speculative ``Invoke`` is made ordinary and its attempt's
    records are failed (:class:`SpeculationDropped`) instead of written. Returns what
    is left and whether there was a speculation."""
    dropped: set[object] = set()
    kept: list[tuple[BatchedRecord, asyncio.Future[int]]] = []
    for record, future in items:
        if isinstance(record, Invoke) and record.speculation is not None:
            dropped.add(record.invocation_id)
            kept.append((dataclasses.replace(record, speculation=None), future))
        elif not isinstance(record, Invoke) and getattr(record, "invocation_id", None) in dropped:
            if not future.done():
                future.set_exception(SpeculationDropped("the speculative attempt's records do not fit one WAL record"))
        else:
            kept.append((record, future))
    return kept, bool(dropped)


def _fail(items: list[tuple[BatchedRecord, asyncio.Future[int]]], failure: BaseException) -> BaseException:
    for _, future in items:
        if not future.done():
            future.set_exception(failure)
    return failure


def _settle(futures: list[asyncio.Future[int]], done: asyncio.Future[int]) -> None:
    failure = done.exception() if not done.cancelled() else asyncio.CancelledError()
    for future in futures:
        if future.done():
            continue  # its waiter gave up (cancelled)
        if failure is not None:
            future.set_exception(failure)
        else:
            future.set_result(done.result())
