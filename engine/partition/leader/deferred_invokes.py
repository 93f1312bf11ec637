"""``Invoke`` records of calls held back until their first attempt writes, so that the
two leave the engine as ONE WAL record.

A call (the ingress caller waits for the result) with a fresh random id to a plain
service starts its first attempt before its ``Invoke`` is read back (the early start,
:meth:`InvocationExecutor.start_early`). Until now its ``Invoke`` was appended at once
and the attempt's records followed in a second Kafka record. Nobody can see the
invocation before its result anyway: the id is new and random, and the caller learns it
with the answer. So the leader keeps the ``Invoke`` here and puts it in front of the
attempt's first record, in the same :class:`~engine.wal.records.RecordBatch`
(:mod:`.own_writes`): a no-op call is one produce, one fetch, one decode and one apply
transaction instead of two of each, which is CPU on both the engine and the broker.

What stays true:

* **Nothing is answered before the log holds it.** The caller's answer still waits for
  the batch to be applied; a crash before the batch is durable loses an invocation that
  nobody was told about (the caller's connection breaks and it retries), exactly as a
  crash before an ``Invoke``'s append would.
* **Order.** The ``Invoke`` is queued right before the first record of its attempt, so
  it precedes everything written about the invocation.
* **Fencing.** A deposed leader's batch is dropped when applied, but the ``Invoke``
  records in it are applied anyway (``state_machine.apply``): the call is not lost
  because the leader that carried it was fenced off; the new leader runs it.
* **Visibility.** An invocation held here is invisible to the admin API and ``/query``.
  That window is bounded: after :data:`HOLD_S` without a record from the attempt (a
  slow handler), the ``Invoke`` is appended alone, unstamped, as before. The same
  happens when the leader stops.

Sends are not held: their caller is answered (202) once the ``Invoke`` is durable.
"""

from __future__ import annotations

import asyncio
from typing import Final

from engine.ids import InvocationId
from engine.partition import metrics
from engine.partition.leader.own_writes import OwnWrites
from engine.wal.appender import WalAppender
from engine.wal.records import Invoke, Record

__all__ = ["HOLD_S", "DeferredInvokes"]

HOLD_S: Final = 0.1
"""Longest a call's ``Invoke`` waits for its first attempt's first record. A no-op
attempt takes a few milliseconds alone and tens of them under load; a handler that takes
longer gets its ``Invoke`` appended on its own (one WAL record more, as before)."""


class DeferredInvokes:
    """The held ``Invoke`` records of one partition leader."""

    def __init__(self, own_writes: OwnWrites, appender: WalAppender, partition: int, hold_s: float = HOLD_S) -> None:
        self._own_writes = own_writes
        self._appender = appender
        self._partition = partition
        self._hold_s = hold_s
        self._held: dict[InvocationId, tuple[Invoke, asyncio.Future[int], asyncio.TimerHandle]] = {}
        self._with_attempt = metrics.HELD_INVOKES.labels(str(partition), "with_attempt")
        self._alone = metrics.HELD_INVOKES.labels(str(partition), "alone")

    def hold(self, record: Invoke) -> asyncio.Future[int]:
        """Keep ``record`` until its attempt writes (or :data:`HOLD_S` passes); the
        future gives the offset of the WAL record it left in, once durable."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        timer = loop.call_later(self._hold_s, self._append_alone, record.invocation_id)
        self._held[record.invocation_id] = (record, future, timer)
        return future

    def before(self, record: Record) -> None:
        """``record`` is about to be queued in this leader's own writes: if it is the
        first of an invocation whose ``Invoke`` is held, queue that ``Invoke`` first (it
        then leaves in the same batch)."""
        if not self._held:
            return
        invocation_id = getattr(record, "invocation_id", None)
        if not isinstance(invocation_id, InvocationId):
            return
        held = self._held.pop(invocation_id, None)
        if held is None:
            return
        invoke, future, timer = held
        timer.cancel()
        self._with_attempt.inc()
        _chain(self._own_writes.submit(invoke), future)

    def release_all(self) -> None:
        """Append every held ``Invoke`` now, alone and unstamped (the leader stops: the
        next one runs them)."""
        for invocation_id in list(self._held):
            self._append_alone(invocation_id)

    def __len__(self) -> int:
        return len(self._held)

    def _append_alone(self, invocation_id: InvocationId) -> None:
        held = self._held.pop(invocation_id, None)
        if held is None:
            return
        invoke, future, timer = held
        timer.cancel()
        self._alone.inc()
        # Unstamped, like the ingress's own append: no fencing can drop it. Nothing of
        # its attempt is queued yet (that would have taken it along), so it still comes
        # first in the partition.
        _chain(self._appender.submit(self._partition, invoke), future)


def _chain(source: asyncio.Future[int], target: asyncio.Future[int]) -> None:
    def settle(done: asyncio.Future[int]) -> None:
        if target.done():
            return  # its waiter gave up
        if done.cancelled():
            target.cancel()
        elif (exc := done.exception()) is not None:
            target.set_exception(exc)
        else:
            target.set_result(done.result())

    source.add_done_callback(settle)
