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

A virtual object's call is held the same way when its first attempt speculates on the
object's state (:mod:`.speculation`); such an ``Invoke`` must leave with ALL of its
attempt's records or with none, and calls for the same key that arrive meanwhile are
held behind it (:meth:`DeferredInvokes.follow`).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from typing import Final

from engine.ids import InvocationId
from engine.partition import metrics
from engine.partition.leader.own_writes import OwnWrites
from engine.partition.leader.speculation import ObjectKey
from engine.wal.appender import WalAppender
from engine.wal.records import Invoke, Record

__all__ = ["HOLD_S", "DeferredInvokes"]

HOLD_S: Final = 0.1
"""Longest a call's ``Invoke`` waits for its first attempt's first record. A no-op
attempt takes a few milliseconds alone and tens of them under load; a handler that takes
longer gets its ``Invoke`` appended on its own (one WAL record more, as before)."""


@dataclasses.dataclass(slots=True)
class _Held:
    invoke: Invoke
    future: asyncio.Future[int]
    timer: asyncio.TimerHandle
    key: ObjectKey | None = None
    """Set for a speculative ``Invoke`` (:mod:`.speculation`): the object key it holds."""
    followers: list[tuple[Invoke, asyncio.Future[int]]] = dataclasses.field(default_factory=list)


class DeferredInvokes:
    """The held ``Invoke`` records of one partition leader."""

    def __init__(
        self, own_writes: OwnWrites, appender: WalAppender, partition: int, hold_s: float = HOLD_S,
        abandon: Callable[[Invoke], None] | None = None,
    ) -> None:
        self._own_writes = own_writes
        self._appender = appender
        self._partition = partition
        self._hold_s = hold_s
        # Called when a speculative Invoke leaves without its attempt's records: the
        # attempt must stop and write nothing (the invocation runs anew).
        self._abandon = abandon
        self._held: dict[InvocationId, _Held] = {}
        self._keys: dict[ObjectKey, InvocationId] = {}
        self._with_attempt = metrics.HELD_INVOKES.labels(str(partition), "with_attempt")
        self._alone = metrics.HELD_INVOKES.labels(str(partition), "alone")

    def hold(self, record: Invoke, speculative_key: ObjectKey | None = None) -> asyncio.Future[int]:
        """Keep ``record`` until its attempt writes (or :data:`HOLD_S` passes); the
        future gives the offset of the WAL record it left in, once durable.
        ``speculative_key``: ``record`` carries a speculation on that object key."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        timer = loop.call_later(self._hold_s, self._append_alone, record.invocation_id, True)
        self._held[record.invocation_id] = _Held(record, future, timer, speculative_key)
        if speculative_key is not None:
            self._keys[speculative_key] = record.invocation_id
        return future

    def speculating(self, key: ObjectKey) -> bool:
        """Whether a speculative ``Invoke`` for ``key`` is held."""
        return key in self._keys

    def follow(self, key: ObjectKey, record: Invoke) -> asyncio.Future[int]:
        """Hold ``record`` (a plain ``Invoke`` for ``key``) until the speculative one held
        for ``key`` leaves, and let it leave right after (:meth:`speculating` first)."""
        held = self._held[self._keys[key]]
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        held.followers.append((record, future))
        return future

    def before(self, record: Record) -> None:
        """``record`` is about to be queued in this leader's own writes: if it is the
        first of an invocation whose ``Invoke`` is held, queue that ``Invoke`` first (it
        then leaves in the same batch), and the ``Invoke`` records held behind it."""
        if not self._held:
            return
        invocation_id = getattr(record, "invocation_id", None)
        if not isinstance(invocation_id, InvocationId):
            return
        held = self._pop(invocation_id)
        if held is None:
            return
        self._with_attempt.inc()
        _chain(self._own_writes.submit(held.invoke), held.future)
        for follower, future in held.followers:
            _chain(self._own_writes.submit(follower), future)

    def release(self, invocation_id: InvocationId) -> None:
        """Append the held ``Invoke`` of ``invocation_id`` now, alone (its attempt will
        not write: a speculative attempt that failed)."""
        self._append_alone(invocation_id, False)

    def release_all(self) -> None:
        """Append every held ``Invoke`` now, alone and unstamped (the leader stops: the
        next one runs them)."""
        for invocation_id in list(self._held):
            self._append_alone(invocation_id, False)

    def __len__(self) -> int:
        return len(self._held)

    def _pop(self, invocation_id: InvocationId) -> _Held | None:
        held = self._held.pop(invocation_id, None)
        if held is None:
            return None
        held.timer.cancel()
        if held.key is not None:
            del self._keys[held.key]
        return held

    def _append_alone(self, invocation_id: InvocationId, abandon: bool) -> None:
        """Append the held ``Invoke`` without its attempt's records; ``abandon``: the
        attempt may still run (the hold ran out) and must be stopped if it speculates."""
        held = self._pop(invocation_id)
        if held is None:
            return
        self._alone.inc()
        invoke = held.invoke
        if invoke.speculation is not None:
            # Leaving without the attempt's records, it is an ordinary Invoke: the
            # attempt is stopped before it writes, and the invocation runs anew.
            if abandon and self._abandon is not None:
                self._abandon(invoke)
            invoke = dataclasses.replace(invoke, speculation=None)
        # Unstamped, like the ingress's own append: no fencing can drop it. Nothing of
        # its attempt is queued yet (that would have taken it along), so it still comes
        # first in the partition; the Invoke records held behind it follow it.
        _chain(self._appender.submit(self._partition, invoke), held.future)
        for follower, future in held.followers:
            _chain(self._appender.submit(self._partition, follower), future)


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
