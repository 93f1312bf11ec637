"""The leader's outbox shuffle: delivers outgoing records to their target partitions.

The state machine puts a record for another invocation (a call, a call's result, a
one-way send) into the partition's outbox with a sequence number. The shuffle appends
it to the target partition stamped ``DedupId("outbox/<partition>", sequence)`` — the
target keeps the highest sequence per producer, so a record re-sent after a crash or a
leader change is applied once — and then appends ``OutboxTruncate`` to its own
partition so the entry is dropped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from engine.logs import get_logger
from engine.wal.records import DedupId, OutboxTruncate, Record

log = get_logger(__name__)

# (target partition, record, dedup id) -> offset
Deliver = Callable[[int, Record, DedupId], Awaitable[int]]
# Own-partition, epoch-stamped append.
AppendOwn = Callable[[Record], Awaitable[int]]


def outbox_producer(partition: int) -> str:
    """The dedup producer name of ``partition``'s outbox. NEVER CHANGE: targets store it."""
    return f"outbox/{partition}"


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One record to deliver, in sequence order."""

    sequence: int
    target_partition: int
    record: Record


class OutboxShuffle:
    """Delivers entries strictly in sequence order, retrying failed appends."""

    def __init__(self, partition: int, deliver: Deliver, append_own: AppendOwn) -> None:
        self._partition = partition
        self._deliver = deliver
        self._append_own = append_own
        self._queue: asyncio.Queue[OutboxEntry] = asyncio.Queue()
        self._highest_enqueued = -1

    def enqueue(self, entry: OutboxEntry) -> None:
        """Queue an entry; sequences already queued are ignored (replayed actions)."""
        if entry.sequence <= self._highest_enqueued:
            return
        self._highest_enqueued = entry.sequence
        self._queue.put_nowait(entry)

    async def run(self) -> None:
        """Deliver until cancelled."""
        producer = outbox_producer(self._partition)
        while True:
            entry = await self._queue.get()
            delay = 0.05
            while True:
                try:
                    await self._deliver(entry.target_partition, entry.record, DedupId(producer, entry.sequence))
                    break
                except Exception as exc:  # noqa: BLE001 - keep order: retry this entry until it lands
                    log.warning("outbox delivery failed; retrying", partition=self._partition,
                                sequence=entry.sequence, error=str(exc))
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 2.0)
            # Truncation may lag (only when the queue is drained) without harm: a
            # re-delivery after a crash is deduplicated at the target.
            if self._queue.empty():
                try:
                    await self._append_own(OutboxTruncate(entry.sequence))
                except Exception as exc:  # noqa: BLE001 - the next delivery truncates further
                    log.warning("outbox truncate failed", partition=self._partition, error=str(exc))
