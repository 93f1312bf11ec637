"""Speculative first attempts of virtual-object calls: one WAL record per call.

A call to a plain service starts its first attempt before its ``Invoke`` is read back
(the early start) and the two leave in one WAL record (:mod:`.deferred_invokes`). A
virtual object's handler could not: applying its ``Invoke`` may queue it behind the
key's lock, and its attempt needs the object's state as the log leaves it at that
point. So an object call paid two WAL round trips and two Kafka records.

Speculation closes the gap without giving anything up. When the leader's own view says
the key is free — no lock in the applied state, and no ``Invoke`` for the key of its
own still on the way to the log — it starts the attempt at once with the state it
reads, and stamps the ``Invoke`` with that state's version
(:func:`engine.storage.state.state_version`, ``Invoke.speculation``, WAL schema v12).
The ``Invoke`` is held and leaves in ONE ``RecordBatch`` with every record the attempt
wrote. Applying it (:func:`engine.partition.state_machine.invoke.speculation_holds`)
accepts the attempt only if the key is still free and its state still has that
version, i.e. only if starting the invocation there would have given the attempt
exactly what it saw. Otherwise — another process's ingress, a call from another
partition, a subscription or a state patch got there first — the ``Invoke`` is
admitted as any other (started, or queued in the key's inbox), the attempt's records in
the batch are dropped, and the leader runs the invocation anew (``SpeculationRejected``).
Every replica decides the same from the same log.

What keeps that true:

* **One batch or nothing.** The attempt's records count only in the batch its
  ``Invoke`` leaves in. So a speculative attempt runs in request/response mode (its
  records are handed over at once when the endpoint's answer is complete); one that
  fails writes nothing; one still running after :data:`~.deferred_invokes.HOLD_S` is
  cancelled and its ``Invoke`` appended plain; a batch too large for one Kafka record
  drops the speculation (:mod:`.own_writes`). Each of these runs the invocation anew
  through the normal path: a side effect that ran in the cancelled attempt runs again,
  as after a crash — never one that was journaled.
* **Order per key.** A second call for a key whose speculative ``Invoke`` is held is
  held behind it and leaves right after it (:meth:`DeferredInvokes.follow`), so calls of
  one ingress keep their order and do not make the first one's speculation fail.
* **Slow handlers are not speculated on.** A handler whose speculative attempt outlived
  the hold is run the normal way for :data:`SLOW_FOR_S`, so it does not pay for an
  attempt thrown away on every call.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Final

from engine.partition.state_machine.invoke import needs_lock
from engine.storage.state import state_version
from engine.storage.tables import PartitionTables
from engine.wal.records import HandlerKind, Invoke, ServiceKind, StateEntry

__all__ = [
    "MAX_SPECULATIVE_STATE_BYTES",
    "SLOW_FOR_S",
    "ObjectKey",
    "OwnInvokes",
    "SlowHandlers",
    "SpeculativeState",
    "read_speculative_state",
    "speculation_candidate",
]

ObjectKey = tuple[str, str]
"""``(service, key)`` of a virtual object."""

MAX_SPECULATIVE_STATE_BYTES: Final = 64 * 1024
"""Largest object state (keys and values) an attempt speculates on: its version is
computed on the leader and again on every replica when the ``Invoke`` is applied."""

SLOW_FOR_S: Final = 60.0
"""How long a handler whose speculative attempt outlived the hold runs without."""


def speculation_candidate(record: Invoke) -> bool:
    """Whether ``record`` is the kind of ``Invoke`` whose first attempt may speculate:
    a call (its caller waits, so holding the ``Invoke`` hides nothing anybody could
    see) with a fresh random id to a virtual object's exclusive or shared handler,
    not delayed and not ordered otherwise."""
    target = record.target
    return (
        record.response_sink is not None
        and record.idempotency_key is None
        and record.execute_at_ms is None
        and record.ordering_key is None
        and target.key is not None
        and target.service_kind is ServiceKind.VIRTUAL_OBJECT
        and target.handler_kind is not HandlerKind.WORKFLOW
    )


@dataclass(frozen=True, slots=True)
class SpeculativeState:
    """What a speculative attempt runs with: the object's whole state and its version."""

    entries: tuple[StateEntry, ...]
    version: str


def read_speculative_state(tables: PartitionTables, record: Invoke) -> SpeculativeState | None:
    """The state to speculate on, read in one transaction; ``None`` when the key is
    locked (its ``Invoke`` would be queued) or the state is too large."""
    target = record.target
    assert target.key is not None
    if needs_lock(target) and tables.locks.holder(target.service, target.key) is not None:
        return None
    entries: list[StateEntry] = []
    size = 0
    for entry in tables.state.scan(target.service, target.key):
        size += len(entry.key) + len(entry.value)
        if size > MAX_SPECULATIVE_STATE_BYTES:
            return None
        entries.append(entry)
    return SpeculativeState(tuple(entries), state_version(entries))


class OwnInvokes:
    """This leader's ``Invoke`` records per object key that may not be applied yet.

    Speculating while one of them is on its way would read a state that applying it
    changes (it takes the lock first): the speculation would fail for sure.
    """

    PRUNE_AT: Final = 4096
    """Entries kept before the applied ones are forgotten (one per key called lately)."""

    def __init__(self) -> None:
        self._last: dict[ObjectKey, asyncio.Future[int]] = {}
        self._applied: int | None = None

    def track(self, key: ObjectKey, appended: asyncio.Future[int]) -> None:
        """``appended`` gives the offset of an own ``Invoke`` for ``key`` once durable."""
        self._last[key] = appended
        if len(self._last) > self.PRUNE_AT:
            for old in list(self._last):
                self.pending(old, self._applied)  # forgets what is applied

    def pending(self, key: ObjectKey, applied_offset: int | None) -> bool:
        """Whether an own ``Invoke`` for ``key`` may still be unapplied."""
        if applied_offset is not None:
            self._applied = applied_offset
        appended = self._last.get(key)
        if appended is None:
            return False
        if not appended.done():
            return True
        if appended.cancelled() or appended.exception() is not None:
            del self._last[key]
            return False
        if applied_offset is not None and appended.result() <= applied_offset:
            del self._last[key]
            return False
        return True


class SlowHandlers:
    """Handlers whose speculative attempt outlived the hold, and since when."""

    def __init__(self) -> None:
        self._since: dict[tuple[str, str], float] = {}

    def mark(self, service: str, handler: str) -> None:
        """``service/handler`` outlived the hold just now."""
        self._since[(service, handler)] = time.monotonic()

    def slow(self, service: str, handler: str) -> bool:
        """Whether ``service/handler`` outlived the hold in the last :data:`SLOW_FOR_S`."""
        since = self._since.get((service, handler))
        if since is None:
            return False
        if time.monotonic() - since > SLOW_FOR_S:
            del self._since[(service, handler)]
            return False
        return True
